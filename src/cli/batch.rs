//! Operator commands for batch work: `inferd batch submit|status|wait|download` against a
//! running server, and `inferd embed`, which runs a batch input file through a local model.

use std::{path::PathBuf, time::Duration};

use clap::{Args, Subcommand};

use super::{parse_duration, ModelArgs, OfflineArgs};

/// Which server to talk to, and as whom.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Base URL of the inferd server.
    #[arg(long, env = "INFERD_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,

    /// API key (`Authorization: Bearer`), when the server has `--api-key-file`.
    #[arg(long, env = "INFERD_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum BatchCommand {
    /// Upload a JSON-lines file of requests and create a batch; prints the batch as JSON.
    Submit(Box<SubmitArgs>),
    /// Print a batch as JSON.
    Status {
        #[command(flatten)]
        server: ServerArgs,
        /// The batch id (`batch_…`).
        id: String,
    },
    /// Wait for a batch to end, with a progress bar; exits non-zero unless it completed.
    Wait {
        #[command(flatten)]
        server: ServerArgs,
        id: String,
        /// How often to ask the server.
        #[arg(long, env = "INFERD_BATCH_POLL", default_value = "2s", value_parser = parse_duration)]
        poll: Duration,
    },
    /// Save a batch's output (and error) lines.
    Download {
        #[command(flatten)]
        server: ServerArgs,
        id: String,
        #[command(flatten)]
        files: OutputArgs,
    },
}

#[derive(Debug, Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    pub server: ServerArgs,

    /// The requests: one `{"custom_id", "method": "POST", "url", "body"}` per line.
    #[arg(long, env = "INFERD_BATCH_INPUT")]
    pub input: PathBuf,

    /// The URL every request names.
    #[arg(long, env = "INFERD_BATCH_ENDPOINT", default_value = "/v1/embeddings")]
    pub endpoint: String,

    /// Time the batch may take before it expires (`24h`; `s`, `m`, `h`, `d`).
    #[arg(long, env = "INFERD_BATCH_COMPLETION_WINDOW", default_value = "24h")]
    pub completion_window: String,

    /// Wait for the batch to end (with a progress bar), then download to `--output`.
    #[arg(long, env = "INFERD_BATCH_WAIT", requires = "output")]
    pub wait: bool,

    /// With `--wait`: file for the output lines.
    #[arg(long, env = "INFERD_BATCH_OUTPUT")]
    pub output: Option<PathBuf>,

    /// With `--wait`: file for the error lines (default: the output's name with
    /// `.errors.jsonl`).
    #[arg(long, env = "INFERD_BATCH_ERRORS")]
    pub errors: Option<PathBuf>,

    /// How often to ask the server while waiting.
    #[arg(long, env = "INFERD_BATCH_POLL", default_value = "2s", value_parser = parse_duration)]
    pub poll: Duration,
}

/// Where a batch's lines go.
#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// File for the output lines (one per request that succeeded).
    #[arg(long, env = "INFERD_BATCH_OUTPUT")]
    pub output: PathBuf,

    /// File for the error lines (default: the output's name with `.errors.jsonl`).
    #[arg(long, env = "INFERD_BATCH_ERRORS")]
    pub errors: Option<PathBuf>,
}

impl OutputArgs {
    pub fn errors_path(&self) -> PathBuf {
        self.errors.clone().unwrap_or_else(|| {
            let stem = self
                .output
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy();
            self.output.with_file_name(format!("{stem}.errors.jsonl"))
        })
    }
}

/// Options of `inferd embed`.
#[derive(Debug, Clone, Args)]
pub struct EmbedConfig {
    /// The model to run, as for `serve`.
    #[command(flatten)]
    pub load: ModelArgs,

    /// Batch input file: one `{"custom_id", "method": "POST", "url": "/v1/embeddings", "body"}`
    /// per line.
    #[arg(long, env = "INFERD_EMBED_INPUT")]
    pub input: PathBuf,

    #[command(flatten)]
    pub files: OutputArgs,

    /// Keep the run's journal here so an interrupted run resumes where it stopped (default: a
    /// temporary folder, removed at the end).
    #[arg(long, env = "INFERD_STATE_DIR")]
    pub state_dir: Option<PathBuf>,

    /// Requests per chunk: the unit the run is made durable in (as `serve`'s flag).
    #[arg(long, env = "INFERD_BATCH_CHUNK_REQUESTS", default_value_t = 64)]
    pub batch_chunk_requests: usize,

    /// Chunks run at once.
    #[arg(long, env = "INFERD_BATCH_WORKERS", default_value_t = 4)]
    pub batch_workers: usize,

    /// Requests (lines) the input may hold.
    #[arg(long, env = "INFERD_BATCH_MAX_REQUESTS", default_value_t = 10_000_000)]
    pub batch_max_requests: usize,

    /// Inputs one request may carry.
    #[arg(long, env = "INFERD_MAX_CLIENT_BATCH", default_value_t = 2048)]
    pub max_client_batch: usize,

    #[command(flatten)]
    pub run: OfflineArgs,
}
