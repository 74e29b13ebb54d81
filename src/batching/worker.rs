//! The model worker: one thread that owns the model and runs every forward pass.
//!
//! Loop: block for work, drain everything else that arrived meanwhile, drop what no longer needs
//! computing (deadline passed, client gone), form one batch ([`super::former`]), check it again
//! right before its forward pass, run it, deliver. While a batch runs, new requests pile up in
//! the channel — that pile is the next batch, so batches grow with load without any timer.
//!
//! A request's admission [`Permit`] is released the moment its result (or error) is handed back,
//! before the reply is sent: once a client can see its answer its queue slot is free, so a client
//! that sends its next request at once is never refused for its own finished one. Expiry is
//! counted as `deadline_exceeded` even when the caller's timer already dropped the reply.
//!
//! Requests are split into sequences; a request is answered when its last sequence is done.
//! A panic inside a forward pass fails only that batch's requests; the loop goes on with the
//! rest of the queue. A panic anywhere else restarts the loop (its queued requests fail with 500).
//! This thread never touches HTTP types.

use std::{
    cell::RefCell,
    collections::VecDeque,
    panic::{catch_unwind, AssertUnwindSafe},
    rc::Rc,
    sync::Arc,
    time::{Duration, Instant},
};

use crossbeam_channel::Receiver;
use tokio::sync::oneshot;

use super::{
    admission::Permit,
    former::{self, BatchLimits},
    BatchError, Job, ModelLabels,
};
use crate::model::{encoder::Encoder, pooling::l2_normalize};

/// Worker settings, including fault injection used by tests and drills.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub limits: BatchLimits,
    /// Sleep before each forward pass.
    pub debug_delay: Option<Duration>,
    /// Panic when a batch holds exactly these token ids.
    pub debug_panic_on: Option<Vec<u32>>,
}

type Reply = oneshot::Sender<Result<Vec<Vec<f32>>, BatchError>>;

/// A request inside the worker, shared by its sequences.
struct JobState {
    reply: Option<Reply>,
    results: Vec<Option<Vec<f32>>>,
    remaining: usize,
    normalize: bool,
    deadline: Instant,
    enqueued: Instant,
    started: bool,
    /// The queue slot, held until the result is handed back.
    permit: Option<Permit>,
}

impl JobState {
    /// Frees the queue slot, then hands `result` back (to a caller that may be gone).
    fn finish(&mut self, result: Result<Vec<Vec<f32>>, BatchError>) {
        self.permit = None;
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(result);
        }
    }

    /// Whether this request still needs computing at `now`; ends it (and counts why) if not.
    fn wanted(&mut self, now: Instant, labels: &ModelLabels) -> bool {
        let Some(reply) = &self.reply else {
            return false; // answered already (a failed batch) or dropped
        };
        if now >= self.deadline {
            labels.rejected("deadline_exceeded", 1);
            self.finish(Err(BatchError::DeadlineExceeded));
            return false;
        }
        if reply.is_closed() {
            labels.rejected("client_gone", 1);
            self.reply = None;
            self.permit = None;
            return false;
        }
        true
    }
}

/// One sequence waiting for a batch.
struct Item {
    job: Rc<RefCell<JobState>>,
    index: usize,
    ids: Arc<[u32]>,
}

pub(super) fn supervise(
    rx: Receiver<Job>,
    encoder: Arc<Encoder>,
    config: WorkerConfig,
    labels: ModelLabels,
) {
    loop {
        let outcome = catch_unwind(AssertUnwindSafe(|| run(&rx, &encoder, &config, &labels)));
        match outcome {
            Ok(()) => return, // every sender is gone: the model was unloaded
            Err(_) => {
                tracing::error!(model = %labels.model, "model worker loop panicked; restarting it");
                labels.worker_restarted();
            }
        }
    }
}

