//! `inferd serve`: every serving flag, and the checks clap cannot express.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{ArgAction, Args, ValueEnum};

use super::{
    parse_duration, IndexSpec, JobsArgs, ListenArgs, LogFormat, ModelArgs, MonitorArgs, TraceArgs,
};

/// Options of `inferd serve`, in `--help` order: serving, batching, limits, gateway,
/// lifecycle, index, observability, then the Batch API.
#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    #[command(flatten, next_help_heading = "Serving")]
    pub load: ModelArgs,

    /// Address to listen on.
    #[arg(
        help_heading = "Serving",
        long,
        env = "INFERD_LISTEN",
        default_value = "0.0.0.0:8080"
    )]
    pub listen: SocketAddr,

    /// Address of the gRPC listener (TEI's `tei.v1`, `grpc.health.v1` and server reflection,
    /// same models, keys and limits as HTTP), or `off`.
    #[arg(
        help_heading = "Serving",
        long,
        env = "INFERD_GRPC_LISTEN",
        default_value = "0.0.0.0:8081",
        value_parser = parse_grpc_listen
    )]
    pub grpc_listen: GrpcListen,

    /// More names the served model answers to on every route (repeatable; comma-separated in
    /// the env var), e.g. `text-embedding-3-small` for clients with a fixed model name. Besides
    /// these it answers to its name, `name@version` and its hub repo id.
    #[arg(
        help_heading = "Serving",
        long = "model-alias",
        env = "INFERD_MODEL_ALIAS",
        value_delimiter = ','
    )]
    pub model_aliases: Vec<String>,

    /// What token-id arrays in `/v1/embeddings` `input` are: `tiktoken` (OpenAI's cl100k_base,
    /// as LangChain and other OpenAI clients send; decoded to text, then tokenized by the model),
    /// `model` (ids of the served model's own vocabulary) or `reject` (422).
    #[arg(help_heading = "Serving", long, env = "INFERD_OPENAI_TOKEN_IDS", value_enum, default_value_t = OpenAiTokenIds::Tiktoken)]
    pub openai_token_ids: OpenAiTokenIds,

    /// Threads the model's CPU kernels use (default: all cores).
    #[arg(help_heading = "Serving", long, env = "INFERD_THREADS")]
    pub threads: Option<usize>,

    /// Requests admitted and not yet answered, at most; more are refused with 503 `overloaded`.
    #[arg(
        help_heading = "Batching",
        long,
        env = "INFERD_MAX_QUEUE_REQUESTS",
        default_value_t = 1024
    )]
    pub max_queue_requests: usize,

    /// Token budget of one forward batch: real tokens on CPU (packed forward), sequences ×
    /// longest sequence on CUDA (padded forward).
    #[arg(
        help_heading = "Batching",
        long,
        env = "INFERD_MAX_BATCH_TOKENS",
        default_value_t = 16384
    )]
    pub max_batch_tokens: usize,

    /// Inputs (sequences) in one forward batch, at most.
    #[arg(
        help_heading = "Batching",
        long,
        env = "INFERD_MAX_BATCH_REQUESTS",
        default_value_t = 64
    )]
    pub max_batch_requests: usize,

    /// Threads that tokenize requests (off the async runtime and off the model thread).
    #[arg(
        help_heading = "Batching",
        long,
        env = "INFERD_TOKENIZER_WORKERS",
        default_value_t = 2
    )]
    pub tokenizer_workers: usize,

    /// Embeddings kept in the LRU response cache, keyed by model version, options and text;
    /// 0 turns the cache off.
    #[arg(
        help_heading = "Batching",
        long,
        env = "INFERD_CACHE_CAPACITY",
        default_value_t = 0
    )]
    pub cache_capacity: usize,

    /// Cut inputs longer than the model's limit on every route (as TEI's `--auto-truncate`),
    /// unless a request says `"truncate": false`; with `false`, over-long inputs are a 413 unless
    /// the request says `"truncate": true`.
    #[arg(help_heading = "Limits", long, env = "INFERD_AUTO_TRUNCATE", default_value_t = true, action = ArgAction::Set)]
    pub auto_truncate: bool,

    /// Inputs one request may carry, at most (OpenAI allows 2,048).
    #[arg(
        help_heading = "Limits",
        long,
        env = "INFERD_MAX_CLIENT_BATCH",
        default_value_t = 2048
    )]
    pub max_client_batch: usize,

    /// Largest answer a request may get, in bytes, where the answer can outgrow its request by
    /// far (`/tokenize`: a token object per token); beyond it 413 `response_too_large`, checked
    /// before the answer is written out.
    #[arg(help_heading = "Limits", long, env = "INFERD_MAX_RESPONSE_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_response_bytes: usize,

    /// Model tokens one request may carry in all its inputs (after truncation), at most; more is
    /// a 413 `too_many_tokens`. Bounds the memory one request takes.
    #[arg(help_heading = "Limits", long, env = "INFERD_MAX_CLIENT_TOKENS", default_value_t = 1024 * 1024)]
    pub max_client_tokens: usize,

    /// Largest request body accepted, in bytes.
    #[arg(help_heading = "Limits", long, env = "INFERD_MAX_BODY_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Time a request may spend in the service before it fails with 504 (e.g. 30s, 500ms).
    #[arg(help_heading = "Limits", long, env = "INFERD_REQUEST_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// File of API keys (`name:secret` or `secret` per line). When set, API routes need
    /// `Authorization: Bearer <secret>`; probes and /metrics stay open.
    #[arg(help_heading = "Gateway", long, env = "INFERD_API_KEY_FILE")]
    pub api_key_file: Option<PathBuf>,

    /// How often the API key and admin token files are checked for changes (a changed file is
    /// re-read, so keys rotate without a restart; SIGHUP re-reads them at once). `off`: only
    /// on SIGHUP.
    #[arg(help_heading = "Gateway", long, env = "INFERD_KEY_FILE_POLL", default_value = "250ms", value_parser = parse_poll)]
    pub key_file_poll: Duration,

    /// Requests per second each API key may make (without `--api-key-file`: all callers
    /// together); beyond it 429 `rate_limited` with `Retry-After`. Unset or 0: no limit.
    #[arg(help_heading = "Gateway", long, env = "INFERD_RATE_LIMIT")]
    pub rate_limit: Option<f64>,

    /// Requests a key may make in a burst above its rate (default: the rate, at least 1).
    #[arg(help_heading = "Gateway", long, env = "INFERD_RATE_LIMIT_BURST")]
    pub rate_limit_burst: Option<u32>,

    /// Folder of model manifests the admin API loads versions from by model name.
    #[arg(
        help_heading = "Lifecycle",
        long,
        env = "INFERD_MANIFEST_DIR",
        default_value = "models"
    )]
    pub manifest_dir: PathBuf,

    /// Address of the admin API (model lifecycle). Needs a token: `--admin-token-file`, or on a
    /// loopback address a generated one written to `<state-dir>/admin.token`. Without either the
    /// admin API is off; a non-loopback address without `--admin-token-file` refuses to start.
    #[arg(
        help_heading = "Lifecycle",
        long,
        env = "INFERD_ADMIN_LISTEN",
        default_value = "127.0.0.1:9091"
    )]
    pub admin_listen: SocketAddr,

    /// Admin bearer tokens, in the `--api-key-file` format (`name:secret` per line; the name is
    /// recorded in the audit log as who acted).
    #[arg(help_heading = "Lifecycle", long, env = "INFERD_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,

    /// Folder for the lifecycle audit log (`lifecycle.jsonl`), replayed on start so the service
    /// comes back with the same promoted versions, canaries and shadows, and (unless
    /// `--batch-dir` says otherwise) for the Batch API's files and journal in `batches/`;
    /// without either the Batch API answers 503.
    #[arg(help_heading = "Lifecycle", long, env = "INFERD_STATE_DIR")]
    pub state_dir: Option<PathBuf>,

    /// Automatic rollback: canary error ratio (5xx) above which its weight returns to 0.
    #[arg(
        help_heading = "Lifecycle",
        long,
        env = "INFERD_CANARY_MAX_ERROR_RATIO",
        default_value_t = 0.05
    )]
    pub canary_max_error_ratio: f64,

    /// Automatic rollback: canary p99 latency above which its weight returns to 0.
    #[arg(help_heading = "Lifecycle", long, env = "INFERD_CANARY_MAX_P99", default_value = "2s", value_parser = parse_duration)]
    pub canary_max_p99: Duration,

    /// Automatic rollback: canary requests in the window before the limits are judged.
    #[arg(
        help_heading = "Lifecycle",
        long,
        env = "INFERD_CANARY_MIN_REQUESTS",
        default_value_t = 20
    )]
    pub canary_min_requests: usize,

    /// Automatic rollback: how far back canary requests count.
    #[arg(help_heading = "Lifecycle", long, env = "INFERD_CANARY_WINDOW", default_value = "60s", value_parser = parse_duration)]
    pub canary_window: Duration,

    /// Shadow requests waiting for the candidate, at most; more are dropped (never queued
    /// behind live traffic).
    #[arg(
        help_heading = "Lifecycle",
        long,
        env = "INFERD_SHADOW_QUEUE",
        default_value_t = 64
    )]
    pub shadow_queue: usize,

    /// Shadowed texts kept for agreement statistics (pairwise similarities over this window).
    #[arg(
        help_heading = "Lifecycle",
        long,
        env = "INFERD_SHADOW_WINDOW",
        default_value_t = 128
    )]
    pub shadow_window: usize,

    /// Shadowed texts needed before agreement counts for `promote`.
    #[arg(
        help_heading = "Lifecycle",
        long,
        env = "INFERD_SHADOW_MIN_SAMPLES",
        default_value_t = 32
    )]
    pub shadow_min_samples: usize,

    /// `promote` refuses (unless forced) when the candidate's similarity-structure agreement
    /// (Spearman rank correlation of pairwise similarities) is below this, or unmeasured.
    #[arg(
        help_heading = "Lifecycle",
        long,
        env = "INFERD_PROMOTE_MIN_AGREEMENT",
        default_value_t = 0.9
    )]
    pub promote_min_agreement: f64,

    /// On SIGTERM/SIGINT, how long queued and in-flight work may take before the process exits.
    #[arg(help_heading = "Lifecycle", long, env = "INFERD_SHUTDOWN_GRACE", default_value = "30s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,

    /// Item index for `/recommend`, as NAME=DIR or NAME=postgresql://USER:PASSWORD@HOST/DB
    /// (repeatable; comma-separated in the env var). An index built by other model weights is
    /// refused at startup.
    #[arg(
        help_heading = "Index",
        long = "index",
        env = "INFERD_INDEX",
        value_delimiter = ','
    )]
    pub indexes: Vec<IndexSpec>,

    /// Logged item writes after which an index folds its write-ahead log into a new generation.
    #[arg(
        help_heading = "Index",
        long,
        env = "INFERD_INDEX_COMPACT_AFTER",
        default_value_t = 10_000
    )]
    pub index_compact_after: usize,

    /// Connections each PostgreSQL index may hold open at once.
    #[arg(
        help_heading = "Index",
        long,
        env = "INFERD_INDEX_POOL_SIZE",
        default_value_t = 8
    )]
    pub index_pool_size: usize,

    /// Bound on connecting to, waiting for, and each query of a PostgreSQL index; past it the
    /// request is `503 index_unavailable`.
    #[arg(help_heading = "Index", long, env = "INFERD_INDEX_TIMEOUT", value_parser = parse_duration, default_value = "2s")]
    pub index_timeout: Duration,

    /// Report not ready (`/readyz` 503) while a PostgreSQL index cannot be reached.
    #[arg(help_heading = "Index", long, env = "INFERD_INDEX_REQUIRED")]
    pub index_required: bool,

    /// Largest `k` a `/recommend` request may ask for.
    #[arg(
        help_heading = "Index",
        long,
        env = "INFERD_RECOMMEND_MAX_K",
        default_value_t = 100
    )]
    pub recommend_max_k: usize,

    /// Log format.
    #[arg(help_heading = "Observability", long, env = "INFERD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// OpenTelemetry trace export (`--otlp-endpoint` … `--trace-sample-ratio`).
    #[command(flatten)]
    pub traces: TraceArgs,

    #[command(flatten)]
    pub jobs: JobsArgs,

    /// Input policy and drift monitoring (`--input-policy` … `--drift-reference`).
    #[command(flatten)]
    pub monitor: MonitorArgs,

    /// Connection hygiene and the lame-duck drain (`--header-read-timeout` … `--drain-delay`).
    #[command(flatten)]
    pub conn: ListenArgs,

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

