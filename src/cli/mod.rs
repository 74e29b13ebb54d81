//! Command-line and environment configuration.
//!
//! Every flag has an `INFERD_*` environment variable and a doc comment, which is what `--help`
//! prints. This module only parses; it never touches the model or the network.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};

/// inferd: a dedicated inference microservice for embedding models.
#[derive(Debug, Parser)]
#[command(name = "inferd", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load a model and serve it over HTTP.
    Serve(Box<ServeConfig>),
    /// Inspect model manifests.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Item indexes for `POST /recommend`.
    #[command(subcommand)]
    Index(IndexCommand),
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Check every version of every manifest: parse, lineage, and the sha256 of every weight
    /// file present locally. Exits non-zero on any mismatch or invalid manifest.
    Verify {
        /// Folder of `*.toml` manifests.
        #[arg(long, env = "INFERD_MANIFEST_DIR", default_value = "models")]
        manifest_dir: PathBuf,
        /// Also fail when a version's files are not present locally.
        #[arg(long)]
        require_local: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum IndexCommand {
    /// Embed a JSON-lines catalog with a model and write an index directory.
    Build(Box<IndexBuildConfig>),
}

/// An index to serve: `name=dir`, or `dir` (named after its last path component).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSpec {
    pub name: String,
    pub dir: PathBuf,
}

impl std::str::FromStr for IndexSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, dir) = match s.split_once('=') {
            Some((name, dir)) => (name.trim().to_string(), PathBuf::from(dir.trim())),
            None => {
                let dir = PathBuf::from(s.trim());
                let name = dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                (name, dir)
            }
        };
        let valid = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
        if name.is_empty() || !name.chars().all(valid) || dir.as_os_str().is_empty() {
            return Err(format!(
                "expected NAME=DIR (name of letters, digits, - _ .), got {s:?}"
            ));
        }
        Ok(Self { name, dir })
    }
}

/// Where the service runs the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceRequest {
    /// CUDA device 0 when one initialises, otherwise CPU.
    Auto,
    Cpu,
    Cuda(usize),
}

impl std::str::FromStr for DeviceRequest {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Self::Cuda)
                .ok_or_else(|| format!("expected auto, cpu, cuda or cuda:N, got {other:?}")),
        }
    }
}

/// Numeric precision of the weights and activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DTypeRequest {
    /// f16 on CUDA; on CPU bf16 matrix products (projections and attention) where the CPU has
    /// AMX-BF16, else f32.
    Auto,
    F32,
    F16,
    Bf16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Which model to load, and on what: shared by `serve` and `index build`.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// Model: a manifest (.toml under models/), a local Hugging Face directory, or a
    /// Hugging Face repo id with an optional revision (`owner/name@revision`).
    #[arg(
        long,
        env = "INFERD_MODEL",
        default_value = "models/all-MiniLM-L6-v2.toml"
    )]
    pub model: String,

    /// Name the model is served under (default: the manifest's name or the directory/repo name).
    #[arg(long, env = "INFERD_MODEL_NAME")]
    pub model_name: Option<String>,

    /// Version to serve from a multi-version manifest (default: the manifest's `version`, else
    /// its last listed); for a directory or hub id, the version label.
    #[arg(long, env = "INFERD_MODEL_VERSION")]
    pub model_version: Option<String>,

    /// Device: auto (CUDA when one initialises, else CPU), cpu, cuda or cuda:N.
    #[arg(long, env = "INFERD_DEVICE", default_value = "auto")]
    pub device: DeviceRequest,

    /// Precision: f32, bf16 (CUDA, or CPU matrix products where the CPU has AVX-512 BF16), f16
    /// (CUDA); auto picks f16 on CUDA, bf16 on CPUs with AMX-BF16 and f32 on other CPUs.
    #[arg(long, env = "INFERD_DTYPE", value_enum, default_value_t = DTypeRequest::Auto)]
    pub dtype: DTypeRequest,
}

impl ModelArgs {
    pub fn load_options(&self) -> crate::model::LoadOptions {
        crate::model::LoadOptions {
            source: self.model.clone(),
            name: self.model_name.clone(),
            version: self.model_version.clone(),
            device: self.device,
            dtype: self.dtype,
        }
    }
}

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
    /// comes back with the same promoted versions, canaries and shadows.
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

    /// Item index for `/recommend`, as NAME=DIR (repeatable; comma-separated in the env var).
    /// An index built by other model weights is refused at startup.
    #[arg(long = "index", env = "INFERD_INDEX", value_delimiter = ',')]
    pub indexes: Vec<IndexSpec>,

    /// Logged item writes after which an index folds its write-ahead log into a new generation.
    #[arg(long, env = "INFERD_INDEX_COMPACT_AFTER", default_value_t = 10_000)]
    pub index_compact_after: usize,

    /// Largest `k` a `/recommend` request may ask for.
    #[arg(long, env = "INFERD_RECOMMEND_MAX_K", default_value_t = 100)]
    pub recommend_max_k: usize,

    /// Fault injection for tests and drills: sleep this long before every forward batch.
    #[arg(long, env = "INFERD_DEBUG_BATCH_DELAY", value_parser = parse_duration, hide = true)]
    pub debug_batch_delay: Option<Duration>,

    /// Fault injection for tests and drills: panic in the model worker when a batch holds this text.
    #[arg(long, env = "INFERD_DEBUG_PANIC_ON", hide = true)]
    pub debug_panic_on: Option<String>,
}

