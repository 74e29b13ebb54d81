//! `inferd serve`: every serving flag, and the checks clap cannot express.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::Args;

use super::{parse_duration, IndexSpec, JobsArgs, LogFormat, ModelArgs};

/// Options of `inferd serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    #[command(flatten)]
    pub load: ModelArgs,

    /// Folder of model manifests the admin API loads versions from by model name.
    #[arg(long, env = "INFERD_MANIFEST_DIR", default_value = "models")]
    pub manifest_dir: PathBuf,

    /// Address of the admin API (model lifecycle). Needs a token: `--admin-token-file`, or on a
    /// loopback address a generated one written to `<state-dir>/admin.token`. Without either the
    /// admin API is off; a non-loopback address without `--admin-token-file` refuses to start.
    #[arg(long, env = "INFERD_ADMIN_LISTEN", default_value = "127.0.0.1:9091")]
    pub admin_listen: SocketAddr,

    /// Admin bearer tokens, in the `--api-key-file` format (`name:secret` per line; the name is
    /// recorded in the audit log as who acted).
    #[arg(long, env = "INFERD_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,

    /// Folder for the lifecycle audit log (`lifecycle.jsonl`), replayed on start so the service
    /// comes back with the same promoted versions, canaries and shadows, and (unless
    /// `--batch-dir` says otherwise) for the Batch API's files and journal in `batches/`;
    /// without either the Batch API answers 503.
    #[arg(long, env = "INFERD_STATE_DIR")]
    pub state_dir: Option<PathBuf>,

    /// Automatic rollback: canary error ratio (5xx) above which its weight returns to 0.
    #[arg(long, env = "INFERD_CANARY_MAX_ERROR_RATIO", default_value_t = 0.05)]
    pub canary_max_error_ratio: f64,

    /// Automatic rollback: canary p99 latency above which its weight returns to 0.
    #[arg(long, env = "INFERD_CANARY_MAX_P99", default_value = "2s", value_parser = parse_duration)]
    pub canary_max_p99: Duration,

    /// Automatic rollback: canary requests in the window before the limits are judged.
    #[arg(long, env = "INFERD_CANARY_MIN_REQUESTS", default_value_t = 20)]
    pub canary_min_requests: usize,

    /// Automatic rollback: how far back canary requests count.
    #[arg(long, env = "INFERD_CANARY_WINDOW", default_value = "60s", value_parser = parse_duration)]
    pub canary_window: Duration,

    /// Shadow requests waiting for the candidate, at most; more are dropped (never queued
    /// behind live traffic).
    #[arg(long, env = "INFERD_SHADOW_QUEUE", default_value_t = 64)]
    pub shadow_queue: usize,

    /// Shadowed texts kept for agreement statistics (pairwise similarities over this window).
    #[arg(long, env = "INFERD_SHADOW_WINDOW", default_value_t = 128)]
    pub shadow_window: usize,

    /// Shadowed texts needed before agreement counts for `promote`.
    #[arg(long, env = "INFERD_SHADOW_MIN_SAMPLES", default_value_t = 32)]
    pub shadow_min_samples: usize,

    /// `promote` refuses (unless forced) when the candidate's similarity-structure agreement
    /// (Spearman rank correlation of pairwise similarities) is below this, or unmeasured.
    #[arg(long, env = "INFERD_PROMOTE_MIN_AGREEMENT", default_value_t = 0.9)]
    pub promote_min_agreement: f64,

    /// Address to listen on.
    #[arg(long, env = "INFERD_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,

    /// Requests admitted and not yet answered, at most; more are refused with 503 `overloaded`.
    #[arg(long, env = "INFERD_MAX_QUEUE_REQUESTS", default_value_t = 1024)]
    pub max_queue_requests: usize,

    /// Token budget of one forward batch: real tokens on CPU (packed forward), sequences ×
    /// longest sequence on CUDA (padded forward).
    #[arg(long, env = "INFERD_MAX_BATCH_TOKENS", default_value_t = 16384)]
    pub max_batch_tokens: usize,

    /// Inputs (sequences) in one forward batch, at most.
    #[arg(long, env = "INFERD_MAX_BATCH_REQUESTS", default_value_t = 64)]
    pub max_batch_requests: usize,

    /// Inputs one request may carry, at most.
    #[arg(long, env = "INFERD_MAX_CLIENT_BATCH", default_value_t = 256)]
    pub max_client_batch: usize,

    /// Largest request body accepted, in bytes.
    #[arg(long, env = "INFERD_MAX_BODY_BYTES", default_value_t = 2 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Time a request may spend in the service before it fails with 504 (e.g. 30s, 500ms).
    #[arg(long, env = "INFERD_REQUEST_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// On SIGTERM/SIGINT, how long queued and in-flight work may take before the process exits.
    #[arg(long, env = "INFERD_SHUTDOWN_GRACE", default_value = "30s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,

    /// Threads that tokenize requests (off the async runtime and off the model thread).
    #[arg(long, env = "INFERD_TOKENIZER_WORKERS", default_value_t = 2)]
    pub tokenizer_workers: usize,

    /// Threads the model's CPU kernels use (default: all cores).
    #[arg(long, env = "INFERD_THREADS")]
    pub threads: Option<usize>,

    /// File of API keys (`name:secret` or `secret` per line). When set, API routes need
    /// `Authorization: Bearer <secret>`; probes and /metrics stay open.
    #[arg(long, env = "INFERD_API_KEY_FILE")]
    pub api_key_file: Option<PathBuf>,

    /// Requests per second each API key may make (without `--api-key-file`: all callers
    /// together); beyond it 429 `rate_limited` with `Retry-After`. Unset or 0: no limit.
    #[arg(long, env = "INFERD_RATE_LIMIT")]
    pub rate_limit: Option<f64>,

    /// Requests a key may make in a burst above its rate (default: the rate, at least 1).
    #[arg(long, env = "INFERD_RATE_LIMIT_BURST")]
    pub rate_limit_burst: Option<u32>,

    /// Embeddings kept in the LRU response cache, keyed by model version, options and text;
    /// 0 turns the cache off.
    #[arg(long, env = "INFERD_CACHE_CAPACITY", default_value_t = 0)]
    pub cache_capacity: usize,

    /// Log format.
    #[arg(long, env = "INFERD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Item index for `/recommend`, as NAME=DIR or NAME=postgresql://USER:PASSWORD@HOST/DB
    /// (repeatable; comma-separated in the env var). An index built by other model weights is
    /// refused at startup.
    #[arg(long = "index", env = "INFERD_INDEX", value_delimiter = ',')]
    pub indexes: Vec<IndexSpec>,

    /// Logged item writes after which an index folds its write-ahead log into a new generation.
    #[arg(long, env = "INFERD_INDEX_COMPACT_AFTER", default_value_t = 10_000)]
    pub index_compact_after: usize,

    /// Connections each PostgreSQL index may hold open at once.
    #[arg(long, env = "INFERD_INDEX_POOL_SIZE", default_value_t = 8)]
    pub index_pool_size: usize,

    /// Bound on connecting to, waiting for, and each query of a PostgreSQL index; past it the
    /// request is `503 index_unavailable`.
    #[arg(long, env = "INFERD_INDEX_TIMEOUT", value_parser = parse_duration, default_value = "2s")]
    pub index_timeout: Duration,

    /// Report not ready (`/readyz` 503) while a PostgreSQL index cannot be reached.
    #[arg(long, env = "INFERD_INDEX_REQUIRED")]
    pub index_required: bool,

    /// Largest `k` a `/recommend` request may ask for.
    #[arg(long, env = "INFERD_RECOMMEND_MAX_K", default_value_t = 100)]
    pub recommend_max_k: usize,

    #[command(flatten)]
    pub jobs: JobsArgs,

    /// Fault injection for tests and drills: sleep this long before every forward batch.
    #[arg(long, env = "INFERD_DEBUG_BATCH_DELAY", value_parser = parse_duration, hide = true)]
    pub debug_batch_delay: Option<Duration>,

    /// Fault injection for tests and drills: sleep this long in the middle of each index
    /// compaction (after the live rows are written, before the generation is published).
    #[arg(long, env = "INFERD_DEBUG_COMPACT_DELAY", value_parser = parse_duration, hide = true)]
    pub debug_compact_delay: Option<Duration>,

    /// Fault injection for tests and drills: panic in the model worker when a batch holds this text.
    #[arg(long, env = "INFERD_DEBUG_PANIC_ON", hide = true)]
    pub debug_panic_on: Option<String>,
}

