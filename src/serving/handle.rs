//! The model registry: served models by name, each owning its tokenizer pool, queue and worker.
//!
//! Handlers ask the registry where a request goes — [`Registry::route`] by `name` or
//! `name@version` (or the default) and a caller route key — and call [`Routed::embed`]; nothing on
//! the request path knows how many versions are loaded. Several versions of a model live side by
//! side, each with its own queue and worker; which one answers `name` is the
//! [`crate::deploy`]'s business ([`Registry::get`] is the canary-blind shortcut).

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use tokio::sync::oneshot;

use crate::{
    batching::{BatchError, BatchLimits, Batcher, WorkerConfig},
    deploy::{audit::AuditLog, Deployment, Policy, Role, Routed},
    http::error::ApiError,
    model::{
        tokenizer::{TextTokenizer, TokenizeError, Truncation},
        LoadedModel, ModelInfo,
    },
    serving::cache::EmbeddingCache,
    telemetry::ModelLabels,
};

/// Requests with at most this much text are tokenized on the async runtime itself: a few short
/// texts take tens of microseconds, less than handing them to the pool and back.
const INLINE_TOKENIZE_BYTES: usize = 1024;

/// Per-model serving settings.
#[derive(Debug, Clone)]
pub struct HandleConfig {
    pub queue_capacity: usize,
    pub limits: BatchLimits,
    pub tokenizer_workers: usize,
    pub debug_delay: Option<Duration>,
    pub debug_panic_on: Option<String>,
    /// The shared response cache (`--cache-capacity`); `None` when off.
    pub cache: Option<Arc<EmbeddingCache>>,
}

/// Result of embedding one request.
#[derive(Debug)]
pub struct Embedded {
    pub vectors: Vec<Vec<f32>>,
    pub prompt_tokens: usize,
}

/// One served model version.
pub struct ModelHandle {
    pub info: ModelInfo,
    pub config: HandleConfig,
    tokenizer: Arc<TextTokenizer>,
    pool: rayon::ThreadPool,
    batcher: Batcher,
    retry_after: Duration,
}

impl ModelHandle {
    pub fn start(model: LoadedModel, mut config: HandleConfig) -> anyhow::Result<Self> {
        let LoadedModel {
            info,
            tokenizer,
            encoder,
        } = model;
        config.limits.packed = encoder.is_packed();
        config.limits.attention_span = encoder.attention_span();
        let labels = ModelLabels {
            model: info.name.clone(),
            version: info.version.clone(),
        };
        labels.loaded(
            &info.device,
            &info.dtype,
            Duration::from_secs_f64(info.load_seconds),
        );
        let debug_panic_on = match &config.debug_panic_on {
            Some(text) => Some(tokenizer.encode(text, true)?.ids),
            None => None,
        };
        let worker = WorkerConfig {
            limits: config.limits,
            debug_delay: config.debug_delay,
            debug_panic_on,
        };
        let batcher = Batcher::spawn(Arc::new(encoder), worker, config.queue_capacity, labels)?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(config.tokenizer_workers)
            .thread_name(|i| format!("inferd-tokenize-{i}"))
            .build()?;
        Ok(Self {
            info,
            tokenizer: Arc::new(tokenizer),
            pool,
            batcher,
            retry_after: Duration::from_secs(1),
            config,
        })
    }

