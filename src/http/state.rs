//! Shared application state: the registry, health flags and request limits.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;

use crate::{
    auth::ApiKeys, http::middleware::rate_limit::RateLimiter, index::IndexSet,
    serving::handle::Registry, telemetry,
};

/// Limits applied to each request before it reaches a model.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RequestLimits {
    pub max_client_batch: usize,
    pub max_body_bytes: usize,
    #[serde(serialize_with = "as_millis", rename = "request_timeout_ms")]
    #[schema(value_type = u64)]
    pub request_timeout: Duration,
}

fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u128(d.as_millis())
}

/// Readiness: a model is loaded and warmed, and the service is not draining.
#[derive(Debug, Default)]
pub struct Health {
    loaded: AtomicBool,
    draining: AtomicBool,
}

impl Health {
    pub fn set_loaded(&self) {
        self.loaded.store(true, Ordering::Release);
        telemetry::set_ready(self.ready());
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
        telemetry::set_ready(false);
    }

    pub fn ready(&self) -> bool {
        self.loaded.load(Ordering::Acquire) && !self.draining.load(Ordering::Acquire)
    }

    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }
}

#[derive(Clone)]
pub struct AppState {
    pub registry: Arc<Registry>,
    pub health: Arc<Health>,
    pub limits: Arc<RequestLimits>,
    pub metrics: PrometheusHandle,
    /// `--api-key-file`; `None` leaves API routes open and data-changing routes disabled.
    pub api_keys: Option<Arc<ApiKeys>>,
    /// `--rate-limit`; `None` when requests are not rate limited.
    pub rate_limiter: Option<Arc<RateLimiter>>,
    /// Item indexes for `/recommend` and `/items`, loaded after the model.
    pub indexes: Arc<IndexSet>,
    /// `--recommend-max-k`.
    pub recommend_max_k: usize,
}
