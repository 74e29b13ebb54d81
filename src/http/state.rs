//! The serving API's state: the registry, indexes, health flags, request limits, API keys and
//! rate limiter, and the sub-states extractors take from it ([`FromRef`]).

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use axum::extract::FromRef;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;

use super::openai::TokenIds;
use super::{
    error::ApiError,
    extract::BodyLimit,
    metrics,
    middleware::{auth::Keys, rate_limit::RateLimiter},
};
use crate::{
    auth::ApiKeys, deploy::Registry, index::IndexSet, jobs::Jobs, model::tokenizer::Truncation,
    serving::Deadline,
};

/// Limits applied to each request before it reaches a model.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RequestLimits {
    pub max_client_batch: usize,
    /// `--max-client-tokens`: model tokens one request may carry in all its inputs.
    pub max_client_tokens: usize,
    pub max_body_bytes: usize,
    /// `--max-response-bytes`: the largest `/tokenize` answer.
    pub max_response_bytes: usize,
    /// `--auto-truncate`: what a request that does not say `truncate` gets.
    pub auto_truncate: bool,
    /// `--openai-token-ids`: what token-id arrays on `/v1/embeddings` are.
    #[schema(value_type = String)]
    pub openai_token_ids: TokenIds,
    #[serde(serialize_with = "as_millis", rename = "request_timeout_ms")]
    #[schema(value_type = u64)]
    pub request_timeout: Duration,
}

fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u128(d.as_millis())
}

/// Readiness: a model is loaded and warmed, and the service is not shutting down.
///
/// Shutting down has two phases: the lame duck (`--drain-delay`: readiness 503 so load
/// balancers stop sending, everything else served normally), then draining (new work refused
/// with 503 `shutting_down` while in-flight work finishes).
#[derive(Debug, Default)]
pub struct Health {
    loaded: AtomicBool,
    lame_duck: AtomicBool,
    draining: AtomicBool,
}

impl Health {
    pub fn set_loaded(&self) {
        self.loaded.store(true, Ordering::Release);
        metrics::set_ready(self.ready());
    }

    /// Readiness turns 503 `shutting_down`; requests are still served.
    pub fn start_lame_duck(&self) {
        self.lame_duck.store(true, Ordering::Release);
        metrics::set_ready(false);
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
        metrics::set_ready(false);
    }

    pub fn ready(&self) -> bool {
        self.loaded.load(Ordering::Acquire) && !self.shutting_down()
    }

    fn shutting_down(&self) -> bool {
        self.lame_duck.load(Ordering::Acquire) || self.draining.load(Ordering::Acquire)
    }

    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// 503 `shutting_down` once draining: every route that starts new work asks first.
    pub fn accepting(&self) -> Result<(), ApiError> {
        match self.draining() {
            true => Err(ApiError::ShuttingDown),
            false => Ok(()),
        }
    }

    /// The readiness probe's answer: `shutting_down` from SIGTERM on, `not_ready` while loading.
    pub fn check_ready(&self) -> Result<(), ApiError> {
        if self.shutting_down() {
            return Err(ApiError::ShuttingDown);
        }
        match self.ready() {
            true => Ok(()),
            false => Err(ApiError::NotReady),
        }
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
    /// `--index-required`: readiness also needs every Postgres index reachable.
    pub index_required: bool,
    /// `--recommend-max-k`.
    pub recommend_max_k: usize,
    /// The Batch API's jobs; `None` without `--state-dir` (the routes answer 503).
    pub jobs: Option<Arc<Jobs>>,
}

impl RequestLimits {
    /// The truncation of a request that says `truncate` (or not) and which end to cut:
    /// `--auto-truncate` decides when it is silent.
    pub fn truncation(&self, truncate: Option<bool>, left: bool) -> Truncation {
        match (truncate.unwrap_or(self.auto_truncate), left) {
            (false, _) => Truncation::Refuse,
            (true, false) => Truncation::Right,
            (true, true) => Truncation::Left,
        }
    }
}

impl AppState {
    /// The deadline of a request arriving now (`--request-timeout`).
    pub fn deadline(&self) -> Deadline {
        Deadline::after(self.limits.request_timeout)
    }
}

impl FromRef<AppState> for Keys {
    fn from_ref(state: &AppState) -> Self {
        Keys(state.api_keys.clone())
    }
}

impl FromRef<AppState> for BodyLimit {
    fn from_ref(state: &AppState) -> Self {
        BodyLimit(state.limits.max_body_bytes)
    }
}
