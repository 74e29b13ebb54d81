//! Batch jobs: OpenAI's Batch API (files and batches) run in the background, durably, with
//! signed webhooks when a batch ends.
//!
//! Protocol:
//! - **Upload** (`create_file`): the body is streamed to a temporary file, checked
//!   ([`input::scan_upload`]), fsynced and renamed into `<batch-dir>/files/`, and only
//!   then journaled and acknowledged: an acknowledged upload survives any crash.
//! - **Create** (`create_batch`): the input is cut into chunks of `--batch-chunk-requests`
//!   ([`input::plan`]); the batch record and one task per chunk are journaled together.
//! - **Run** ([`runner`]): workers claim chunks, route the batch once (canary split with the
//!   batch id as the route key) and pin that version for every chunk, run each request through
//!   its [`endpoint::Endpoint`] at background priority, write the chunk's output and error lines
//!   to a blob, and journal the chunk. A chunk is the unit of durability: after `kill -9` a batch
//!   resumes after its last journaled chunk, and a chunk run twice counts once (the first
//!   journaled attempt wins), so every `custom_id` is answered exactly once.
//! - **End**: when every chunk is journaled (or the batch was cancelled or expired) the chunk
//!   blobs are assembled into the output and error files, and the terminal record carries the
//!   webhook event with its id, so a crash neither drops the event nor gives it a second id.
//!   Requests a cancelled or expired batch never ran get an error line each.
//!
//! Where the journal and queues live is [`store`]'s business: one process (a journal file in
//! `--batch-dir`), or Redis streams shared by replicas (`--jobs-redis`). Nothing here knows HTTP: the routes are in
//! `http::openai`, and errors are [`JobsError`].

pub mod blobs;
pub mod endpoint;
pub mod error;
pub mod input;
pub mod metrics;
pub mod output;
pub mod runner;
pub mod state;
pub mod store;
pub mod types;
pub mod webhook;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

pub use endpoint::{Endpoint, Endpoints, Outcome};
pub use error::JobsError;
pub use types::{Batch, BatchStatus, FileObject};

use blobs::Blobs;
use state::Record;
use store::Store;
use types::{new_id, PURPOSE_BATCH};
use webhook::WebhookConfig;

/// Batch API settings (`--batch-*`, `--jobs-*`, `--webhook-*`).
#[derive(Debug, Clone)]
pub struct JobsConfig {
    /// Largest upload, in bytes.
    pub max_file_bytes: u64,
    /// Requests (lines) one input file may hold.
    pub max_requests: usize,
    /// Requests per chunk: the unit of work, durability and claiming.
    pub chunk_requests: usize,
    /// Chunks one replica runs at once.
    pub workers: usize,
    /// On Redis, how long a task may go without a keep-alive before another replica takes it.
    pub claim_timeout: Duration,
    pub webhooks: Option<WebhookConfig>,
}

/// What `POST /v1/batches` asks for.
#[derive(Debug, Clone)]
pub struct NewBatch {
    pub input_file_id: String,
    pub endpoint: String,
    pub completion_window: String,
    pub metadata: Option<BTreeMap<String, String>>,
}

/// The Batch API over one [`Store`].
pub struct Jobs {
    store: Store,
    config: JobsConfig,
    endpoints: Endpoints,
}

impl Jobs {
    /// Opens the jobs in `dir` (replaying the journal), in Redis when `redis` names one (`dir`
    /// is then the volume every replica shares for files and results).
    pub async fn open(
        dir: &Path,
        redis: Option<&str>,
        config: JobsConfig,
        endpoints: Endpoints,
    ) -> anyhow::Result<Arc<Self>> {
        let blobs = Blobs::open(dir)?;
        let store = match redis {
            Some(url) => Store::open_redis(blobs, url, config.claim_timeout).await?,
            None => Store::open_local(blobs)?,
        };
        metrics::register(&store.read(|s| s.counts()));
        Ok(Arc::new(Self {
            store,
            config,
            endpoints,
        }))
    }

