//! Running one chunk: route the batch (once, then pinned), run each request line through the
//! batch's endpoint at background priority, retry what the service was too busy for, write the
//! chunk's lines to a blob and journal it.

use std::{sync::Arc, time::Duration};

use tokio::task::JoinSet;

use super::Runner;
use crate::{
    deploy::{DeployError, Routed, Target},
    jobs::{
        blocking,
        endpoint::{Endpoint, Outcome},
        input::{self, LineError, Span},
        metrics, output,
        state::{BatchState, ChunkCounts, Record},
        store::Task,
        types::{new_id, now, BatchStatus},
        JobsError,
    },
    serving::ModelRef,
};

/// Server faults a request may hit before its fault is written as its answer.
const MAX_FAULTS: u32 = 3;
/// First and longest wait between retries of a request the service was busy for.
const FIRST_RETRY: Duration = Duration::from_millis(50);
const LONGEST_RETRY: Duration = Duration::from_secs(2);
/// How often to look again while the model is not ready.
const NOT_READY_RETRY: Duration = Duration::from_secs(1);

/// What a chunk needs from its batch.
struct Snapshot {
    endpoint: String,
    input: String,
    /// The pinned version, once routed.
    pinned: Option<String>,
    /// The model the requests name.
    model: Option<String>,
    span: Span,
    duplicates: Vec<usize>,
    status: BatchStatus,
    expired: bool,
}

impl Snapshot {
    fn of(b: &BatchState, chunk: usize) -> Option<Self> {
        let span = *b.plan.chunks.get(chunk)?;
        let end = b
            .plan
            .chunks
            .get(chunk + 1)
            .map_or(usize::MAX, |next| next.first_line);
        Some(Self {
            endpoint: b.batch.endpoint.clone(),
            input: b.batch.input_file_id.clone(),
            pinned: b.batch.model.clone(),
            model: b.plan.model.clone(),
            span,
            duplicates: b
                .plan
                .duplicates
                .iter()
                .copied()
                .filter(|l| (span.first_line..end).contains(l))
                .collect(),
            status: b.batch.status,
            expired: b.batch.expires_at.is_some_and(|e| now() >= e),
        })
    }
}

/// Where a chunk's requests go: a version, or nowhere (every request gets the answer).
enum Route {
    To(Arc<Routed>),
    Refused(DeployError),
}

/// What one line produced.
struct LineResult {
    text: String,
    ok: bool,
    tokens: usize,
}

/// What every line of a chunk shares.
struct Lines {
    runner: Runner,
    batch: String,
    endpoint: Arc<dyn Endpoint>,
    url: String,
    model: Option<String>,
    route: Route,
    duplicates: Vec<usize>,
}

impl Runner {
    pub(super) async fn run_chunk(&self, id: &str, chunk: usize) -> Result<(), JobsError> {
        let store = self.jobs.store();
        // A task can reach this replica before the record that queued it (on Redis the task
        // and the journal are different streams): read the state as of now, or a new batch
        // looks unknown and its chunk is dropped.
        let found = store
            .read_latest(|s| {
                s.batch(id)
                    .map(|b| (Snapshot::of(b, chunk), b.done.contains_key(&chunk)))
            })
            .await?;
        let Some((Some(snap), done)) = found else {
            return Ok(()); // an unknown batch or chunk: nothing to do
        };
        if done {
            return self.finalize_if_done(id).await;
        }
        if !matches!(
            snap.status,
            BatchStatus::Validating | BatchStatus::InProgress
        ) {
            return Ok(()); // cancelling, finalizing or ended: its end is queued
        }
        if snap.expired {
            let batch = id.to_string();
            return store.push(vec![Task::Finalize { batch }]).await;
        }
        if snap.status == BatchStatus::Validating {
            store
                .append(Record::Started {
                    id: id.into(),
                    at: now(),
                })
                .await?;
        }
        let path = store.blobs().file_path(&snap.input);
        let span = snap.span;
        let lines = blocking(move || input::read_chunk(&path, span)).await?;
        let Some(endpoint) = self.jobs.endpoints().get(&snap.endpoint) else {
            return Err(JobsError::Invalid(format!(
                "batch {id} names endpoint {}, which this build does not serve",
                snap.endpoint
            )));
        };
        let route = self.route(id, &snap).await?;
        let shared = Arc::new(Lines {
            runner: self.clone(),
            batch: id.to_string(),
            endpoint,
            url: snap.endpoint,
            model: snap.model,
            route,
            duplicates: snap.duplicates,
        });
        let mut running = JoinSet::new();
        for (order, (line_no, text)) in lines.into_iter().enumerate() {
            let shared = Arc::clone(&shared);
            running.spawn(async move { (order, shared.run(line_no, &text).await) });
        }
        let mut results = Vec::new();
        while let Some(joined) = running.join_next().await {
            match joined {
                Ok((order, Some(result))) => results.push((order, result)),
                Ok((_, None)) => return Ok(()), // the batch stopped running: its end is queued
                Err(err) => return Err(JobsError::storage("a batch request task", err)),
            }
        }
        results.sort_by_key(|(order, _)| *order);
        self.commit(id, chunk, results.into_iter().map(|(_, r)| r).collect())
            .await
    }

