//! The batch jobs' state as a fold of journal records: files, batches, which chunks are done
//! (and by which attempt), and the webhook deliveries still owed.
//!
//! Every change is a [`Record`], appended to the journal first and then applied here with
//! [`State::apply`]; replaying the journal on start applies the same records with the same
//! function, so the state after a crash is the state that was acknowledged. Records may arrive
//! twice or race (two replicas finishing the same chunk, two finalizers): `apply` accepts the
//! first and ignores the rest, so "first record wins" is the one rule that makes every
//! `custom_id` land in the output exactly once and every event keep one id.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::{
    input::Plan,
    types::{Batch, BatchErrors, BatchStatus, Event, FileObject},
};

/// One journal record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
// Records live one at a time (appended, applied, dropped) except while a journal is replayed,
// so the size of the largest (`Finished`) costs little; boxing it would only add noise.
#[allow(clippy::large_enum_variant)]
pub enum Record {
    /// An upload, durable on disk before this record was written.
    File {
        file: FileObject,
        lines: usize,
    },
    FileDeleted {
        id: String,
    },
    /// A new batch (`validating`) and how its input is cut.
    Batch {
        batch: Box<Batch>,
        plan: Plan,
    },
    Started {
        id: String,
        at: u64,
    },
    /// The version (`name@version`) that runs every chunk of the batch.
    Pinned {
        id: String,
        model: String,
    },
    /// A chunk's results, durable in the attempt's blob.
    Chunk {
        id: String,
        chunk: usize,
        attempt: String,
        done: ChunkCounts,
    },
    Cancelling {
        id: String,
        at: u64,
    },
    /// No chunk is accepted after this; the batch will end as `end`.
    Finalizing {
        id: String,
        at: u64,
        end: BatchStatus,
        errors: Option<BatchErrors>,
    },
    /// The batch ended: its output files and the event announcing it.
    Finished {
        id: String,
        at: u64,
        output: Option<FileObject>,
        error: Option<FileObject>,
        /// Requests answered as errors without running (cancelled or expired first).
        unrun: usize,
        event: Event,
        /// Where the event goes (`--webhook-url` when it was created).
        urls: Vec<String>,
    },
    /// A webhook delivery ended: delivered, or its retry budget ran out.
    Delivered {
        event: String,
        url: String,
        delivered: bool,
    },
}

