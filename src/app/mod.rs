//! The composition root: the only code that knows every layer. [`serve`] wires the registry,
//! lifecycle, indexes and HTTP routers for a given listener and shutdown signal, so tests can
//! run it on port 0; [`build_index`] runs `inferd index build`.

pub mod shutdown;

use std::{
    future::{Future, IntoFuture},
    sync::{Arc, Mutex},
};

use anyhow::Context;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::{net::TcpListener, sync::watch};

use crate::auth::{self, ApiKeys};
use crate::batching::BatchLimits;
use crate::cli::{IndexBuildConfig, IndexSpec, ServeConfig};
use crate::deploy::{
    audit::AuditLog, controller::LoadDefaults, rollback::CanaryLimits, Lifecycle, Policy,
};
use crate::http::{
    self,
    state::{AppState, Health, RequestLimits},
};
use crate::index::{self, IndexSet, LiveIndex};
use crate::model::{self, LoadOptions, ModelInfo};
use crate::serving::{
    cache,
    handle::{HandleConfig, ModelHandle, Registry},
};

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
    http::admin::check_bind(config.admin_listen, config.admin_token_file.as_deref())?;
    let audit = config
        .state_dir
        .as_deref()
        .map(AuditLog::open)
        .transpose()?
        .map(Arc::new);
    let policy = Arc::new(policy(&config));
    let registry = Arc::new(Registry::new(Arc::clone(&policy), audit.clone()));
    let lifecycle = Arc::new(Lifecycle::new(
        Arc::clone(&registry),
        audit,
        policy,
        LoadDefaults {
            device: config.load.device,
            dtype: config.load.dtype,
            handle: handle_config(&config),
            manifest_dir: config.manifest_dir.clone(),
        },
    ));
    let state = AppState {
        registry,
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
        rate_limiter: http::middleware::rate_limit::RateLimiter::new(
            config.rate_limit,
            config.rate_limit_burst,
        ),
        indexes: Arc::new(IndexSet::default()),
        recommend_max_k: config.recommend_max_k,
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

    let admin = match admin_tokens(&config)? {
        Some(tokens) => {
            Some(serve_admin(&config, Arc::clone(&lifecycle), tokens, stop_rx.clone()).await?)
        }
        None => None,
    };

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
            let name = handle.info.name.clone();
            state.registry.insert(handle);
            lifecycle.remember_source(&name, &config.load.model);
            lifecycle.replay().await.context("replaying the lifecycle audit log")?;
            let specs = config.indexes.clone();
            let compact_after = config.index_compact_after;
            let models = loaded_models(&state.registry)?;
            let indexes =
                tokio::task::spawn_blocking(move || open_indexes(&specs, &models, compact_after))
                    .await
                    .context("index loader panicked")??;
            for index in indexes {
                state.indexes.insert(index);
            }
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
    if let Some(admin) = admin {
        admin.abort();
    }
    Ok(())
}

fn policy(config: &ServeConfig) -> Policy {
    Policy {
        canary: CanaryLimits {
            max_error_ratio: config.canary_max_error_ratio,
            max_p99: config.canary_max_p99,
            min_requests: config.canary_min_requests,
            window: config.canary_window,
        },
        shadow_queue: config.shadow_queue,
        shadow_window: config.shadow_window,
        shadow_min_samples: config.shadow_min_samples,
        promote_min_agreement: config.promote_min_agreement,
        request_timeout: config.request_timeout,
    }
}

/// The admin API's tokens: `--admin-token-file`, else (loopback only) a token generated once
/// into `<state-dir>/admin.token`, else none and the admin API stays off.
fn admin_tokens(config: &ServeConfig) -> anyhow::Result<Option<Arc<ApiKeys>>> {
    if let Some(path) = &config.admin_token_file {
        return Ok(Some(Arc::new(ApiKeys::load(path)?)));
    }
    let Some(dir) = &config.state_dir else {
        tracing::info!("admin API off: pass --admin-token-file or --state-dir to enable it");
        return Ok(None);
    };
    let path = crate::deploy::controller::generated_token_path(dir);
    if !path.exists() {
        write_secret(&path, &format!("admin:{}\n", random_token()?))?;
        tracing::info!(path = %path.display(), "generated an admin token");
    }
    Ok(Some(Arc::new(ApiKeys::load(&path)?)))
}