    pub fn config(&self) -> &JobsConfig {
        &self.config
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// Where an upload is streamed before it is checked and published.
    pub fn upload_path(&self) -> PathBuf {
        self.store.blobs().temp_path()
    }

    /// Publishes the upload streamed to `temp` as a file for `purpose`, once checked. The
    /// temporary file is removed whatever happens.
    pub async fn create_file(
        &self,
        temp: PathBuf,
        filename: String,
        purpose: &str,
    ) -> Result<FileObject, JobsError> {
        let result = self.publish_upload(&temp, filename, purpose).await;
        self.store.blobs().remove(&temp);
        result
    }

    async fn publish_upload(
        &self,
        temp: &Path,
        filename: String,
        purpose: &str,
    ) -> Result<FileObject, JobsError> {
        if purpose != PURPOSE_BATCH {
            return Err(JobsError::Invalid(format!(
                "`purpose` must be \"batch\": inferd keeps files for the Batch API only, got {purpose:?}"
            )));
        }
        let bytes = std::fs::metadata(temp)
            .map_err(|e| JobsError::storage("reading the upload", e))?
            .len();
        let (path, max) = (temp.to_path_buf(), self.config.max_requests);
        let scan = blocking(move || input::scan_upload(&path, max)).await?;
        let file = FileObject::new(new_id("file-"), filename, purpose, bytes);
        let (blobs, from, to) = (
            self.store.blobs().clone(),
            temp.to_path_buf(),
            self.store.blobs().file_path(&file.id),
        );
        blocking(move || blobs.publish(&from, &to)).await?;
        self.store
            .append(Record::File {
                file: file.clone(),
                lines: scan.lines,
            })
            .await?;
        Ok(file)
    }

    pub async fn file(&self, id: &str) -> Result<FileObject, JobsError> {
        self.store
            .read_latest(|s| s.file(id).map(|f| f.file.clone()))
            .await?
            .ok_or_else(|| not_found("file", id))
    }

    /// The path of file `id`'s content.
    pub async fn file_content(&self, id: &str) -> Result<PathBuf, JobsError> {
        self.file(id).await?;
        Ok(self.store.blobs().file_path(id))
    }

    pub async fn list_files(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<FileObject>, bool), JobsError> {
        self.store.read_latest(|s| s.files_page(after, limit)).await
    }

    /// Deletes file `id`; refused while an unfinished batch reads it.
    pub async fn delete_file(&self, id: &str) -> Result<(), JobsError> {
        let in_use = self
            .store
            .read_latest(|s| s.file(id).map(|_| s.file_in_use(id)))
            .await?
            .ok_or_else(|| not_found("file", id))?;
        if in_use {
            return Err(JobsError::Conflict(format!(
                "file {id} is the input of a batch that has not ended; cancel the batch first"
            )));
        }
        self.store
            .append(Record::FileDeleted { id: id.to_string() })
            .await?;
        self.store.blobs().remove(&self.store.blobs().file_path(id));
        Ok(())
    }

    /// Creates a batch over an uploaded file; it starts as `validating`.
    pub async fn create_batch(&self, new: NewBatch) -> Result<Batch, JobsError> {
        if self.endpoints.get(&new.endpoint).is_none() {
            return Err(JobsError::Invalid(format!(
                "`endpoint` {:?} is not one inferd batches; supported: {}",
                new.endpoint,
                self.endpoints.urls().join(", ")
            )));
        }
        let window = parse_window(&new.completion_window)?;
        check_metadata(new.metadata.as_ref())?;
        let (input, lines) = self
            .store
            .read_latest(|s| {
                s.file(&new.input_file_id)
                    .map(|f| (f.file.clone(), f.lines))
            })
            .await?
            .ok_or_else(|| not_found("file", &new.input_file_id))?;
        if input.purpose != PURPOSE_BATCH {
            return Err(JobsError::Invalid(format!(
                "file {} has purpose {:?}; a batch reads a file uploaded with purpose \"batch\"",
                input.id, input.purpose
            )));
        }
        let (path, per_chunk) = (
            self.store.blobs().file_path(&input.id),
            self.config.chunk_requests,
        );
        let plan = blocking(move || input::plan(&path, per_chunk)).await?;
        let batch = Batch::new(
            new_id("batch_"),
            new.endpoint,
            &input,
            lines,
            new.completion_window,
            window.as_secs(),
            new.metadata,
        );
        let id = batch.id.clone();
        self.store
            .append(Record::Batch {
                batch: Box::new(batch),
                plan,
            })
            .await?;
        self.batch(&id).await
    }

    pub async fn batch(&self, id: &str) -> Result<Batch, JobsError> {
        self.store
            .read_latest(|s| s.batch(id).map(|b| b.batch.clone()))
            .await?
            .ok_or_else(|| not_found("batch", id))
    }

    pub async fn list_batches(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Batch>, bool), JobsError> {
        self.store
            .read_latest(|s| s.batches_page(after, limit))
            .await
    }

    /// Cancels a batch that has not ended: it turns `cancelling`, its running chunks finish, and
    /// it ends `cancelled` with the results it has.
    pub async fn cancel(&self, id: &str) -> Result<Batch, JobsError> {
        let batch = self.batch(id).await?;
        match batch.status {
            BatchStatus::Validating | BatchStatus::InProgress => {
                let at = types::now();
                let record = Record::Cancelling { id: id.into(), at };
                self.store.append(record).await?;
                self.batch(id).await
            }
            BatchStatus::Cancelling => Ok(batch),
            status => Err(JobsError::Conflict(format!(
                "batch {id} is {}; only a validating or in-progress batch can be cancelled",
                status.as_str()
            ))),
        }
    }
}

fn not_found(kind: &'static str, id: &str) -> JobsError {
    JobsError::NotFound {
        kind,
        id: id.to_string(),
    }
}

/// Runs blocking file work off the async runtime.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, JobsError> + Send + 'static,
) -> Result<T, JobsError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| JobsError::storage("a batch file task", e))?
}

