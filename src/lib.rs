//! inferd: one process that loads an embedding model once and serves it over HTTP through a
//! bounded queue and a dynamic batcher.
//!
//! The request path reads top-down: [`http`] validates and routes, [`registry`] finds the model,
//! [`batching`] admits, queues and batches, and [`model`] computes. [`serve`] wires them together
//! for a given listener and shutdown signal, so tests can run it on port 0.

pub mod auth;
pub mod batching;
pub mod cache;
pub mod config;
pub mod error;
pub mod gateway;
pub mod http;
pub mod metrics;
pub mod model;
pub mod registry;
pub mod shutdown;
pub mod state;

use std::{
    future::{Future, IntoFuture},
    sync::{Arc, OnceLock},
};

use anyhow::Context;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::{net::TcpListener, sync::watch};

use batching::BatchLimits;
use config::ServeConfig;
use model::LoadOptions;
use registry::{HandleConfig, ModelHandle, Registry};
use state::{AppState, Health, RequestLimits};

/// Serves until `shutdown` resolves, then drains within `--shutdown-grace`.
///
/// The listener accepts at once, so `/livez` answers and `/readyz` says 503 while the model loads;
/// readiness turns 200 only after the model is loaded and warmed. A model that fails to load is
/// an error (the process exits non-zero and the orchestrator restarts it).
pub async fn serve(
    config: ServeConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let state = AppState {
        registry: Arc::new(Registry::default()),
        health: Arc::new(Health::default()),
        limits: Arc::new(RequestLimits {
            max_client_batch: config.max_client_batch,
            max_body_bytes: config.max_body_bytes,
            request_timeout: config.request_timeout,
        }),
        metrics: metrics_handle()?,
        api_keys: config
            .api_key_file
            .as_deref()
            .map(auth::ApiKeys::load)
            .transpose()?
            .map(Arc::new),
        rate_limiter: gateway::ratelimit::RateLimiter::new(
            config.rate_limit,
            config.rate_limit_burst,
        ),
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });

    let health = Arc::clone(&state.health);
    let mut drain_signal = stop_rx.clone();
    let app = http::router(state.clone());
    let server = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = drain_signal.wait_for(|stop| *stop).await;
                health.start_draining();
            })
            .into_future(),
    );

    let mut stop = stop_rx.clone();
    tokio::select! {
        biased;
        _ = stop.wait_for(|stop| *stop) => tracing::info!("shutdown requested while loading"),
        loaded = load_model(&config) => {
            let handle = loaded?;
            tracing::info!(
                model = %handle.info.name, version = %handle.info.version,
                device = %handle.info.device, dtype = %handle.info.dtype,
                dimensions = handle.info.dimensions, load_seconds = handle.info.load_seconds,
                "model ready"
            );
            state.registry.insert(handle);
            state.health.set_loaded();
        }
    }

    let _ = stop.wait_for(|stop| *stop).await;
    match tokio::time::timeout(config.shutdown_grace, server).await {
        Ok(Ok(Ok(()))) => tracing::info!("drained; exiting"),
        Ok(Ok(Err(err))) => return Err(err).context("HTTP server failed"),
        Ok(Err(join)) => return Err(join).context("HTTP server task failed"),
        Err(_) => {
            tracing::warn!(grace = ?config.shutdown_grace, "shutdown grace expired with requests in flight")
        }
    }
    Ok(())
}

/// Loads and starts the model on a blocking thread (reading weights and warming are blocking).
async fn load_model(config: &ServeConfig) -> anyhow::Result<ModelHandle> {
    let opts = LoadOptions {
        source: config.model.clone(),
        name: config.model_name.clone(),
        device: config.device,
        dtype: config.dtype,
    };
    let handle_config = HandleConfig {
        queue_capacity: config.max_queue_requests,
        limits: BatchLimits {
            max_tokens: config.max_batch_tokens,
            max_sequences: config.max_batch_requests,
            packed: false,     // set from the loaded encoder
            attention_span: 0, // likewise
        },
        tokenizer_workers: config.tokenizer_workers,
        debug_delay: config.debug_batch_delay,
        debug_panic_on: config.debug_panic_on.clone(),
        cache: cache::EmbeddingCache::new(config.cache_capacity),
    };
    tokio::task::spawn_blocking(move || {
        let loaded =
            model::load(&opts).with_context(|| format!("loading model {:?}", opts.source))?;
        ModelHandle::start(loaded, handle_config)
    })
    .await
    .context("model loader panicked")?
}

/// The process-wide Prometheus recorder, installed on first use.
fn metrics_handle() -> anyhow::Result<PrometheusHandle> {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let handle = metrics::install()?;
    Ok(HANDLE.get_or_init(|| handle).clone())
}
