//! One served model version: its tokenizer pool, admission queue and batcher.
//!
//! [`ModelHandle::embed`] is the only way into a version: callers state what they want as an
//! [`EmbedRequest`]. A `prompt_name` the model lacks or `dimensions` it cannot give are refused
//! before any work; the prompt (named, else the model's default) is prepended to every text
//! first, so the cache and the tokenizer see what the model sees. Cached inputs are answered at
//! once (see [`super::cache`]), the rest are tokenized (in place when small, else on the
//! tokenizer pool) and queued for the batcher, failing fast with [`EmbedError::Overloaded`] when
//! the queue is full. The Matryoshka cut applies to the finished vectors. Which version a
//! request reaches is decided above, in `deploy`.

use std::{sync::Arc, time::Duration};

use tokio::sync::oneshot;
use tracing::Instrument;

use super::{
    cache::EmbeddingCache,
    drift::{DriftConfig, DriftMonitor},
    inspect::{TextStats, TokenStats},
    policy::{Counted, InputPolicy},
    EmbedError, EmbedRequest, Embedded, ModelRef,
};
use crate::{
    batching::{
        BatchError, BatchLimits, Batcher, ModelLabels, Permit, Priority, Sequence, WorkerConfig,
    },
    model::{
        heads::ModelKind,
        pooling::{l2_normalize, truncate_dimensions},
        tokenizer::{TextTokenizer, TokenizeError, Tokens, Truncation},
        LoadedModel, ModelInfo,
    },
};

/// Requests with at most this much text are tokenized on the async runtime itself: a few short
/// texts take tens of microseconds, less than handing them to the pool and back.
pub(super) const INLINE_TOKENIZE_BYTES: usize = 1024;

/// `--batch-background-budget`'s default: about one short text's compute on a small CPU.
pub const DEFAULT_BACKGROUND_BUDGET: Duration = Duration::from_millis(2);

/// Per-model serving settings.
#[derive(Debug, Clone)]
pub struct HandleConfig {
    pub queue_capacity: usize,
    pub limits: BatchLimits,
    pub tokenizer_workers: usize,
    /// Compute time background work (batch jobs) may fill one forward batch up to
    /// (`--batch-background-budget`).
    pub background_budget: Duration,
    pub debug_delay: Option<Duration>,
    pub debug_panic_on: Option<String>,
    /// The shared response cache (`--cache-capacity`); `None` when off.
    pub cache: Option<Arc<EmbeddingCache>>,
    /// Model tokens one request may carry in all its (uncached) inputs (`--max-client-tokens`).
    pub max_request_tokens: usize,
    /// Checks on each input (`--input-policy`).
    pub input_policy: InputPolicy,
    /// Drift monitoring (`--drift-window`, `--drift-reference`).
    pub drift: DriftConfig,
}

impl HandleConfig {
    /// A queue of `queue_capacity` requests, batches of at most `max_tokens` tokens and
    /// `max_sequences` inputs, no cache and no fault injection.
    pub fn new(
        queue_capacity: usize,
        max_tokens: usize,
        max_sequences: usize,
        tokenizer_workers: usize,
    ) -> Self {
        Self {
            queue_capacity,
            limits: BatchLimits {
                max_tokens,
                max_sequences,
                packed: false,     // set from the loaded encoder
                attention_span: 0, // likewise
            },
            tokenizer_workers,
            background_budget: DEFAULT_BACKGROUND_BUDGET,
            debug_delay: None,
            debug_panic_on: None,
            cache: None,
            max_request_tokens: usize::MAX,
            input_policy: InputPolicy::default(),
            drift: DriftConfig::default(),
        }
    }
}