/// Parses `250ms`, `30s`, `2m`, `1h` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected e.g. 500ms, 30s, 2m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "invalid duration unit {unit:?} in {s:?}: use ms, s, m or h"
            ))
        }
    };
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(format!(
            "invalid duration {s:?}: must be a non-negative number"
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Options of `inferd index build`.
#[derive(Debug, Clone, Args)]
pub struct IndexBuildConfig {
    /// The model to embed with; a server refuses the index under other weights.
    #[command(flatten)]
    pub load: ModelArgs,

    /// Catalog: JSON lines `{"id", "text", ...metadata}`, gzipped when it ends in `.gz`.
    #[arg(long)]
    pub catalog: PathBuf,

    /// Index directory to write (created; an existing index there is replaced atomically).
    #[arg(long)]
    pub out: PathBuf,

    /// Default search of the index: exact (brute force) or hnsw (approximate, large catalogs).
    #[arg(long, value_enum, default_value_t = crate::index::Search::Exact)]
    pub search: crate::index::Search,

    /// Token budget of one forward batch (as `serve`).
    #[arg(long, env = "INFERD_MAX_BATCH_TOKENS", default_value_t = 16384)]
    pub max_batch_tokens: usize,

    /// Inputs in one forward batch, at most (as `serve`).
    #[arg(long, env = "INFERD_MAX_BATCH_REQUESTS", default_value_t = 64)]
    pub max_batch_requests: usize,

    /// Threads the model's CPU kernels use (default: all cores).
    #[arg(long, env = "INFERD_THREADS")]
    pub threads: Option<usize>,

    /// Log format.
    #[arg(long, env = "INFERD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
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
            ("--recommend-max-k", self.recommend_max_k),
        ];
        if !(0.0..=1.0).contains(&self.canary_max_error_ratio) {
            return Err("--canary-max-error-ratio must be between 0 and 1".into());
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn index_specs_parse() {
        let spec: IndexSpec = "catalog=/data/idx".parse().unwrap();
        assert_eq!(spec.name, "catalog");
        assert_eq!(spec.dir, PathBuf::from("/data/idx"));
        assert_eq!("/data/items".parse::<IndexSpec>().unwrap().name, "items");
        assert!("bad name=/x".parse::<IndexSpec>().is_err());
        assert!("x=".parse::<IndexSpec>().is_err());
        let cli = Cli::try_parse_from(["inferd", "serve", "--index", "a=/1", "--index", "b=/2"]);
        let Command::Serve(cfg) = cli.unwrap().command else {
            panic!("serve parses as serve")
        };
        assert_eq!(cfg.indexes.len(), 2);
    }

    #[test]
    fn devices_parse() {
        assert_eq!("auto".parse(), Ok(DeviceRequest::Auto));
        assert_eq!("cpu".parse(), Ok(DeviceRequest::Cpu));
        assert_eq!("cuda".parse(), Ok(DeviceRequest::Cuda(0)));
        assert_eq!("cuda:3".parse(), Ok(DeviceRequest::Cuda(3)));
        assert!("tpu".parse::<DeviceRequest>().is_err());
    }

    #[test]
    fn every_flag_has_an_env_var() {
        use clap::CommandFactory;
        let cmd = Cli::command();
        let serve = cmd.find_subcommand("serve").unwrap();
        for arg in serve.get_arguments() {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            assert!(arg.get_env().is_some(), "--{id} has no INFERD_* env var");
        }
    }

    #[test]
    fn defaults_are_valid_and_zero_limits_are_refused() {
        let cli = Cli::try_parse_from(["inferd", "serve"]).unwrap();
        let Command::Serve(mut cfg) = cli.command else {
            panic!("expected serve")
        };
        assert_eq!(cfg.max_queue_requests, 1024);
        assert_eq!(cfg.request_timeout, Duration::from_secs(30));
        assert!(cfg.validate().is_ok());
        cfg.max_batch_tokens = 0;
        assert!(cfg.validate().unwrap_err().contains("--max-batch-tokens"));
    }
}
