//! The background workers of batch jobs: `--batch-workers` loops that claim chunk and finalize
//! tasks, one loop that claims webhook deliveries (each delivery on its own task, at most
//! `--webhook-concurrency` at once), and a sweeper that queues the end of batches that expired
//! or whose end was lost with a crashed replica, and publishes `inferd_batch_jobs`.
//!
//! Shutdown is abandonment, never a half-write: a worker stops between records, so an
//! unjournaled chunk is simply run again after restart (or by another replica).

mod chunk;
mod finalize;

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::{
    sync::{watch, Semaphore},
    task::JoinSet,
};

use super::{
    metrics,
    state::{Delivery, Record},
    store::{Lease, Queue, Task},
    types::{now, BatchStatus},
    webhook::Sender,
    Jobs, JobsError,
};
use crate::deploy::Registry;

/// How often the sweeper looks at unfinished batches.
const SWEEP: Duration = Duration::from_secs(1);
/// How long before the sweeper queues the same batch's end again (Redis: another replica may
/// hold it; locally the queue ignores a task already queued).
const RESWEEP: Duration = Duration::from_secs(30);
/// Wait after a storage error before a task is tried again.
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(1);

/// What the workers share.
#[derive(Clone)]
pub struct Runner {
    jobs: Arc<Jobs>,
    registry: Arc<Registry>,
    stop: watch::Receiver<bool>,
}

