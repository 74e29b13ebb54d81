//! The bounded queue and dynamic batcher in front of one model worker.
//!
//! Protocol: a request first takes an admission [`Permit`] (refused at once with 503 when the
//! queue is full), is tokenized off the runtime, then [`Batcher::submit`]s its sequences and awaits
//! a `oneshot` reply. The single worker thread ([`worker`]) forms batches by token budget and
//! sequence count from whatever is waiting, and answers each request once all its sequences ran.
//! Work whose caller went away, or whose deadline passed, is dropped before compute.
//!
//! The request's tracing span travels with it to the worker thread: a `queue` span, a child of
//! the submitting span, is open until the request's first batch starts, and that batch's span
//! links to every request it serves (see [`worker`]).
//!
//! Every request has a [`Priority`]: interactive callers, or background work (batch jobs) that
//! takes only the lower half of the queue's slots and fills only spare batch room
//! ([`former`] decides, [`worker`] sizes the room from `--batch-background-budget`).

pub mod admission;
pub mod former;
pub mod metrics;
pub mod worker;

use std::{sync::Arc, time::Instant};

use crossbeam_channel::Sender;
use tokio::sync::oneshot;

pub use admission::{Admission, Permit};
pub use former::{BatchLimits, Priority};
pub use worker::WorkerConfig;

pub use self::metrics::ModelLabels;

use crate::model::encoder::Encoder;

/// Why the worker could not produce a request's embeddings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("deadline passed before compute")]
    DeadlineExceeded,
    #[error("the forward pass failed")]
    Failed,
    #[error("the model worker is gone")]
    WorkerGone,
}

/// One tokenized sequence as the worker runs it: token ids, and where a (query, text) pair's
/// second text starts (token type 1 from there; `ids.len()` for a single text).
#[derive(Debug, Clone)]
pub struct Sequence {
    pub ids: Arc<[u32]>,
    pub second: usize,
}

impl From<Arc<[u32]>> for Sequence {
    fn from(ids: Arc<[u32]>) -> Self {
        let second = ids.len();
        Self { ids, second }
    }
}

/// A request handed to the worker.
pub(crate) struct Job {
    sequences: Vec<Sequence>,
    normalize: bool,
    deadline: Instant,
    enqueued: Instant,
    priority: Priority,
    reply: oneshot::Sender<Result<Vec<Vec<f32>>, BatchError>>,
    permit: Permit,
    /// The span the request was submitted from: the batch that serves it links to it.
    request: tracing::Span,
    /// Open from hand-off until the request's first batch starts: its queue wait.
    queue: tracing::Span,
}

/// The kernels' thread pool, built on the calling thread, which becomes one of its `threads`
/// workers. The model worker runs inside it, so each parallel kernel starts on the worker's own
/// deque instead of being injected from outside and waited for: one cross-thread wake-up less
/// per kernel, dozens per forward pass.
pub fn compute_pool(threads: usize) -> Result<rayon::ThreadPool, rayon::ThreadPoolBuildError> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .use_current_thread()
        .thread_name(|i| format!("inferd-compute-{i}"))
        .build()
}

/// Handle to one model's queue and worker. Cheap to share; the worker stops once every handle
/// is dropped and its queue is empty.
pub struct Batcher {
    tx: Sender<Job>,
    admission: Arc<Admission>,
}

impl Batcher {
    pub fn spawn(
        encoder: Arc<Encoder>,
        config: WorkerConfig,
        capacity: usize,
        labels: ModelLabels,
    ) -> std::io::Result<Self> {
        let admission = Admission::new(capacity, labels.clone());
        let (tx, rx) = crossbeam_channel::unbounded(); // bounded by admission, not here
        std::thread::Builder::new()
            .name(format!("inferd-model-{}", labels.model))
            .spawn(move || match compute_pool(rayon::current_num_threads()) {
                Ok(pool) => pool.install(|| worker::supervise(rx, encoder, config, labels)),
                Err(err) => {
                    tracing::warn!(%err, "no compute pool; kernels use the global one");
                    worker::supervise(rx, encoder, config, labels)
                }
            })?;
        Ok(Self { tx, admission })
    }

    /// Takes a queue slot, or `None` when the queue is full (for background work: when it is
    /// half full).
    pub fn admit(&self, priority: Priority) -> Option<Permit> {
        match priority {
            Priority::Interactive => self.admission.try_admit(),
            Priority::Background => self.admission.try_admit_background(),
        }
    }

    /// Queues a request's sequences; the receiver yields one vector per sequence, in order.
    pub fn submit(
        &self,
        permit: Permit,
        sequences: Vec<Sequence>,
        normalize: bool,
        deadline: Instant,
        priority: Priority,
    ) -> oneshot::Receiver<Result<Vec<Vec<f32>>, BatchError>> {
        let (reply, rx) = oneshot::channel();
        let queue = tracing::info_span!("queue", sequences = sequences.len() as i64);
        let job = Job {
            sequences,
            normalize,
            deadline,
            enqueued: Instant::now(),
            priority,
            reply,
            permit,
            request: tracing::Span::current(),
            queue,
        };
        // A send error means the worker is gone; dropping the job drops `reply`, which the
        // caller sees as `WorkerGone`.
        let _ = self.tx.send(job);
        rx
    }

    pub fn depth(&self) -> usize {
        self.admission.depth()
    }
}