impl ServeConfig {
    /// Rejects combinations clap cannot check on its own.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("--max-queue-requests", self.max_queue_requests),
            ("--max-batch-tokens", self.max_batch_tokens),
            ("--max-batch-requests", self.max_batch_requests),
            ("--max-client-batch", self.max_client_batch),
            ("--max-body-bytes", self.max_body_bytes),
            ("--tokenizer-workers", self.tokenizer_workers),
            ("--shadow-queue", self.shadow_queue),
            ("--shadow-window", self.shadow_window),
            ("--index-compact-after", self.index_compact_after),
            ("--index-pool-size", self.index_pool_size),
            ("--recommend-max-k", self.recommend_max_k),
        ];
        if !(0.0..=1.0).contains(&self.canary_max_error_ratio) {
            return Err("--canary-max-error-ratio must be between 0 and 1".into());
        }
        self.jobs.validate(self.state_dir.as_deref())?;
        match positive.iter().find(|(_, v)| *v == 0) {
            Some((flag, _)) => Err(format!("{flag} must be at least 1")),
            None if self.threads == Some(0) => Err("--threads must be at least 1".into()),
            None if self.rate_limit.is_some_and(|r| !r.is_finite() || r < 0.0) => {
                Err("--rate-limit must be a non-negative number of requests per second".into())
            }
            None if self.rate_limit_burst == Some(0) => {
                Err("--rate-limit-burst must be at least 1".into())
            }
            None => Ok(()),
        }
    }
}