/// `completion_window`: OpenAI's `24h`, or any `<n>s|m|h|d` from one second to seven days.
fn parse_window(text: &str) -> Result<Duration, JobsError> {
    let invalid = || {
        JobsError::Invalid(format!(
            "`completion_window` must be a duration such as \"24h\" (s, m, h or d; at most 7d), \
             got {text:?}"
        ))
    };
    let unit = text.chars().last().ok_or_else(invalid)?;
    let count: u64 = text[..text.len() - unit.len_utf8()]
        .parse()
        .map_err(|_| invalid())?;
    let seconds = match unit {
        's' => count,
        'm' => count * 60,
        'h' => count * 3600,
        'd' => count * 86_400,
        _ => return Err(invalid()),
    };
    match seconds {
        1..=604_800 => Ok(Duration::from_secs(seconds)),
        _ => Err(invalid()),
    }
}

/// OpenAI's metadata rules: at most 16 pairs, keys up to 64 characters, values up to 512.
fn check_metadata(metadata: Option<&BTreeMap<String, String>>) -> Result<(), JobsError> {
    let Some(metadata) = metadata else {
        return Ok(());
    };
    if metadata.len() > 16 {
        return Err(JobsError::Invalid(
            "`metadata` holds at most 16 pairs".into(),
        ));
    }
    match metadata
        .iter()
        .find(|(k, v)| k.chars().count() > 64 || v.chars().count() > 512)
    {
        Some((k, _)) => Err(JobsError::Invalid(format!(
            "`metadata` key {k:?}: keys hold at most 64 characters and values at most 512"
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completion_windows_are_durations() {
        assert_eq!(parse_window("24h").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse_window("90s").unwrap(), Duration::from_secs(90));
        for bad in ["", "h", "24", "0s", "8d", "-1h", "1w", "1.5h"] {
            assert!(parse_window(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn metadata_follows_openais_limits() {
        let many: BTreeMap<String, String> = (0..17).map(|i| (i.to_string(), "v".into())).collect();
        assert!(check_metadata(Some(&many)).is_err());
        let long = BTreeMap::from([("k".to_string(), "v".repeat(513))]);
        assert!(check_metadata(Some(&long)).is_err());
        let fine = BTreeMap::from([("k".to_string(), "v".into())]);
        assert!(check_metadata(Some(&fine)).is_ok());
    }
}