/// One served model version.
pub struct ModelHandle {
    pub info: ModelInfo,
    pub config: HandleConfig,
    pub(super) tokenizer: Arc<TextTokenizer>,
    pool: rayon::ThreadPool,
    pub(super) batcher: Batcher,
    pub(super) retry_after: Duration,
    pub(super) drift: Option<DriftMonitor>,
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
            background_budget: config.background_budget,
            debug_delay: config.debug_delay,
            debug_panic_on,
        };
        let batcher = Batcher::spawn(Arc::new(encoder), worker, config.queue_capacity, labels)?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(config.tokenizer_workers)
            .thread_name(|i| format!("inferd-tokenize-{i}"))
            .build()?;
        config.input_policy.register(Counted {
            model: &info.name,
            version: &info.version,
        });
        let drift = DriftMonitor::new(&info.name, &info.version, info.dimensions, &config.drift);
        Ok(Self {
            info,
            tokenizer: Arc::new(tokenizer),
            pool,
            batcher,
            retry_after: Duration::from_secs(1),
            drift,
            config,
        })
    }

    /// This version, as its flagged inputs are counted.
    pub(super) fn counted(&self) -> Counted<'_> {
        Counted {
            model: &self.info.name,
            version: &self.info.version,
        }
    }

    /// `name@version` of this version.
    pub fn model_ref(&self) -> ModelRef {
        ModelRef::pinned(&self.info.name, &self.info.version)
    }

    /// Embeds `req.texts` with its prompt, cut to its `dimensions`; an embedding model only.
    #[tracing::instrument(name = "embed", skip_all, fields(
        model = %self.info.name, version = %self.info.version, texts = req.texts.len() as i64,
    ))]
    pub async fn embed(&self, mut req: EmbedRequest) -> Result<Embedded, EmbedError> {
        self.expect_kind(&[ModelKind::Embedding], "an embedding route")?;
        let dimensions = self.checked_dimensions(req.dimensions)?;
        let texts = req.texts.iter().map(String::as_str).enumerate();
        self.config
            .input_policy
            .check_texts(self.counted(), texts)?;
        req.texts = self.prompted(req.prompt_name.as_deref(), std::mem::take(&mut req.texts))?;
        let normalize = req.normalize;
        let mut embedded = self.embed_prompted(req).await?;
        if let Some(n) = dimensions {
            for v in &mut embedded.vectors {
                truncate_dimensions(v, n, normalize);
            }
        }
        Ok(embedded)
    }

    /// `texts` with the prompt `name` prepended (`None`: the model's default prompt, if any), as
    /// sentence-transformers' `encode(prompt_name=...)`; a name the model lacks is refused.
    pub fn prompted(
        &self,
        name: Option<&str>,
        texts: Vec<String>,
    ) -> Result<Vec<String>, EmbedError> {
        self.info
            .prompts
            .apply(name, texts)
            .map_err(|err| EmbedError::InvalidParameter {
                param: "prompt_name",
                message: err.to_string(),
            })
    }

    /// `requested` when this model can give it: from 1 to its own size (a Matryoshka cut).
    fn checked_dimensions(&self, requested: Option<usize>) -> Result<Option<usize>, EmbedError> {
        let info = &self.info;
        match requested {
            Some(n) if n == 0 || n > info.dimensions => Err(EmbedError::InvalidParameter {
                param: "dimensions",
                message: format!(
                    "`dimensions` must be between 1 and {}: model {} produces {}-dimensional \
                     embeddings and can only be cut shorter (Matryoshka truncation)",
                    info.dimensions, info.name, info.dimensions
                ),
            }),
            _ => Ok(requested),
        }
    }

    /// Embeds already-prompted `req.texts`: cached inputs at once, the rest through the queue.
    /// Left-truncated requests bypass the cache (its key records only whether texts were cut,
    /// not which end).
    async fn embed_prompted(&self, mut req: EmbedRequest) -> Result<Embedded, EmbedError> {
        let cache = match (&self.config.cache, req.truncation) {
            (Some(cache), Truncation::Refuse | Truncation::Right) => cache,
            _ => return self.embed_uncached(req).await,
        };
        let texts = std::mem::take(&mut req.texts);
        let truncate = req.truncation == Truncation::Right;
        cache
            .embed_through(
                &self.model_ref(),
                texts,
                truncate,
                req.normalize,
                |misses| {
                    self.embed_uncached(EmbedRequest {
                        texts: misses,
                        ..req
                    })
                },
            )
            .await
    }

    /// Embeds `req.texts` through the queue, or fails fast when the queue is full. With drift on,
    /// the worker returns raw vectors: their norms feed the monitor before they are normalised.
    async fn embed_uncached(&self, req: EmbedRequest) -> Result<Embedded, EmbedError> {
        let permit = self.admit(req.priority)?;
        let EmbedRequest {
            texts,
            truncation,
            normalize,
            deadline,
            priority,
            ..
        } = req;
        let budget = deadline.budget();
        let run = async {
            let text_stats = self.text_stats(&texts);
            let tokenize = tracing::info_span!("tokenize", texts = texts.len() as i64);
            let tokens = self
                .tokenize(texts, truncation)
                .instrument(tokenize)
                .await?;
            let token_stats: Vec<TokenStats> = tokens.iter().map(TokenStats::of).collect();
            self.config
                .input_policy
                .check_tokens(self.counted(), &token_stats)?;
            let prompt_tokens = tokens.iter().map(Tokens::len).sum();
            if prompt_tokens > self.config.max_request_tokens {
                return Err(EmbedError::TooManyTokens {
                    tokens: prompt_tokens,
                    limit: self.config.max_request_tokens,
                });
            }
            let sequences = tokens
                .into_iter()
                .map(|t| Sequence::from(Arc::<[u32]>::from(t.ids)))
                .collect();
            let normalize_in_worker = normalize && self.drift.is_none();
            let rx = self.batcher.submit(
                permit,
                sequences,
                normalize_in_worker,
                deadline.at(),
                priority,
            );
            let mut vectors = match rx.await {
                Ok(Ok(vectors)) => vectors,
                Ok(Err(err)) => return Err(batch_error(err, budget)),
                Err(_) => return Err(batch_error(BatchError::WorkerGone, budget)),
            };
            if let Some(drift) = &self.drift {
                drift.record(&text_stats, &token_stats, &vectors);
                if normalize {
                    vectors.iter_mut().for_each(|v| l2_normalize(v));
                }
            }
            Ok(Embedded {
                vectors,
                prompt_tokens,
            })
        };
        tokio::time::timeout_at(deadline.at().into(), run)
            .await
            .unwrap_or(Err(EmbedError::DeadlineExceeded(budget)))
    }

    /// Each text's character counts, when the drift monitor reads them.
    pub(super) fn text_stats<'a>(
        &self,
        texts: impl IntoIterator<Item = &'a String>,
    ) -> Vec<TextStats> {
        match &self.drift {
            Some(_) => texts.into_iter().map(|t| TextStats::of(t)).collect(),
            None => Vec::new(),
        }
    }

    /// `GET /drift`'s view of this version; `None` when drift is off.
    pub fn drift_report(&self) -> Option<super::drift::DriftReport> {
        self.drift.as_ref().map(DriftMonitor::report)
    }

    /// The drift reference taken so far (`drift profile`); `None` when drift is off.
    pub fn drift_profile(&self) -> Option<super::drift::Profile> {
        self.drift.as_ref().map(DriftMonitor::profile)
    }

    /// Takes a queue slot (its own `admission` span), or fails fast when the queue is full.
    pub(super) fn admit(&self, priority: Priority) -> Result<Permit, EmbedError> {
        let _span =
            tracing::info_span!("admission", queue_depth = self.batcher.depth() as i64).entered();
        self.batcher.admit(priority).ok_or(EmbedError::Overloaded {
            retry_after: self.retry_after,
        })
    }

    /// Tokenizes small requests in place (tens of microseconds: cheaper than two thread
    /// hand-offs) and larger ones on the pool, so neither the runtime nor the model thread
    /// spends long on it.
    async fn tokenize(
        &self,
        texts: Vec<String>,
        truncation: Truncation,
    ) -> Result<Vec<Tokens>, EmbedError> {
        let texts_bytes: usize = texts.iter().map(String::len).sum();
        let encode = move |tokenizer: &TextTokenizer| {
            texts
                .iter()
                .enumerate()
                .map(|(index, text)| {
                    tokenizer
                        .encode_with(text, truncation)
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
            Err((index, TokenizeError::TooLong { tokens, limit })) => {
                Err(EmbedError::InputTooLong {
                    index,
                    tokens,
                    limit,
                })
            }
            Err((index, TokenizeError::Failed(msg))) => Err(EmbedError::InvalidInput(format!(
                "input {index} could not be tokenized: {msg}"
            ))),
        }
    }

    /// Runs `job` on the tokenizer pool, so tokenizer work (`/tokenize`, `/decode` too) never
    /// runs on the async runtime or the model thread.
    pub async fn with_tokenizer<R: Send + 'static>(
        &self,
        job: impl FnOnce(&TextTokenizer) -> R + Send + 'static,
    ) -> Result<R, EmbedError> {
        let (tx, rx) = oneshot::channel();
        let tokenizer = Arc::clone(&self.tokenizer);
        self.pool.spawn(move || {
            let _ = tx.send(job(&tokenizer));
        });
        rx.await
            .map_err(|_| EmbedError::Internal("tokenizer pool dropped a job".into()))
    }

    /// Token ids back to text on the tokenizer pool, one text per list; the index of the first
    /// list that does not decode, with why.
    pub async fn decode(
        &self,
        lists: Vec<Vec<u32>>,
        skip_special_tokens: bool,
    ) -> Result<Result<Vec<String>, (usize, TokenizeError)>, EmbedError> {
        self.with_tokenizer(move |tokenizer| {
            lists
                .iter()
                .enumerate()
                .map(|(i, ids)| {
                    tokenizer
                        .decode(ids, skip_special_tokens)
                        .map_err(|e| (i, e))
                })
                .collect()
        })
        .await
    }

    pub fn queue_depth(&self) -> usize {
        self.batcher.depth()
    }
}

pub(super) fn batch_error(err: BatchError, budget: Duration) -> EmbedError {
    match err {
        BatchError::DeadlineExceeded => EmbedError::DeadlineExceeded(budget),
        BatchError::Failed | BatchError::WorkerGone => EmbedError::Internal(err.to_string()),
    }
}
