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
//! Background sequences (batch jobs) fill only spare room ([`super::former`]); the room is the
//! background time budget (`--batch-background-budget`) turned into token-equivalents with the
//! compute rate this loop measures on every batch ([`Pacer`]), so the same budget means a few
//! texts on a CPU and a large batch on a GPU.
//!
//! Requests are split into sequences; a request is answered when its last sequence is done.
//! A panic inside a forward pass fails only that batch's requests; the loop goes on with the
//! rest of the queue. A panic anywhere else restarts the loop (its queued requests fail with 500).
//! Each request's `queue` span closes as its first batch starts; the batch runs in a `batch` span,
//! a child of its first request's span and linked to every request it serves, with the model's
//! `forward` and `pooling` spans below it.
//!
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
use tracing::Span;

use super::{
    admission::Permit,
    former::{self, BatchLimits, Priority, Spare, Waiting},
    BatchError, Job, ModelLabels, Sequence,
};
use crate::{
    model::{
        encoder::{Encoder, Input},
        pooling::l2_normalize,
    },
    telemetry::traces,
};

/// Worker settings, including fault injection used by tests and drills.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub limits: BatchLimits,
    /// Compute time background sequences may fill one batch up to.
    pub background_budget: Duration,
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
    /// The submitting request's span, which each batch serving it links to.
    request: Span,
    /// The request's `queue` span, closed when its first batch starts.
    queue: Option<Span>,
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
    seq: Sequence,
    priority: Priority,
}

/// What the loop learns as it runs: seconds of compute per token-equivalent (smoothed), and how
/// many batches in a row ran without the background work that waited.
#[derive(Debug, Default)]
struct Pacer {
    seconds_per_token: Option<f64>,
    starved: u32,
}

impl Pacer {
    /// The spare room background work may fill in the next batch.
    fn spare(&self, budget: Duration) -> Spare {
        let tokens = self
            .seconds_per_token
            .map_or(0.0, |rate| budget.as_secs_f64() / rate);
        Spare {
            budget: tokens as usize,
            starved: self.starved,
        }
    }

    fn measured(&mut self, cost: usize, compute: Duration) {
        if cost == 0 {
            return;
        }
        let rate = compute.as_secs_f64() / cost as f64;
        self.seconds_per_token = Some(match self.seconds_per_token {
            Some(old) => 0.8 * old + 0.2 * rate,
            None => rate,
        });
    }

    /// After forming `batch` from `queue` (what still waits).
    fn formed(&mut self, batch: &[Item], queue: &VecDeque<Item>) {
        let ran = batch.iter().any(|i| i.priority == Priority::Background);
        let waits = queue.iter().any(|i| i.priority == Priority::Background);
        self.starved = match (ran, waits) {
            (false, true) => self.starved.saturating_add(1),
            _ => 0,
        };
    }
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
    let mut pacer = Pacer::default();
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
        let spare = pacer.spare(config.background_budget);
        let batch = take_batch(&mut queue, config.limits, spare);
        pacer.formed(&batch, &queue);
        run_batch(batch, encoder, config, labels, &mut pacer);
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
        request: job.request,
        queue: Some(job.queue),
    }));
    for (index, seq) in job.sequences.into_iter().enumerate() {
        queue.push_back(Item {
            job: Rc::clone(&state),
            index,
            seq,
            priority: job.priority,
        });
    }
}

/// Drops sequences whose request no longer needs them: answered already (failed), deadline
/// passed, or client gone. Expired requests get their 504 here, before any compute is spent.
fn prune(queue: &mut VecDeque<Item>, now: Instant, labels: &ModelLabels) {
    queue.retain(|item| item.job.borrow_mut().wanted(now, labels));
}

fn take_batch(queue: &mut VecDeque<Item>, limits: BatchLimits, spare: Spare) -> Vec<Item> {
    let waiting: Vec<Waiting> = queue
        .iter()
        .map(|item| Waiting {
            len: item.seq.ids.len(),
            priority: item.priority,
        })
        .collect();
    let picked = former::select(&waiting, limits, spare);
    // Remove from the back so earlier positions stay valid.
    let mut batch: Vec<Item> = picked
        .iter()
        .rev()
        .filter_map(|&i| queue.remove(i))
        .collect();
    batch.reverse();
    batch
}

fn run_batch(
    mut batch: Vec<Item>,
    encoder: &Encoder,
    config: &WorkerConfig,
    labels: &ModelLabels,
    pacer: &mut Pacer,
) {
    let started = Instant::now();
    for item in &batch {
        let mut job = item.job.borrow_mut();
        if !job.started {
            job.started = true;
            job.queue = None;
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
    let seqs: Vec<&[u32]> = batch.iter().map(|item| &item.seq.ids[..]).collect();
    let inputs: Vec<Input> = batch
        .iter()
        .map(|item| Input {
            ids: &item.seq.ids,
            second: item.seq.second,
        })
        .collect();
    let tokens = seqs.iter().map(|s| s.len()).sum();
    let span = batch_span(&batch, tokens);
    let _entered = span.enter();
    let compute_started = Instant::now();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        if config
            .debug_panic_on
            .as_deref()
            .is_some_and(|p| seqs.contains(&p))
        {
            panic!("fault injection: --debug-panic-on matched a batch");
        }
        encoder.run(&inputs)
    }));
    match outcome {
        Ok(Ok(vectors)) => {
            let cost = config.limits.cost_of(seqs.iter().map(|s| s.len()));
            pacer.measured(cost, compute_started.elapsed());
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

/// The batch's span: a child of its first request's span, linked to each request it serves.
fn batch_span(batch: &[Item], tokens: usize) -> Span {
    let mut jobs: Vec<&Rc<RefCell<JobState>>> = Vec::new();
    for item in batch {
        if !jobs.iter().any(|job| Rc::ptr_eq(job, &item.job)) {
            jobs.push(&item.job);
        }
    }
    let requests: Vec<Span> = jobs
        .iter()
        .map(|job| job.borrow().request.clone())
        .collect();
    let requests: Vec<&Span> = requests.iter().collect();
    traces::batch_span(&requests, batch.len(), tokens)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_background_room_follows_the_measured_rate() {
        let mut pacer = Pacer::default();
        let budget = Duration::from_millis(2);
        // Nothing measured yet: a lone background sequence at a time.
        assert_eq!(pacer.spare(budget).budget, 0);
        // 100 token-equivalents in 1 ms: 2 ms buys 200.
        pacer.measured(100, Duration::from_millis(1));
        assert_eq!(pacer.spare(budget).budget, 200);
        // A slower batch moves the estimate a fifth of the way.
        pacer.measured(100, Duration::from_millis(2));
        let room = pacer.spare(budget).budget;
        assert!((160..=170).contains(&room), "{room}");
    }
}