    /// The version this batch runs on: the pinned one, or (first chunk) the one the canary
    /// split picks for the batch id, pinned for every later chunk. The first pin journaled wins.
    async fn route(&self, id: &str, snap: &Snapshot) -> Result<Route, JobsError> {
        let target = match &snap.pinned {
            Some(pin) => Target::pinned(ModelRef::parse(pin)),
            None => Target {
                model: snap.model.as_deref().map(ModelRef::parse),
                route_key: Some(id.to_string()),
            },
        };
        let routed = loop {
            match self.registry.route(&target) {
                Err(DeployError::NotReady) => tokio::time::sleep(NOT_READY_RETRY).await,
                Err(err) => return Ok(Route::Refused(err)),
                Ok(routed) => break routed,
            }
        };
        let chosen = routed.handle.model_ref();
        if snap.pinned.is_none() {
            let record = Record::Pinned {
                id: id.into(),
                model: chosen.to_string(),
            };
            self.jobs.store().append(record).await?;
        }
        let pin = self
            .jobs
            .store()
            .read(|s| s.batch(id).and_then(|b| b.batch.model.clone()))
            .unwrap_or_else(|| chosen.to_string());
        // Always run pinned: batch traffic neither counts toward canary health nor shadows.
        match self.registry.route(&Target::pinned(ModelRef::parse(&pin))) {
            Ok(routed) => Ok(Route::To(Arc::new(routed))),
            Err(err) => Ok(Route::Refused(err)),
        }
    }

    /// Writes the chunk's lines to a blob and journals it; only the first attempt journaled
    /// counts, later ones are removed.
    async fn commit(
        &self,
        id: &str,
        chunk: usize,
        results: Vec<LineResult>,
    ) -> Result<(), JobsError> {
        let (mut out, mut errors) = (String::new(), String::new());
        let mut done = ChunkCounts::default();
        for result in results {
            done.tokens += result.tokens;
            if result.ok {
                out.push_str(&result.text);
                done.completed += 1;
            } else {
                errors.push_str(&result.text);
                done.failed += 1;
            }
        }
        done.split = out.len() as u64;
        out.push_str(&errors);
        let attempt = new_id("");
        let blobs = self.jobs.store().blobs().clone();
        let path = blobs.chunk_path(id, chunk, &attempt);
        let (writer, target) = (blobs.clone(), path.clone());
        blocking(move || writer.write(&target, out.as_bytes())).await?;
        let record = Record::Chunk {
            id: id.into(),
            chunk,
            attempt: attempt.clone(),
            done,
        };
        self.jobs.store().append(record).await?;
        let won = self.jobs.store().read(|s| {
            s.batch(id)
                .and_then(|b| b.done.get(&chunk))
                .is_some_and(|d| d.attempt == attempt)
        });
        if won {
            metrics::requests(done.completed, done.failed);
        } else {
            blobs.remove(&path);
        }
        self.finalize_if_done(id).await
    }

    /// Ends the batch when its last chunk is in.
    async fn finalize_if_done(&self, id: &str) -> Result<(), JobsError> {
        let done = self
            .jobs
            .store()
            .read(|s| s.batch(id).is_some_and(|b| b.running() && b.all_done()));
        match done {
            true => self.finalize(id).await,
            false => Ok(()),
        }
    }

    /// Whether the batch stopped running (cancelled, expired, ended) or the service stops: the
    /// requests still waiting are dropped, and the batch's end answers them.
    fn abandoned(&self, id: &str) -> bool {
        self.stopped()
            || self.jobs.store().read(|s| {
                s.batch(id).is_none_or(|b| {
                    !matches!(
                        b.batch.status,
                        BatchStatus::Validating | BatchStatus::InProgress
                    ) || b.batch.expires_at.is_some_and(|e| now() >= e)
                })
            })
    }
}

impl Lines {
    /// One line's result, or `None` when the batch stopped running first.
    async fn run(&self, line_no: usize, text: &str) -> Option<LineResult> {
        let refused = |error: LineError| LineResult {
            text: output::refused(&error),
            ok: false,
            tokens: 0,
        };
        let request = match input::parse_line(text, line_no, &self.url, self.model.as_deref()) {
            Ok(request) => request,
            Err(error) => return Some(refused(error)),
        };
        if self.duplicates.contains(&line_no) {
            return Some(refused(LineError {
                message: format!(
                    "line {line_no} repeats custom_id {:?}; each request's custom_id must be unique",
                    request.custom_id
                ),
                custom_id: Some(request.custom_id),
                code: "duplicate_custom_id",
            }));
        }
        let answered = |outcome: Outcome| match outcome {
            Outcome::Answered {
                status,
                body,
                tokens,
            } => LineResult {
                text: output::answered(&request.custom_id, status, &body),
                ok: (200..300).contains(&status),
                tokens,
            },
            Outcome::Fault { status, body } => LineResult {
                text: output::answered(&request.custom_id, status, &body),
                ok: false,
                tokens: 0,
            },
            Outcome::Busy => unreachable!("busy outcomes are retried"),
        };
        let routed = match &self.route {
            Route::To(routed) => routed,
            Route::Refused(err) => return Some(answered(self.endpoint.unroutable(err))),
        };
        let (mut faults, mut wait) = (0, FIRST_RETRY);
        loop {
            match self.endpoint.call(routed, request.body.clone()).await {
                Outcome::Busy => {}
                Outcome::Fault { .. } if faults + 1 < MAX_FAULTS => faults += 1,
                outcome => return Some(answered(outcome)),
            }
            if self.runner.abandoned(&self.batch) {
                return None;
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(LONGEST_RETRY);
        }
    }
}
