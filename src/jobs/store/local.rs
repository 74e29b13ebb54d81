//! The single-process store: the journal is `<batch-dir>/journal.log`, a
//! [`Journal`] of checksummed JSON lines (durable appends rolled back on failure; a torn last
//! line cut on open, damage before valid lines refused), and the queues live in memory,
//! rebuilt on start from what the journal says is unfinished.

use std::{
    collections::{HashSet, VecDeque},
    sync::{Arc, Mutex, RwLock},
    time::Duration,
};

use tokio::sync::Notify;

use super::{decode, encode, Lease, Queue, Task};
use crate::{
    jobs::{
        blobs::Blobs,
        state::{Record, State},
        types::BatchStatus,
        JobsError,
    },
    journal::{Framing, Journal},
};

pub const JOURNAL: &str = "journal.log";

/// How long [`Local::claim`] waits for a task before returning `None`.
const CLAIM_WAIT: Duration = Duration::from_secs(1);

pub struct Local {
    journal: Arc<Mutex<Journal>>,
    state: Arc<RwLock<State>>,
    work: LocalQueue,
    deliveries: LocalQueue,
}

#[derive(Default)]
struct LocalQueue {
    inner: Mutex<Pending>,
    notify: Notify,
}

#[derive(Default)]
struct Pending {
    waiting: VecDeque<Task>,
    /// Waiting or running: a task is queued once.
    known: HashSet<Task>,
}

impl LocalQueue {
    fn push(&self, task: Task) {
        let mut pending = self.inner.lock().expect("queue lock");
        if pending.known.insert(task.clone()) {
            pending.waiting.push_back(task);
            self.notify.notify_one();
        }
    }

    async fn pop(&self) -> Option<Task> {
        loop {
            if let Some(task) = self.inner.lock().expect("queue lock").waiting.pop_front() {
                return Some(task);
            }
            if tokio::time::timeout(CLAIM_WAIT, self.notify.notified())
                .await
                .is_err()
            {
                return None;
            }
        }
    }

    fn done(&self, task: &Task) {
        self.inner.lock().expect("queue lock").known.remove(task);
    }
}

impl Local {
    /// Opens the journal, replays it into `state` and queues what is unfinished.
    pub fn open(blobs: &Blobs, state: &Arc<RwLock<State>>) -> anyhow::Result<Self> {
        let path = blobs.root().join(JOURNAL);
        let (journal, records) = Journal::open(&path, decode_line, Framing::Lines)?;
        let mut replayed = state.write().expect("jobs state lock");
        for record in &records {
            replayed.apply(record);
        }
        let local = Self {
            journal: Arc::new(Mutex::new(journal)),
            state: Arc::clone(state),
            work: LocalQueue::default(),
            deliveries: LocalQueue::default(),
        };
        let unfinished = unfinished_tasks(&replayed);
        drop(replayed);
        tracing::info!(
            records = records.len(),
            tasks = unfinished.len(),
            "batch journal replayed"
        );
        local.push(unfinished);
        Ok(local)
    }

    pub async fn append(&self, record: Record, tasks: Vec<Task>) -> Result<(), JobsError> {
        let journal = Arc::clone(&self.journal);
        let state = Arc::clone(&self.state);
        let accepted = tokio::task::spawn_blocking(move || {
            let mut journal = journal.lock().expect("journal lock");
            let mut line = encode(&record);
            line.push('\n');
            journal
                .append(line.as_bytes())
                .map_err(|e| JobsError::storage("appending to the batch journal", e))?;
            Ok::<_, JobsError>(state.write().expect("jobs state lock").apply(&record))
        })
        .await
        .map_err(|e| JobsError::storage("the batch journal writer", e))??;
        if accepted {
            self.push(tasks);
        }
        Ok(())
    }

    pub fn push(&self, tasks: Vec<Task>) {
        for task in tasks {
            self.queue(task.queue()).push(task);
        }
    }

    pub async fn claim(&self, queue: Queue) -> Option<Lease> {
        let task = self.queue(queue).pop().await?;
        Some(Lease {
            task,
            queue,
            entry: None,
        })
    }

    pub fn ack(&self, lease: &Lease) {
        self.queue(lease.queue).done(&lease.task);
    }

    fn queue(&self, queue: Queue) -> &LocalQueue {
        match queue {
            Queue::Work => &self.work,
            Queue::Deliveries => &self.deliveries,
        }
    }
}

/// One journal line: `decode` of the text before its newline.
fn decode_line(bytes: &[u8]) -> Option<(Record, usize)> {
    let end = bytes.iter().position(|&b| b == b'\n')?;
    let record = decode(std::str::from_utf8(&bytes[..end]).ok()?)?;
    Some((record, end + 1))
}

/// What a replayed journal leaves to do: chunks not yet run, batches to end, deliveries owed.
pub fn unfinished_tasks(state: &State) -> Vec<Task> {
    let mut tasks = Vec::new();
    for b in state.unfinished() {
        let batch = b.batch.id.clone();
        match b.batch.status {
            BatchStatus::Validating | BatchStatus::InProgress if !b.all_done() => {
                tasks.extend(
                    (0..b.plan.chunks.len())
                        .filter(|c| !b.done.contains_key(c))
                        .map(|chunk| Task::Chunk {
                            batch: batch.clone(),
                            chunk,
                        }),
                );
            }
            _ => tasks.push(Task::Finalize { batch }),
        }
    }
    tasks.extend(state.owed().map(|d| Task::Deliver {
        event: d.event.clone(),
        url: d.url.clone(),
    }));
    tasks
}