    /// Embeds `texts`: cached inputs at once, the rest through the queue (see [`crate::serving::cache`]).
    pub async fn embed(
        &self,
        texts: Vec<String>,
        truncate: bool,
        normalize: bool,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Embedded, ApiError> {
        self.embed_truncating(
            texts,
            Truncation::from_flag(truncate),
            normalize,
            deadline,
            timeout,
        )
        .await
    }

    /// [`Self::embed`] with a choice of which end of a long text is cut. Goes through the
    /// response cache when there is one (left-truncated requests bypass it).
    pub async fn embed_truncating(
        &self,
        texts: Vec<String>,
        truncation: Truncation,
        normalize: bool,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Embedded, ApiError> {
        let cache = match (&self.config.cache, truncation) {
            (Some(cache), Truncation::Refuse | Truncation::Right) => cache,
            _ => {
                return self
                    .embed_uncached(texts, truncation, normalize, deadline, timeout)
                    .await
            }
        };
        let model = format!("{}@{}", self.info.name, self.info.version);
        let truncate = truncation == Truncation::Right;
        cache
            .embed_through(&model, texts, truncate, normalize, |misses| {
                self.embed_uncached(misses, truncation, normalize, deadline, timeout)
            })
            .await
    }

    /// Embeds `texts` through the queue, or fails fast when the queue is full.
    async fn embed_uncached(
        &self,
        texts: Vec<String>,
        truncation: Truncation,
        normalize: bool,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Embedded, ApiError> {
        let permit = self.batcher.admit().ok_or(ApiError::Overloaded {
            retry_after: self.retry_after,
        })?;
        let run = async {
            let sequences = self.tokenize(texts, truncation).await?;
            let prompt_tokens = sequences.iter().map(|s| s.len()).sum();
            let rx = self.batcher.submit(permit, sequences, normalize, deadline);
            let vectors = match rx.await {
                Ok(Ok(vectors)) => vectors,
                Ok(Err(err)) => return Err(batch_error(err, timeout)),
                Err(_) => return Err(batch_error(BatchError::WorkerGone, timeout)),
            };
            Ok(Embedded {
                vectors,
                prompt_tokens,
            })
        };
        tokio::time::timeout_at(deadline.into(), run)
            .await
            .unwrap_or(Err(ApiError::DeadlineExceeded(timeout)))
    }

    /// Tokenizes small requests in place (tens of microseconds: cheaper than two thread
    /// hand-offs) and larger ones on the pool, so neither the runtime nor the model thread
    /// spends long on it.
    async fn tokenize(
        &self,
        texts: Vec<String>,
        truncation: Truncation,
    ) -> Result<Vec<Arc<[u32]>>, ApiError> {
        let texts_bytes: usize = texts.iter().map(String::len).sum();
        let encode = move |tokenizer: &TextTokenizer| {
            texts
                .iter()
                .enumerate()
                .map(|(index, text)| {
                    tokenizer
                        .encode_with(text, truncation)
                        .map(|t| Arc::from(t.ids))
                        .map_err(|e| (index, e))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let result = if texts_bytes <= INLINE_TOKENIZE_BYTES {
            encode(&self.tokenizer)
        } else {
            self.with_tokenizer(encode).await?
        };
        match result {
            Ok(sequences) => Ok(sequences),
            Err((index, TokenizeError::TooLong { tokens, limit })) => Err(ApiError::InputTooLong {
                index,
                tokens,
                limit,
            }),
            Err((index, TokenizeError::Failed(msg))) => Err(ApiError::InvalidInput(format!(
                "input {index} could not be tokenized: {msg}"
            ))),
        }
    }

    /// Runs `job` on the tokenizer pool, so tokenizer work (`/tokenize`, `/decode` too) never
    /// runs on the async runtime or the model thread.
    pub async fn with_tokenizer<R: Send + 'static>(
        &self,
        job: impl FnOnce(&TextTokenizer) -> R + Send + 'static,
    ) -> Result<R, ApiError> {
        let (tx, rx) = oneshot::channel();
        let tokenizer = Arc::clone(&self.tokenizer);
        self.pool.spawn(move || {
            let _ = tx.send(job(&tokenizer));
        });
        rx.await
            .map_err(|_| ApiError::Internal("tokenizer pool dropped a job".into()))
    }

    pub fn queue_depth(&self) -> usize {
        self.batcher.depth()
    }
}

fn batch_error(err: BatchError, timeout: Duration) -> ApiError {
    match err {
        BatchError::DeadlineExceeded => ApiError::DeadlineExceeded(timeout),
        BatchError::Failed | BatchError::WorkerGone => ApiError::Internal(err.to_string()),
    }
}

/// Served models: every loaded version by `name@version`, and per name the [`Deployment`] that
/// routes `name` (promoted version, canary, shadow).
pub struct Registry {
    versions: RwLock<HashMap<String, Arc<ModelHandle>>>,
    deployments: RwLock<BTreeMap<String, Arc<Deployment>>>,
    default: RwLock<Option<String>>,
    policy: Arc<Policy>,
    audit: Option<Arc<AuditLog>>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new(Arc::new(Policy::default()), None)
    }
}

impl Registry {
    /// A registry whose deployments follow `policy` and audit automatic actions to `audit`.
    pub fn new(policy: Arc<Policy>, audit: Option<Arc<AuditLog>>) -> Self {
        Self {
            versions: RwLock::default(),
            deployments: RwLock::default(),
            default: RwLock::default(),
            policy,
            audit,
        }
    }

    /// Adds a version. The first version of a name is promoted (later ones stand by until the
    /// lifecycle gives them a role); the first name added becomes the default model.
    pub fn insert(&self, handle: ModelHandle) -> Arc<ModelHandle> {
        let handle = Arc::new(handle);
        let name = handle.info.name.clone();
        let mut versions = self.versions.write().expect("registry lock");
        versions.insert(versioned(&name, &handle.info.version), Arc::clone(&handle));
        drop(versions);
        self.deployments
            .write()
            .expect("registry lock")
            .entry(name.clone())
            .or_insert_with(|| {
                Arc::new(Deployment::new(
                    Arc::clone(&handle),
                    Arc::clone(&self.policy),
                    self.audit.clone(),
                ))
            });
        self.default
            .write()
            .expect("registry lock")
            .get_or_insert(name);
        handle
    }

    /// Looks a model up by `name` (its promoted version), `name@version`, or the default model's
    /// promoted version when `None`. Ignores canaries: routes that should take part in canary
    /// rollouts call [`Registry::route`] instead.
    pub fn get(&self, model: Option<&str>) -> Result<Arc<ModelHandle>, ApiError> {
        Ok(self.route_inner(model, None, false)?.handle)
    }

    /// Chooses the version for one request: `name@version` pins it; `name` (or `None`, the
    /// default model) goes to the promoted version or, for a weighted share sticky by
    /// `route_key` (the `x-inferd-route-key` header), to the canary. Call
    /// [`Routed::embed`] on the result so canary health and shadow copies are recorded.
    pub fn route(&self, model: Option<&str>, route_key: Option<&str>) -> Result<Routed, ApiError> {
        self.route_inner(model, route_key, true)
    }

    fn route_inner(
        &self,
        model: Option<&str>,
        route_key: Option<&str>,
        canary: bool,
    ) -> Result<Routed, ApiError> {
        let default = self.default.read().expect("registry lock").clone();
        let key = match model.or(default.as_deref()) {
            Some(key) => key,
            None => return Err(ApiError::NotReady),
        };
        if let Some((name, version)) = key.split_once('@') {
            let handle = self
                .version(name, version)
                .ok_or_else(|| ApiError::ModelNotFound(key.to_string()))?;
            let role = self.role_of(&handle);
            return Ok(Routed::pinned(handle, role));
        }
        let deployment = self
            .deployment(key)
            .ok_or_else(|| ApiError::ModelNotFound(key.to_string()))?;
        if canary {
            return Ok(deployment.route(route_key));
        }
        let promoted = Arc::clone(&deployment.table().promoted);
        Ok(Routed::pinned(promoted, Role::Promoted))
    }

    /// One loaded version.
    pub fn version(&self, name: &str, version: &str) -> Option<Arc<ModelHandle>> {
        let versions = self.versions.read().expect("registry lock");
        versions.get(&versioned(name, version)).cloned()
    }

    /// The deployment routing `name`.
    pub fn deployment(&self, name: &str) -> Option<Arc<Deployment>> {
        self.deployments
            .read()
            .expect("registry lock")
            .get(name)
            .cloned()
    }

    pub fn deployments(&self) -> Vec<Arc<Deployment>> {
        let deployments = self.deployments.read().expect("registry lock");
        deployments.values().cloned().collect()
    }

    /// The default model's name.
    pub fn default_name(&self) -> Option<String> {
        self.default.read().expect("registry lock").clone()
    }

    /// Removes a version so no new request reaches it; requests holding it finish normally.
    /// The caller makes sure no route table still names it.
    pub fn remove(&self, name: &str, version: &str) -> Option<Arc<ModelHandle>> {
        let mut versions = self.versions.write().expect("registry lock");
        versions.remove(&versioned(name, version))
    }

    /// What a loaded version does now.
    pub fn role_of(&self, handle: &ModelHandle) -> Role {
        match self.deployment(&handle.info.name) {
            Some(d) => d.table().role_of(&handle.info.version),
            None => Role::Standby,
        }
    }

    /// Every loaded version, by name then version.
    pub fn all(&self) -> Vec<Arc<ModelHandle>> {
        let versions = self.versions.read().expect("registry lock");
        let mut all: Vec<Arc<ModelHandle>> = versions.values().cloned().collect();
        all.sort_by(|a, b| (&a.info.name, &a.info.version).cmp(&(&b.info.name, &b.info.version)));
        all
    }

    /// The loaded version whose weights hash to `sha256` (what an item index records).
    pub fn by_weights(&self, sha256: &str) -> Option<Arc<ModelHandle>> {
        let versions = self.versions.read().expect("registry lock");
        versions.values().find(|h| h.info.sha256 == sha256).cloned()
    }

    /// Every loaded version of `name`.
    pub fn versions_of(&self, name: &str) -> Vec<Arc<ModelHandle>> {
        let mut all = self.all();
        all.retain(|h| h.info.name == name);
        all
    }

    pub fn is_empty(&self) -> bool {
        self.versions.read().expect("registry lock").is_empty()
    }
}

fn versioned(name: &str, version: &str) -> String {
    format!("{name}@{version}")
}