/// Starts the workers; they stop when `stop` turns true.
pub fn spawn(
    jobs: Arc<Jobs>,
    registry: Arc<Registry>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<JoinSet<()>> {
    let runner = Runner {
        jobs,
        registry,
        stop,
    };
    let mut tasks = JoinSet::new();
    for _ in 0..runner.jobs.config().workers.max(1) {
        tasks.spawn(runner.clone().work());
    }
    if let Some(config) = runner.jobs.config().webhooks.clone() {
        let sender = Arc::new(Sender::new(config)?);
        tasks.spawn(runner.clone().deliver(sender));
    }
    tasks.spawn(runner.sweep());
    Ok(tasks)
}

impl Runner {
    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    /// Resolves when the service stops.
    async fn stopping(&self) {
        let mut stop = self.stop.clone();
        let _ = stop.wait_for(|s| *s).await;
    }

    async fn work(self) {
        while !self.stopped() {
            let Some(lease) = self.claim(Queue::Work).await else {
                continue;
            };
            let task = lease.task.clone();
            let run = async {
                match &task {
                    Task::Chunk { batch, chunk } => self.run_chunk(batch, *chunk).await,
                    Task::Finalize { batch } => self.finalize(batch).await,
                    Task::Deliver { .. } => Ok(()),
                }
            };
            self.hold(lease, run).await;
        }
    }

    /// Claims a task, or `None` after a quiet second (or a storage error, logged).
    async fn claim(&self, queue: Queue) -> Option<Lease> {
        let claimed = tokio::select! {
            biased;
            _ = self.stopping() => return None,
            claimed = self.jobs.store().claim(queue) => claimed,
        };
        match claimed {
            Ok(lease) => lease,
            Err(err) => {
                tracing::warn!(%err, "claiming a batch task failed; retrying");
                tokio::time::sleep(RETRY_AFTER_ERROR).await;
                None
            }
        }
    }

    /// Runs `work` for `lease`, keeping the lease alive meanwhile; acknowledges it when done,
    /// queues it again after an error, and leaves it (to be reclaimed) when the service stops.
    async fn hold(
        &self,
        lease: Lease,
        work: impl std::future::Future<Output = Result<(), JobsError>>,
    ) {
        let store = self.jobs.store();
        let keep_alive = async {
            match store.keep_alive_every() {
                None => std::future::pending::<()>().await,
                Some(every) => loop {
                    tokio::time::sleep(every).await;
                    if let Err(err) = store.keep_alive(&lease).await {
                        tracing::warn!(%err, task = ?lease.task, "could not keep a batch task claimed");
                    }
                },
            }
        };
        let outcome = tokio::select! {
            biased;
            _ = self.stopping() => return,
            outcome = work => outcome,
            _ = keep_alive => unreachable!("the keep-alive loop never ends"),
        };
        let task = lease.task.clone();
        if let Err(err) = &outcome {
            tracing::error!(%err, ?task, "a batch task failed; it will be retried");
        }
        if let Err(err) = store.ack(lease).await {
            tracing::warn!(%err, ?task, "could not acknowledge a batch task");
        }
        if outcome.is_err() {
            tokio::time::sleep(RETRY_AFTER_ERROR).await;
            if let Err(err) = store.push(vec![task]).await {
                tracing::error!(%err, "could not queue a failed batch task again");
            }
        }
    }

    async fn deliver(self, sender: Arc<Sender>) {
        let slots = Arc::new(Semaphore::new(sender.concurrency()));
        let mut running = JoinSet::new();
        while !self.stopped() {
            let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                return;
            };
            while running.try_join_next().is_some() {}
            let Some(lease) = self.claim(Queue::Deliveries).await else {
                continue;
            };
            let (runner, sender) = (self.clone(), Arc::clone(&sender));
            running.spawn(async move {
                let Task::Deliver { event, url } = lease.task.clone() else {
                    return;
                };
                let work = runner.deliver_one(&sender, event, url);
                runner.hold(lease, work).await;
                drop(slot);
            });
        }
    }

    /// Delivers one owed event to one URL, and journals how it ended.
    async fn deliver_one(
        &self,
        sender: &Sender,
        event: String,
        url: String,
    ) -> Result<(), JobsError> {
        let owed = Delivery {
            event: event.clone(),
            url: url.clone(),
        };
        // As of every record so far: the event's record may not have reached us yet.
        let found = self
            .jobs
            .store()
            .read_latest(|s| s.is_owed(&owed).then(|| s.event(&event).cloned()).flatten())
            .await?;
        let Some(body) = found else {
            return Ok(()); // delivered already, or an event that lost a race
        };
        let delivered = sender.deliver(&url, &body).await;
        metrics::webhook_delivery(delivered);
        if !delivered {
            tracing::error!(%url, %event, "webhook delivery gave up after its retry budget");
        }
        let record = Record::Delivered {
            event,
            url,
            delivered,
        };
        self.jobs.store().append(record).await
    }

    /// Every second: publish the job counts, and queue the end of batches that expired, whose
    /// chunks are all done, or that are cancelling or finalizing with nobody on it.
    async fn sweep(self) {
        let mut queued: HashMap<String, Instant> = HashMap::new();
        while !self.stopped() {
            tokio::select! {
                biased;
                _ = self.stopping() => return,
                _ = tokio::time::sleep(SWEEP) => {}
            }
            let store = self.jobs.store();
            let (counts, due) = store.read(|s| {
                let t = now();
                let due: Vec<String> = s
                    .unfinished()
                    .filter(|b| {
                        let expired = b.batch.expires_at.is_some_and(|e| t >= e);
                        let ending = matches!(
                            b.batch.status,
                            BatchStatus::Cancelling | BatchStatus::Finalizing
                        );
                        expired || ending || (b.running() && b.all_done())
                    })
                    .map(|b| b.batch.id.clone())
                    .collect();
                (s.counts(), due)
            });
            metrics::jobs(&counts);
            queued.retain(|_, at| at.elapsed() < RESWEEP);
            let due: Vec<String> = due
                .into_iter()
                .filter(|id| !store.shared() || !queued.contains_key(id))
                .collect();
            let tasks: Vec<Task> = due
                .into_iter()
                .map(|batch| {
                    queued.insert(batch.clone(), Instant::now());
                    Task::Finalize { batch }
                })
                .collect();
            if let Err(err) = store.push(tasks).await {
                tracing::warn!(%err, "the batch sweeper could not queue work");
            }
        }
    }
}
