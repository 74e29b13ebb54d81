//! The composition root: the only code that knows every layer.
//!
//! [`serve`] wires the registry, lifecycle, indexes and both HTTP routers for a given listener
//! and shutdown signal (mini-redis style), so tests can run it on port 0; [`build_index`] runs
//! `inferd index build`; [`commands`] is what the binary's `main` calls per subcommand.
//!
//! - [`wiring`]: serve flags → the policy, handle settings and request limits;
//! - [`admin`]: the admin listener, its bind check and generated token;
//! - [`grpc`]: the gRPC listener (`--grpc-listen`) over the same state;
//! - [`listener`]: every listener's accept loop, connection limit, timeouts and drain;
//! - [`batch_cli`]: `inferd batch …` (a Batch API client) and `inferd embed` (local batches);
//! - [`indexes`]: `--index` at start-up, and `index build`;
//! - [`drift`]: `inferd drift profile`, a drift reference from a file of texts;
//! - [`shutdown`]: SIGTERM and SIGINT, and the lame-duck delay before the listeners close;
//! - [`secrets`]: API keys, admin tokens and TLS files re-read on SIGHUP and on file change.

pub mod admin;
pub mod batch_cli;
pub mod commands;
pub mod drift;
pub mod grpc;
pub mod indexes;
pub mod listener;
pub mod secrets;
pub mod shutdown;
pub mod wiring;

use std::{
    future::Future,
    sync::{Arc, Mutex},
};

use anyhow::Context;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::{net::TcpListener, sync::watch};

pub use indexes::build_index;

use crate::{
    auth::{tls::ServerTls, ApiKeys, Reload},
    cli::ServeConfig,
    deploy::{audit::AuditLog, Lifecycle, LoadDefaults, Registry},
    http::{
        self,
        middleware::rate_limit::RateLimiter,
        state::{AppState, Health},
    },
    index::IndexSet,
    jobs::{self, Jobs},
    model::{self, LoadOptions},
    serving::{HandleConfig, ModelHandle},
    telemetry,
};

