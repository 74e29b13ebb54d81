//! `inferd serve`'s Batch API and webhook flags (the `--help` heading "Batch jobs and
//! webhooks"). The Batch API keeps its files and journal under `--state-dir`.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use clap::Args;

use super::parse_duration;

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Batch jobs and webhooks")]
pub struct JobsArgs {
    /// Where the Batch API keeps its journal, uploads and results (default:
    /// `<state-dir>/batches`). With `--jobs-redis`, a volume every replica shares.
    #[arg(long, env = "INFERD_BATCH_DIR")]
    pub batch_dir: Option<PathBuf>,

    /// Largest batch input file accepted by `POST /v1/files`, in bytes; larger uploads get 413.
    #[arg(long, env = "INFERD_BATCH_MAX_FILE_BYTES", default_value_t = 200 * 1024 * 1024)]
    pub batch_max_file_bytes: u64,

    /// Requests (lines) one batch input file may hold; more get 422.
    #[arg(long, env = "INFERD_BATCH_MAX_REQUESTS", default_value_t = 50_000)]
    pub batch_max_requests: usize,

    /// Requests per chunk: the unit a batch is run, made durable and shared between replicas
    /// in. After a crash a batch resumes after its last finished chunk.
    #[arg(long, env = "INFERD_BATCH_CHUNK_REQUESTS", default_value_t = 64)]
    pub batch_chunk_requests: usize,

    /// Chunks this replica runs at once.
    #[arg(long, env = "INFERD_BATCH_WORKERS", default_value_t = 2)]
    pub batch_workers: usize,

    /// Compute time background (batch) sequences may fill one forward batch up to. An
    /// interactive request waits behind at most about this much batch work.
    #[arg(long, env = "INFERD_BATCH_BACKGROUND_BUDGET", default_value = "2ms", value_parser = parse_duration)]
    pub batch_background_budget: Duration,

    /// Run batch jobs across replicas through this Redis (`redis://host:6379/0`): the journal
    /// and task queues live in Redis streams, files and results in `--batch-dir`, which every
    /// replica must share (a ReadWriteMany volume).
    #[arg(long, env = "INFERD_JOBS_REDIS")]
    pub jobs_redis: Option<String>,

    /// With `--jobs-redis`: a task idle this long (its replica died) is taken over by another.
    #[arg(long, env = "INFERD_JOBS_CLAIM_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub jobs_claim_timeout: Duration,

    /// Where to POST `batch.completed`, `batch.failed`, `batch.cancelled` and `batch.expired`
    /// events (repeatable; comma-separated in the env var). Needs `--webhook-secret-file`.
    #[arg(
        long = "webhook-url",
        env = "INFERD_WEBHOOK_URL",
        value_delimiter = ','
    )]
    pub webhook_urls: Vec<String>,

    /// File holding the Standard Webhooks signing secret (`whsec_` + base64).
    #[arg(long, env = "INFERD_WEBHOOK_SECRET_FILE")]
    pub webhook_secret_file: Option<PathBuf>,

    /// Time one webhook attempt may take before it counts as failed.
    #[arg(long, env = "INFERD_WEBHOOK_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub webhook_timeout: Duration,

    /// Attempts per webhook delivery (backoff 1 s, 2 s, 4 s, … up to 5 min between them).
    #[arg(long, env = "INFERD_WEBHOOK_MAX_ATTEMPTS", default_value_t = 8)]
    pub webhook_max_attempts: u32,

    /// Webhook deliveries in flight at once.
    #[arg(long, env = "INFERD_WEBHOOK_CONCURRENCY", default_value_t = 8)]
    pub webhook_concurrency: usize,
}

impl JobsArgs {
    /// The Batch API's folder, if it is on.
    pub fn dir(&self, state_dir: Option<&Path>) -> Option<PathBuf> {
        self.batch_dir
            .clone()
            .or_else(|| state_dir.map(|d| d.join("batches")))
    }

    /// Rejects combinations clap cannot check on its own.
    pub fn validate(&self, state_dir: Option<&Path>) -> Result<(), String> {
        let positive = [
            ("--batch-max-requests", self.batch_max_requests),
            ("--batch-chunk-requests", self.batch_chunk_requests),
            ("--batch-workers", self.batch_workers),
            ("--webhook-max-attempts", self.webhook_max_attempts as usize),
            ("--webhook-concurrency", self.webhook_concurrency),
            ("--batch-max-file-bytes", self.batch_max_file_bytes as usize),
        ];
        if let Some((flag, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{flag} must be at least 1"));
        }
        if self.jobs_redis.is_some() && self.dir(state_dir).is_none() {
            return Err(
                "--jobs-redis needs --batch-dir (or --state-dir): a volume every replica \
                 shares, for batch files and results"
                    .into(),
            );
        }
        if !self.webhook_urls.is_empty() && self.webhook_secret_file.is_none() {
            return Err("--webhook-url needs --webhook-secret-file: events are signed".into());
        }
        if let Some(url) = self
            .webhook_urls
            .iter()
            .find(|u| !(u.starts_with("http://") || u.starts_with("https://")))
        {
            return Err(format!(
                "--webhook-url {url:?} must be an http:// or https:// URL"
            ));
        }
        Ok(())
    }
}