/// A polling interval; `off` (or 0) is [`Duration::ZERO`]: no polling.
fn parse_poll(s: &str) -> Result<Duration, String> {
    match s {
        "off" => Ok(Duration::ZERO),
        other => parse_duration(other),
    }
}

/// `--grpc-listen`: an address, or `None` for `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrpcListen(pub Option<SocketAddr>);

fn parse_grpc_listen(s: &str) -> Result<GrpcListen, String> {
    match s {
        "off" => Ok(GrpcListen(None)),
        addr => addr
            .parse()
            .map(|a| GrpcListen(Some(a)))
            .map_err(|e| format!("expected an address like 0.0.0.0:8081 or `off`: {e}")),
    }
}

impl ServeConfig {
    /// Rejects combinations clap cannot check on its own.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("--max-queue-requests", self.max_queue_requests),
            ("--max-batch-tokens", self.max_batch_tokens),
            ("--max-batch-requests", self.max_batch_requests),
            ("--max-client-batch", self.max_client_batch),
            ("--max-client-tokens", self.max_client_tokens),
            ("--max-body-bytes", self.max_body_bytes),
            ("--max-response-bytes", self.max_response_bytes),
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
        self.conn.validate()?;
        self.monitor.validate()?;
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

/// What token-id arrays on `/v1/embeddings` are (`--openai-token-ids`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OpenAiTokenIds {
    /// OpenAI's `cl100k_base` ids, decoded to text and tokenized by the model.
    Tiktoken,
    /// Ids of the served model's own vocabulary.
    Model,
    /// Refused with 422: send text.
    Reject,
}