/// Serves until `shutdown` resolves, then (see [`shutdown`]) says not ready for
/// `--drain-delay`, closes the listeners and drains within `--shutdown-grace`.
///
/// The listener accepts at once, so `/livez` answers and `/readyz` says 503 while the model loads;
/// readiness turns 200 only after the model is loaded and warmed. A model that fails to load is
/// an error (the process exits non-zero and the orchestrator restarts it), and so is a drain
/// that the grace cut short.
pub async fn serve(
    config: ServeConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    admin::check_bind(config.admin_listen, config.admin_token_file.as_deref())?;
    let audit = config
        .state_dir
        .as_deref()
        .map(AuditLog::open)
        .transpose()?
        .map(Arc::new);
    let policy = Arc::new(wiring::policy(&config));
    let registry = Arc::new(Registry::new(Arc::clone(&policy), audit.clone()));
    let handle_config = wiring::handle_config(&config)?;
    let lifecycle = Arc::new(Lifecycle::new(
        Arc::clone(&registry),
        audit,
        policy,
        LoadDefaults {
            device: config.load.device,
            dtype: config.load.dtype,
            handle: handle_config.clone(),
            manifest_dir: config.manifest_dir.clone(),
        },
    ));
    // The recorder first: opening the jobs registers their series at zero.
    metrics_handle()?;
    let jobs = open_jobs(&config).await?;
    let state = app_state(&config, registry, jobs)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(shutdown::lame_duck(
        shutdown,
        Arc::clone(&state.health),
        config.conn.drain_delay,
        stop_tx,
    ));

    let tls = wiring::tls(&config.conn)?;
    let server = listener::Listener::spawn(
        listener,
        http::router(state.clone()),
        listener::Hygiene::new(&config.conn, http::native::OPEN_PATHS, tls.clone()),
        stopped(stop_rx.clone()),
    );

    let grpc = grpc::serve(&config, &state, tls.clone(), stopped(stop_rx.clone())).await?;

    let admin_tokens = admin::tokens(&config)?;
    let admin = match &admin_tokens {
        Some(tokens) => Some(
            admin::serve(
                &config,
                Arc::clone(&lifecycle),
                Arc::clone(tokens),
                tls.clone(),
                stop_rx.clone(),
            )
            .await?,
        ),
        None => None,
    };
    watch_secrets(&config, &state, admin_tokens, tls)?;

    let mut stop = stop_rx.clone();
    tokio::select! {
        biased;
        _ = stop.wait_for(|stop| *stop) => tracing::info!("shutdown requested while loading"),
        loaded = start_model(config.load.load_options(), handle_config) => {
            bring_up(&config, &state, &lifecycle, loaded?).await?;
        }
    }
    let _batch_workers = match &state.jobs {
        Some(jobs) => Some(jobs::runner::spawn(
            Arc::clone(jobs),
            Arc::clone(&state.registry),
            stop_rx.clone(),
        )?),
        None => None,
    };

    let _ = stop.wait_for(|stop| *stop).await;
    let drained = async {
        server.drained().await;
        if let Some(grpc) = grpc {
            grpc.drained().await;
        }
        if let Some(admin) = admin {
            admin.drained().await;
        }
    };
    match tokio::time::timeout(config.shutdown_grace, drained).await {
        Ok(()) => {
            tracing::info!("drained; exiting");
            Ok(())
        }
        Err(_) => {
            let grace = config.shutdown_grace;
            tracing::warn!(?grace, "shutdown grace expired with requests in flight");
            anyhow::bail!("shutdown grace ({grace:?}) expired with requests in flight")
        }
    }
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// The Batch API's jobs in `--batch-dir` or `<state-dir>/batches` (replayed from their
/// journal), or `None` without either.
async fn open_jobs(config: &ServeConfig) -> anyhow::Result<Option<Arc<Jobs>>> {
    let Some(dir) = config.jobs.dir(config.state_dir.as_deref()) else {
        return Ok(None);
    };
    let jobs = Jobs::open(
        &dir,
        config.jobs.jobs_redis.as_deref(),
        wiring::jobs_config(&config.jobs)?,
        wiring::batch_endpoints(config),
    )
    .await
    .with_context(|| format!("opening the batch jobs in {}", dir.display()))?;
    Ok(Some(jobs))
}

fn app_state(
    config: &ServeConfig,
    registry: Arc<Registry>,
    jobs: Option<Arc<Jobs>>,
) -> anyhow::Result<AppState> {
    Ok(AppState {
        registry,
        health: Arc::new(Health::default()),
        limits: Arc::new(wiring::request_limits(config)),
        metrics: metrics_handle()?,
        api_keys: config
            .api_key_file
            .as_deref()
            .map(ApiKeys::load)
            .transpose()?
            .map(Arc::new),
        rate_limiter: RateLimiter::new(config.rate_limit, config.rate_limit_burst),
        indexes: Arc::new(IndexSet::default()),
        index_required: config.index_required,
        recommend_max_k: config.recommend_max_k,
        jobs,
    })
}

/// Re-reads the API keys, admin tokens and TLS files on change and on SIGHUP.
fn watch_secrets(
    config: &ServeConfig,
    state: &AppState,
    admin_tokens: Option<Arc<ApiKeys>>,
    tls: Option<Arc<ServerTls>>,
) -> anyhow::Result<()> {
    let keys = |keys: Arc<ApiKeys>| keys as Arc<dyn Reload>;
    let secrets: [(_, Option<Arc<dyn Reload>>); 3] = [
        ("api keys", state.api_keys.clone().map(keys)),
        ("admin tokens", admin_tokens.map(keys)),
        ("tls", tls.map(|tls| tls as Arc<dyn Reload>)),
    ];
    let watched = secrets
        .into_iter()
        .filter_map(|(what, secret)| Some((what, secret?)))
        .collect();
    secrets::watch(watched, config.key_file_poll)
}

/// The boot version is loaded: register it, replay the audit log, open the indexes, turn ready.
async fn bring_up(
    config: &ServeConfig,
    state: &AppState,
    lifecycle: &Lifecycle,
    handle: ModelHandle,
) -> anyhow::Result<()> {
    tracing::info!(
        model = %handle.info.name, version = %handle.info.version,
        device = %handle.info.device, dtype = %handle.info.dtype, cpu_isa = handle.info.cpu_isa,
        dimensions = handle.info.dimensions, load_seconds = handle.info.load_seconds,
        "model ready"
    );
    let name = handle.info.name.clone();
    state.registry.insert(handle);
    for alias in &config.model_aliases {
        state.registry.add_alias(alias, &name);
    }
    lifecycle.remember_source(&name, &config.load.model);
    lifecycle
        .replay()
        .await
        .context("replaying the lifecycle audit log")?;
    let models = indexes::loaded_models(&state.registry)?;
    for index in indexes::open(config, &models).await? {
        state.indexes.insert(index);
    }
    state.health.set_loaded();
    Ok(())
}

/// Loads and starts a model on a blocking thread (reading weights and warming are blocking).
async fn start_model(
    opts: LoadOptions,
    handle_config: HandleConfig,
) -> anyhow::Result<ModelHandle> {
    tokio::task::spawn_blocking(move || {
        let loaded =
            model::load(&opts).with_context(|| format!("loading model {:?}", opts.source))?;
        ModelHandle::start(loaded, handle_config)
    })
    .await
    .context("model loader panicked")?
}

/// The process-wide Prometheus recorder, installed on first use with every series the HTTP
/// layer owns registered at zero. The lock makes concurrent first calls (several servers in one
/// process) install it once.
fn metrics_handle() -> anyhow::Result<PrometheusHandle> {
    static HANDLE: Mutex<Option<PrometheusHandle>> = Mutex::new(None);
    let mut handle = HANDLE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if handle.is_none() {
        *handle = Some(telemetry::install()?);
        http::metrics::register_error_codes();
    }
    Ok(handle.clone().expect("installed above"))
}
