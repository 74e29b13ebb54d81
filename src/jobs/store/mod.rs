//! Where the jobs' journal and task queues live: [`local`] (the default, one process: an
//! fsynced journal file in `--batch-dir` and in-memory queues rebuilt from it on start) or
//! [`redis`] (`--jobs-redis`: the journal is a Redis stream every replica folds, and the queues
//! are streams read through consumer groups, so any replica takes a task and a dead replica's
//! tasks are reclaimed).
//!
//! Either way the protocol is the same: a change is a [`Record`] appended to the journal and
//! then applied to the [`State`] (the same fold on every replica and on replay); work is a
//! [`Task`] claimed from a queue as a [`Lease`], kept alive while it runs, and acknowledged
//! when done. A task may run twice (a crash before its acknowledgement, a reclaim from a
//! replica that was only slow): every task is idempotent, because its result is a record and
//! only the first record of each kind counts.

pub mod local;
pub mod redis;

use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use super::{
    blobs::Blobs,
    state::{Record, State},
    JobsError,
};

/// A unit of work.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "task", rename_all = "snake_case")]
pub enum Task {
    /// Run one chunk of a batch.
    Chunk { batch: String, chunk: usize },
    /// End a batch whose chunks are done, or that was cancelled or expired.
    Finalize { batch: String },
    /// Deliver one event to one webhook URL.
    Deliver { event: String, url: String },
}

impl Task {
    /// Which queue runs it: deliveries wait on slow receivers, so they never hold up chunks.
    pub fn queue(&self) -> Queue {
        match self {
            Self::Deliver { .. } => Queue::Deliveries,
            _ => Queue::Work,
        }
    }

    /// The tasks a record creates, queued with it.
    pub fn implied_by(record: &Record) -> Vec<Task> {
        match record {
            Record::Batch { batch, plan } => (0..plan.chunks.len())
                .map(|chunk| Task::Chunk {
                    batch: batch.id.clone(),
                    chunk,
                })
                .collect(),
            Record::Cancelling { id, .. } => vec![Task::Finalize { batch: id.clone() }],
            Record::Finished { event, urls, .. } => urls
                .iter()
                .map(|url| Task::Deliver {
                    event: event.id.clone(),
                    url: url.clone(),
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Queue {
    Work,
    Deliveries,
}

/// A claimed task. Acknowledge it when done; until then (and while kept alive) no other
/// worker takes it.
#[derive(Debug, Clone)]
pub struct Lease {
    pub task: Task,
    queue: Queue,
    /// The stream entry (Redis).
    entry: Option<String>,
}

enum Backend {
    Local(local::Local),
    Redis(redis::Redis),
}

/// The journal, the folded state, the queues and the blob directory.
pub struct Store {
    state: Arc<RwLock<State>>,
    blobs: Blobs,
    backend: Backend,
}

impl Store {
    /// The single-process store in the blob directory (journal `journal.log`).
    pub fn open_local(blobs: Blobs) -> anyhow::Result<Self> {
        let state = Arc::new(RwLock::new(State::default()));
        let local = local::Local::open(&blobs, &state)?;
        Ok(Self {
            state,
            blobs,
            backend: Backend::Local(local),
        })
    }

    /// The store shared by every replica through Redis at `url`; blobs on a shared volume.
    pub async fn open_redis(
        blobs: Blobs,
        url: &str,
        claim_timeout: std::time::Duration,
    ) -> anyhow::Result<Self> {
        let state = Arc::new(RwLock::new(State::default()));
        let redis = redis::Redis::open(url, claim_timeout, Arc::clone(&state)).await?;
        Ok(Self {
            state,
            blobs,
            backend: Backend::Redis(redis),
        })
    }

    pub fn blobs(&self) -> &Blobs {
        &self.blobs
    }

    /// Reads the state as of the last applied record.
    pub fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.state.read().expect("jobs state lock"))
    }

    /// Reads the state after every record appended anywhere so far is applied (on Redis,
    /// another replica's writes too).
    pub async fn read_latest<R>(&self, f: impl FnOnce(&State) -> R) -> Result<R, JobsError> {
        if let Backend::Redis(redis) = &self.backend {
            redis.catch_up().await?;
        }
        Ok(self.read(f))
    }

    /// Appends `record` durably and applies it, with the tasks it implies; returns once it is
    /// applied here. Whether it won a race is for the caller to read from the state.
    pub async fn append(&self, record: Record) -> Result<(), JobsError> {
        let tasks = Task::implied_by(&record);
        match &self.backend {
            Backend::Local(local) => local.append(record, tasks).await,
            Backend::Redis(redis) => redis.append(record, tasks).await,
        }
    }

    /// Queues tasks outside any record (the sweeper's, and a finished chunk's finalize).
    pub async fn push(&self, tasks: Vec<Task>) -> Result<(), JobsError> {
        match &self.backend {
            Backend::Local(local) => {
                local.push(tasks);
                Ok(())
            }
            Backend::Redis(redis) => redis.push(tasks).await,
        }
    }

    /// Waits (a second or so at most) for a task of `queue`.
    pub async fn claim(&self, queue: Queue) -> Result<Option<Lease>, JobsError> {
        match &self.backend {
            Backend::Local(local) => Ok(local.claim(queue).await),
            Backend::Redis(redis) => redis.claim(queue).await,
        }
    }

    /// Keeps a lease from being reclaimed while its task runs.
    pub async fn keep_alive(&self, lease: &Lease) -> Result<(), JobsError> {
        match &self.backend {
            Backend::Local(_) => Ok(()),
            Backend::Redis(redis) => redis.keep_alive(lease).await,
        }
    }

    /// How often [`Self::keep_alive`] must be called while a task runs (`None`: never).
    pub fn keep_alive_every(&self) -> Option<std::time::Duration> {
        match &self.backend {
            Backend::Local(_) => None,
            Backend::Redis(redis) => Some(redis.claim_timeout() / 3),
        }
    }

    /// The task is done (or need not be done): remove it from its queue.
    pub async fn ack(&self, lease: Lease) -> Result<(), JobsError> {
        match &self.backend {
            Backend::Local(local) => {
                local.ack(&lease);
                Ok(())
            }
            Backend::Redis(redis) => redis.ack(&lease).await,
        }
    }

    /// Whether other replicas share this store (tasks they queued are theirs to re-queue too).
    pub fn shared(&self) -> bool {
        matches!(self.backend, Backend::Redis(_))
    }
}

/// A record on disk and in Redis: its CRC-32 in hex, a space, its JSON.
pub fn encode(record: &Record) -> String {
    let json = serde_json::to_string(record).expect("records serialise");
    format!("{:08x} {json}", crc32fast::hash(json.as_bytes()))
}

/// The record `text` holds, when its checksum and JSON are intact.
pub fn decode(text: &str) -> Option<Record> {
    let (crc, json) = text.split_once(' ')?;
    let crc = u32::from_str_radix(crc, 16).ok()?;
    (crc32fast::hash(json.as_bytes()) == crc)
        .then(|| serde_json::from_str(json).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_carry_a_checksum() {
        let record = Record::Started {
            id: "b".into(),
            at: 1,
        };
        let line = encode(&record);
        assert_eq!(decode(&line), Some(record));
        let flipped = line.replace("\"at\":1", "\"at\":7");
        assert_eq!(decode(&flipped), None, "a changed byte fails the checksum");
        assert_eq!(decode("not a record"), None);
    }
}
