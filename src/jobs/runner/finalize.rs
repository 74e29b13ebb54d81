//! Ending a batch: decide how it ends (completed, cancelled, expired), stop accepting chunks,
//! assemble the output and error files from the chunk blobs the journal names (answering the
//! requests of chunks that never ran with an error line each), and journal the end with its
//! webhook event. Assembly is deterministic (same blobs, same file ids), so a finalize that
//! runs twice writes the same files, and only the first end journaled counts.

use std::{
    fs::File,
    io::{BufWriter, Read, Write},
    path::Path,
};

use super::Runner;
use crate::jobs::{
    blobs::Blobs,
    blocking,
    input::{self, LineError},
    output,
    state::{BatchState, Record},
    types::{now, BatchStatus, Event, FileObject, PURPOSE_OUTPUT},
    JobsError,
};

/// What assembly wrote.
struct Assembled {
    output: Option<FileObject>,
    error: Option<FileObject>,
    unrun: usize,
}

impl Runner {
    pub(super) async fn finalize(&self, id: &str) -> Result<(), JobsError> {
        let store = self.jobs.store();
        // As of every record so far (see `run_chunk`): a cancel may not have reached us yet.
        let Some(state) = store.read_latest(|s| s.batch(id).cloned()).await? else {
            return Ok(());
        };
        if state.batch.status.is_terminal() {
            store.blobs().remove_chunks(id);
            return Ok(());
        }
        if state.batch.status != BatchStatus::Finalizing {
            let Some(end) = ending(&state) else {
                return Ok(()); // still running: nothing to end yet
            };
            let record = Record::Finalizing {
                id: id.into(),
                at: now(),
                end,
                errors: None,
            };
            store.append(record).await?;
        }
        let Some(state) = store.read(|s| s.batch(id).cloned()) else {
            return Ok(());
        };
        let (Some(end), BatchStatus::Finalizing) = (state.end, state.batch.status) else {
            return Ok(()); // another worker ended it, or it is not ending after all
        };
        let blobs = store.blobs().clone();
        let snapshot = state.clone();
        let assembled = blocking(move || assemble(&blobs, &snapshot, end)).await?;
        let at = now();
        let kind = end.event_type().expect("a terminal status has an event");
        let urls = self
            .jobs
            .config()
            .webhooks
            .as_ref()
            .map(|w| w.urls.clone())
            .unwrap_or_default();
        let record = Record::Finished {
            id: id.into(),
            at,
            output: assembled.output,
            error: assembled.error,
            unrun: assembled.unrun,
            event: Event::new(kind, id, at),
            urls,
        };
        store.append(record).await?;
        tracing::info!(batch = id, status = end.as_str(), "batch ended");
        store.blobs().remove_chunks(id);
        Ok(())
    }
}

/// How a batch that is not yet finalizing ends now, if it does.
fn ending(state: &BatchState) -> Option<BatchStatus> {
    let expired = state.batch.expires_at.is_some_and(|e| now() >= e);
    match state.batch.status {
        BatchStatus::Cancelling => Some(BatchStatus::Cancelled),
        _ if state.running() && state.all_done() => Some(BatchStatus::Completed),
        _ if state.running() && expired => Some(BatchStatus::Expired),
        _ => None,
    }
}

/// File ids follow from the batch id, so a second assembly writes the same files.
fn file_id(batch: &str, kind: &str) -> String {
    format!("file-{kind}-{}", batch.trim_start_matches("batch_"))
}

fn assemble(blobs: &Blobs, state: &BatchState, end: BatchStatus) -> Result<Assembled, JobsError> {
    let id = &state.batch.id;
    let fail = |e: std::io::Error| JobsError::storage("assembling a batch's output", e);
    let (out_temp, err_temp) = (blobs.temp_path(), blobs.temp_path());
    let mut out = BufWriter::new(File::create(&out_temp).map_err(fail)?);
    let mut err = BufWriter::new(File::create(&err_temp).map_err(fail)?);
    let mut unrun = 0;
    let input = blobs.file_path(&state.batch.input_file_id);
    for (chunk, span) in state.plan.chunks.iter().enumerate() {
        match state.done.get(&chunk) {
            Some(done) => {
                let mut bytes = Vec::new();
                File::open(blobs.chunk_path(id, chunk, &done.attempt))
                    .and_then(|mut f| f.read_to_end(&mut bytes))
                    .map_err(fail)?;
                let split = (done.counts.split as usize).min(bytes.len());
                out.write_all(&bytes[..split]).map_err(fail)?;
                err.write_all(&bytes[split..]).map_err(fail)?;
            }
            None => {
                for (line_no, text) in input::read_chunk(&input, *span)? {
                    err.write_all(unrun_line(&text, line_no, end).as_bytes())
                        .map_err(fail)?;
                    unrun += 1;
                }
            }
        }
    }
    let output = publish(blobs, out, &out_temp, &file_id(id, "output"), id)?;
    let error = publish(blobs, err, &err_temp, &file_id(id, "errors"), id)?;
    Ok(Assembled {
        output,
        error,
        unrun,
    })
}

/// The error line of a request its batch ended before running.
fn unrun_line(text: &str, line_no: usize, end: BatchStatus) -> String {
    let custom_id = serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v.get("custom_id")?.as_str().map(str::to_string));
    let (code, why) = match end {
        BatchStatus::Expired => ("batch_expired", "expired before"),
        _ => ("batch_cancelled", "was cancelled before"),
    };
    output::refused(&LineError {
        custom_id,
        code,
        message: format!("line {line_no}: the batch {why} this request ran"),
    })
}

/// Publishes a non-empty assembled file as `file_id`; an empty one is dropped.
fn publish(
    blobs: &Blobs,
    writer: BufWriter<File>,
    temp: &Path,
    file_id: &str,
    batch: &str,
) -> Result<Option<FileObject>, JobsError> {
    let file = writer
        .into_inner()
        .map_err(|e| JobsError::storage("assembling a batch's output", e.error()))?;
    let bytes = file
        .metadata()
        .map_err(|e| JobsError::storage("assembling a batch's output", e))?
        .len();
    drop(file);
    if bytes == 0 {
        blobs.remove(temp);
        return Ok(None);
    }
    blobs.publish(temp, &blobs.file_path(file_id))?;
    let name = format!(
        "{batch}_{}.jsonl",
        file_id.split('-').nth(1).unwrap_or("output")
    );
    Ok(Some(FileObject::new(
        file_id.to_string(),
        name,
        PURPOSE_OUTPUT,
        bytes,
    )))
}
