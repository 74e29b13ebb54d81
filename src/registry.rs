//! The model registry: served models by name, each owning its tokenizer pool, queue and worker.
//!
//! Handlers ask the registry for a model by `name` or `name@version` (or the default) and call
//! [`ModelHandle::embed`]; nothing on the request path knows how many models are loaded. Loading
//! several versions side by side is a matter of inserting more handles.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use tokio::sync::oneshot;

use crate::{
    batching::{BatchError, BatchLimits, Batcher, WorkerConfig},
    cache::EmbeddingCache,
    error::ApiError,
    metrics::ModelLabels,
    model::{
        tokenizer::{TextTokenizer, TokenizeError, Truncation},
        LoadedModel, ModelInfo,
    },
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

    /// Embeds `texts`: cached inputs at once, the rest through the queue (see [`crate::cache`]).
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

/// Served models, keyed by `name` and by `name@version`.
#[derive(Default)]
pub struct Registry {
    models: RwLock<HashMap<String, Arc<ModelHandle>>>,
    default: RwLock<Option<String>>,
}

impl Registry {
    /// Adds a model; the first one added becomes the default.
    pub fn insert(&self, handle: ModelHandle) -> Arc<ModelHandle> {
        let handle = Arc::new(handle);
        let name = handle.info.name.clone();
        let versioned = format!("{name}@{}", handle.info.version);
        let mut models = self.models.write().expect("registry lock");
        models.insert(versioned, Arc::clone(&handle));
        models.insert(name.clone(), Arc::clone(&handle));
        self.default
            .write()
            .expect("registry lock")
            .get_or_insert(name);
        handle
    }

    /// Looks a model up by `name`, `name@version`, or the default when `None`.
    pub fn get(&self, model: Option<&str>) -> Result<Arc<ModelHandle>, ApiError> {
        let default = self.default.read().expect("registry lock").clone();
        let key = match model.or(default.as_deref()) {
            Some(key) => key,
            None => return Err(ApiError::NotReady),
        };
        self.models
            .read()
            .expect("registry lock")
            .get(key)
            .cloned()
            .ok_or_else(|| ApiError::ModelNotFound(key.to_string()))
    }

    /// Every distinct loaded model.
    pub fn all(&self) -> Vec<Arc<ModelHandle>> {
        let models = self.models.read().expect("registry lock");
        let mut seen: Vec<Arc<ModelHandle>> = Vec::new();
        for handle in models.values() {
            if !seen.iter().any(|h| Arc::ptr_eq(h, handle)) {
                seen.push(Arc::clone(handle));
            }
        }
        seen.sort_by(|a, b| a.info.name.cmp(&b.info.name));
        seen
    }

    pub fn is_empty(&self) -> bool {
        self.models.read().expect("registry lock").is_empty()
    }
}