fn run(rx: &Receiver<Job>, encoder: &Encoder, config: &WorkerConfig, labels: &ModelLabels) {
    let mut queue: VecDeque<Item> = VecDeque::new();
    loop {
        if queue.is_empty() {
            match rx.recv() {
                Ok(job) => enqueue(&mut queue, job),
                Err(_) => return,
            }
        }
        while let Ok(job) = rx.try_recv() {
            enqueue(&mut queue, job);
        }
        prune(&mut queue, Instant::now(), labels);
        if queue.is_empty() {
            continue;
        }
        let batch = take_batch(&mut queue, config.limits);
        run_batch(batch, encoder, config, labels);
    }
}

fn enqueue(queue: &mut VecDeque<Item>, job: Job) {
    let n = job.sequences.len();
    let state = Rc::new(RefCell::new(JobState {
        reply: Some(job.reply),
        results: vec![None; n],
        remaining: n,
        normalize: job.normalize,
        deadline: job.deadline,
        enqueued: job.enqueued,
        started: false,
        permit: Some(job.permit),
    }));
    for (index, ids) in job.sequences.into_iter().enumerate() {
        queue.push_back(Item {
            job: Rc::clone(&state),
            index,
            ids,
        });
    }
}

/// Drops sequences whose request no longer needs them: answered already (failed), deadline
/// passed, or client gone. Expired requests get their 504 here, before any compute is spent.
fn prune(queue: &mut VecDeque<Item>, now: Instant, labels: &ModelLabels) {
    queue.retain(|item| item.job.borrow_mut().wanted(now, labels));
}

fn take_batch(queue: &mut VecDeque<Item>, limits: BatchLimits) -> Vec<Item> {
    let lens: Vec<usize> = queue.iter().map(|item| item.ids.len()).collect();
    let picked = former::select(&lens, limits);
    // Remove from the back so earlier positions stay valid.
    let mut batch: Vec<Item> = picked
        .iter()
        .rev()
        .filter_map(|&i| queue.remove(i))
        .collect();
    batch.reverse();
    batch
}

fn run_batch(mut batch: Vec<Item>, encoder: &Encoder, config: &WorkerConfig, labels: &ModelLabels) {
    let started = Instant::now();
    for item in &batch {
        let mut job = item.job.borrow_mut();
        if !job.started {
            job.started = true;
            labels.queue_wait(started.duration_since(job.enqueued));
        }
    }
    if let Some(delay) = config.debug_delay {
        std::thread::sleep(delay);
    }
    // Checked again as the batch goes in: what expired meanwhile is not computed.
    let now = Instant::now();
    batch.retain(|item| item.job.borrow_mut().wanted(now, labels));
    if batch.is_empty() {
        return;
    }
    let seqs: Vec<&[u32]> = batch.iter().map(|item| &item.ids[..]).collect();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        if config
            .debug_panic_on
            .as_deref()
            .is_some_and(|p| seqs.contains(&p))
        {
            panic!("fault injection: --debug-panic-on matched a batch");
        }
        encoder.embed(&seqs)
    }));
    let tokens = seqs.iter().map(|s| s.len()).sum();
    match outcome {
        Ok(Ok(vectors)) => {
            labels.batch(batch.len(), tokens, started.elapsed());
            deliver(batch, vectors);
        }
        Ok(Err(err)) => {
            tracing::error!(model = %labels.model, error = %err, "forward pass failed");
            fail(batch);
        }
        Err(_) => {
            tracing::error!(model = %labels.model, sequences = batch.len(), "forward pass panicked; failing its batch");
            labels.worker_restarted();
            fail(batch);
        }
    }
}

fn deliver(batch: Vec<Item>, vectors: Vec<Vec<f32>>) {
    for (item, mut vector) in batch.into_iter().zip(vectors) {
        let mut job = item.job.borrow_mut();
        if job.reply.is_none() {
            continue;
        }
        if job.normalize {
            l2_normalize(&mut vector);
        }
        job.results[item.index] = Some(vector);
        job.remaining -= 1;
        if job.remaining == 0 {
            let results = std::mem::take(&mut job.results);
            job.finish(Ok(results.into_iter().flatten().collect()));
        }
    }
}

fn fail(batch: Vec<Item>) {
    for item in batch {
        item.job.borrow_mut().finish(Err(BatchError::Failed));
    }
}