fn random_token() -> anyhow::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom for an admin token; pass --admin-token-file instead")?;
    Ok(hex::encode(bytes))
}

fn write_secret(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

/// Binds `--admin-listen` and serves the admin API until shutdown.
async fn serve_admin(
    config: &ServeConfig,
    lifecycle: Arc<Lifecycle>,
    tokens: Arc<ApiKeys>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = TcpListener::bind(config.admin_listen)
        .await
        .with_context(|| format!("binding the admin API on {}", config.admin_listen))?;
    tracing::info!(addr = %listener.local_addr()?, "admin listening");
    let app = http::admin::router(lifecycle, tokens);
    Ok(tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = stop.wait_for(|stop| *stop).await;
        });
        if let Err(err) = serve.await {
            tracing::error!(%err, "admin API failed");
        }
    }))
}

fn handle_config(config: &ServeConfig) -> HandleConfig {
    HandleConfig {
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
    }
}

/// The loaded versions, the promoted one first: what `--index` directories are checked against.
fn loaded_models(registry: &Registry) -> anyhow::Result<Vec<ModelInfo>> {
    let promoted = registry.get(None).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut models = vec![promoted.info.clone()];
    models.extend(
        registry
            .all()
            .into_iter()
            .filter(|h| h.info.sha256 != promoted.info.sha256)
            .map(|h| h.info.clone()),
    );
    Ok(models)
}

/// Loads every `--index`, refusing any built by weights that no loaded version has.
fn open_indexes(
    specs: &[IndexSpec],
    models: &[ModelInfo],
    compact_after: usize,
) -> anyhow::Result<Vec<Arc<LiveIndex>>> {
    let mut names = std::collections::HashSet::new();
    specs
        .iter()
        .map(|spec| {
            anyhow::ensure!(
                names.insert(&spec.name),
                "--index {:?} given twice",
                spec.name
            );
            LiveIndex::open(&spec.name, &spec.dir, compact_after, |header| {
                let builder = models.iter().find(|m| m.sha256 == header.model_sha256);
                index::check_model(&spec.name, header, builder.unwrap_or(&models[0]))
            })
            .with_context(|| format!("loading index {:?} from {}", spec.name, spec.dir.display()))
        })
        .collect()
}

/// `inferd index build`: loads the model as `serve` does and embeds the catalog through it.
pub async fn build_index(config: IndexBuildConfig) -> anyhow::Result<index::build::BuildReport> {
    let opts = config.load.load_options();
    let handle_config = HandleConfig {
        queue_capacity: 1024,
        limits: BatchLimits {
            max_tokens: config.max_batch_tokens,
            max_sequences: config.max_batch_requests,
            packed: false,     // set from the loaded encoder
            attention_span: 0, // likewise
        },
        tokenizer_workers: 2,
        debug_delay: None,
        debug_panic_on: None,
        cache: cache::EmbeddingCache::new(0),
    };
    let catalog = config.catalog.clone();
    let items = tokio::task::spawn_blocking(move || index::build::read_catalog(&catalog))
        .await
        .context("catalog reader panicked")??;
    anyhow::ensure!(
        !items.is_empty(),
        "catalog {} has no items",
        config.catalog.display()
    );
    let model = Arc::new(start_model(opts, handle_config).await?);
    tracing::info!(items = items.len(), model = %model.info.name, version = %model.info.version, "embedding catalog");
    index::build::build(model, items, &config.out, config.search).await
}

/// Loads and starts the model on a blocking thread (reading weights and warming are blocking).
async fn load_model(config: &ServeConfig) -> anyhow::Result<ModelHandle> {
    start_model(config.load.load_options(), handle_config(config)).await
}

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

/// The process-wide Prometheus recorder, installed on first use. The lock makes concurrent first
/// calls (several servers in one process) install it once.
fn metrics_handle() -> anyhow::Result<PrometheusHandle> {
    static HANDLE: Mutex<Option<PrometheusHandle>> = Mutex::new(None);
    let mut handle = HANDLE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if handle.is_none() {
        *handle = Some(crate::telemetry::install()?);
    }
    Ok(handle.clone().expect("installed above"))
}