/// What one chunk produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkCounts {
    pub completed: usize,
    pub failed: usize,
    pub tokens: usize,
    /// Bytes of output lines at the start of the blob; error lines follow.
    pub split: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredFile {
    pub file: FileObject,
    pub lines: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChunkDone {
    pub attempt: String,
    pub counts: ChunkCounts,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BatchState {
    pub batch: Batch,
    pub plan: Plan,
    pub done: BTreeMap<usize, ChunkDone>,
    /// How the batch ends, once finalizing.
    pub end: Option<BatchStatus>,
    pub event: Option<Event>,
}

impl BatchState {
    pub fn all_done(&self) -> bool {
        self.done.len() == self.plan.chunks.len()
    }

    /// Whether chunks still run (and may be committed).
    pub fn running(&self) -> bool {
        matches!(
            self.batch.status,
            BatchStatus::Validating | BatchStatus::InProgress | BatchStatus::Cancelling
        )
    }
}

/// A webhook delivery owed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Delivery {
    pub event: String,
    pub url: String,
}

#[derive(Debug, Default)]
pub struct State {
    files: HashMap<String, StoredFile>,
    file_order: Vec<String>,
    batches: HashMap<String, BatchState>,
    batch_order: Vec<String>,
    /// Events by id, and the deliveries of each still owed.
    events: HashMap<String, Event>,
    owed: BTreeSet<Delivery>,
}

impl State {
    /// Applies `record`; `false` when it was ignored (a duplicate, or it lost a race).
    pub fn apply(&mut self, record: &Record) -> bool {
        match record {
            Record::File { file, lines } => {
                if self.files.contains_key(&file.id) {
                    return false;
                }
                self.insert_file(file.clone(), *lines);
                true
            }
            Record::FileDeleted { id } => {
                self.file_order.retain(|f| f != id);
                self.files.remove(id).is_some()
            }
            Record::Batch { batch, plan } => {
                if self.batches.contains_key(&batch.id) {
                    return false;
                }
                self.batch_order.push(batch.id.clone());
                let state = BatchState {
                    batch: (**batch).clone(),
                    plan: plan.clone(),
                    done: BTreeMap::new(),
                    end: None,
                    event: None,
                };
                self.batches.insert(batch.id.clone(), state);
                true
            }
            Record::Started { id, at } => self.update(id, |b| {
                let starts = b.batch.status == BatchStatus::Validating;
                if starts {
                    b.batch.set_status(BatchStatus::InProgress, *at);
                }
                starts
            }),
            Record::Pinned { id, model } => self.update(id, |b| {
                let first = b.batch.model.is_none();
                if first {
                    b.batch.model = Some(model.clone());
                }
                first
            }),
            Record::Chunk {
                id,
                chunk,
                attempt,
                done,
            } => self.update(id, |b| {
                let fresh = b.running() && *chunk < b.plan.chunks.len();
                if !fresh || b.done.contains_key(chunk) {
                    return false;
                }
                let counts = &mut b.batch.request_counts;
                counts.completed += done.completed;
                counts.failed += done.failed;
                b.batch.usage.add_input(done.tokens);
                let chunk_done = ChunkDone {
                    attempt: attempt.clone(),
                    counts: *done,
                };
                b.done.insert(*chunk, chunk_done);
                true
            }),
            Record::Cancelling { id, at } => self.update(id, |b| {
                let cancels = matches!(
                    b.batch.status,
                    BatchStatus::Validating | BatchStatus::InProgress
                );
                if cancels {
                    b.batch.set_status(BatchStatus::Cancelling, *at);
                }
                cancels
            }),
            Record::Finalizing {
                id,
                at,
                end,
                errors,
            } => self.update(id, |b| {
                let allowed = match end {
                    BatchStatus::Completed => b.all_done() && b.running(),
                    BatchStatus::Cancelled => b.batch.status == BatchStatus::Cancelling,
                    BatchStatus::Expired | BatchStatus::Failed => b.running(),
                    _ => false,
                };
                if allowed {
                    b.batch.set_status(BatchStatus::Finalizing, *at);
                    b.batch.errors = errors.clone();
                    b.end = Some(*end);
                }
                allowed
            }),
            Record::Finished {
                id,
                at,
                output,
                error,
                unrun,
                event,
                urls,
            } => {
                let accepted = self.update(id, |b| {
                    let (BatchStatus::Finalizing, Some(end)) = (b.batch.status, b.end) else {
                        return false;
                    };
                    b.batch.set_status(end, *at);
                    b.batch.request_counts.failed += unrun;
                    b.batch.output_file_id = output.as_ref().map(|f| f.id.clone());
                    b.batch.error_file_id = error.as_ref().map(|f| f.id.clone());
                    b.event = Some(event.clone());
                    true
                });
                if accepted {
                    for file in [output, error].into_iter().flatten() {
                        self.insert_file(file.clone(), 0);
                    }
                    self.events.insert(event.id.clone(), event.clone());
                    for url in urls {
                        self.owed.insert(Delivery {
                            event: event.id.clone(),
                            url: url.clone(),
                        });
                    }
                }
                accepted
            }
            Record::Delivered { event, url, .. } => self.owed.remove(&Delivery {
                event: event.clone(),
                url: url.clone(),
            }),
        }
    }

    fn insert_file(&mut self, file: FileObject, lines: usize) {
        if !self.files.contains_key(&file.id) {
            self.file_order.push(file.id.clone());
        }
        self.files
            .insert(file.id.clone(), StoredFile { file, lines });
    }

    fn update(&mut self, id: &str, change: impl FnOnce(&mut BatchState) -> bool) -> bool {
        self.batches.get_mut(id).is_some_and(change)
    }

    pub fn file(&self, id: &str) -> Option<&StoredFile> {
        self.files.get(id)
    }

    pub fn batch(&self, id: &str) -> Option<&BatchState> {
        self.batches.get(id)
    }

    /// Files, newest first, starting after the one with id `after`.
    pub fn files_page(&self, after: Option<&str>, limit: usize) -> (Vec<FileObject>, bool) {
        page(&self.file_order, after, limit, |id| {
            self.files.get(id).map(|f| f.file.clone())
        })
    }

    /// Batches, newest first, starting after the one with id `after`.
    pub fn batches_page(&self, after: Option<&str>, limit: usize) -> (Vec<Batch>, bool) {
        page(&self.batch_order, after, limit, |id| {
            self.batches.get(id).map(|b| b.batch.clone())
        })
    }

    /// Batches not yet ended.
    pub fn unfinished(&self) -> impl Iterator<Item = &BatchState> {
        self.batch_order
            .iter()
            .filter_map(|id| self.batches.get(id))
            .filter(|b| !b.batch.status.is_terminal())
    }

    /// Whether an unfinished batch reads file `id`.
    pub fn file_in_use(&self, id: &str) -> bool {
        self.unfinished().any(|b| b.batch.input_file_id == id)
    }

    pub fn owed(&self) -> impl Iterator<Item = &Delivery> {
        self.owed.iter()
    }

    pub fn is_owed(&self, delivery: &Delivery) -> bool {
        self.owed.contains(delivery)
    }

    pub fn event(&self, id: &str) -> Option<&Event> {
        self.events.get(id)
    }

    /// Batches per status, for `inferd_batch_jobs{status}`.
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut counts: BTreeMap<&'static str, usize> =
            BatchStatus::ALL.iter().map(|s| (s.as_str(), 0)).collect();
        for b in self.batches.values() {
            *counts.entry(b.batch.status.as_str()).or_default() += 1;
        }
        counts
    }
}

/// The page of `order` (oldest first) newest first, after `after`, and whether more follow.
fn page<T>(
    order: &[String],
    after: Option<&str>,
    limit: usize,
    get: impl Fn(&str) -> Option<T>,
) -> (Vec<T>, bool) {
    let newest_first = order.iter().rev();
    let mut rest: Box<dyn Iterator<Item = &String>> = match after {
        Some(after) => Box::new(newest_first.skip_while(move |id| *id != after).skip(1)),
        None => Box::new(newest_first),
    };
    let items: Vec<T> = rest.by_ref().take(limit).filter_map(|id| get(id)).collect();
    (items, rest.next().is_some())
}

#[cfg(test)]
mod tests;
