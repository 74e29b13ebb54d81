use super::*;
use crate::jobs::{
    input::Span,
    types::{PURPOSE_BATCH, PURPOSE_OUTPUT},
};

fn file(id: &str) -> Record {
    Record::File {
        file: FileObject::new(id.into(), "in.jsonl".into(), PURPOSE_BATCH, 100),
        lines: 4,
    }
}

fn batch(id: &str, chunks: usize) -> Record {
    let input = FileObject::new("file-1".into(), "in.jsonl".into(), PURPOSE_BATCH, 100);
    let span = Span {
        offset: 0,
        bytes: 1,
        first_line: 1,
    };
    Record::Batch {
        batch: Box::new(Batch::new(
            id.into(),
            "/v1/embeddings".into(),
            &input,
            4,
            "24h".into(),
            86_400,
            None,
        )),
        plan: Plan {
            chunks: vec![span; chunks],
            ..Plan::default()
        },
    }
}

fn chunk(id: &str, chunk: usize, attempt: &str) -> Record {
    Record::Chunk {
        id: id.into(),
        chunk,
        attempt: attempt.into(),
        done: ChunkCounts {
            completed: 1,
            failed: 1,
            tokens: 5,
            split: 10,
        },
    }
}

fn finalizing(id: &str, end: BatchStatus) -> Record {
    Record::Finalizing {
        id: id.into(),
        at: 5,
        end,
        errors: None,
    }
}

fn finished(id: &str, event: &Event) -> Record {
    Record::Finished {
        id: id.into(),
        at: 6,
        output: Some(FileObject::new(
            "file-out".into(),
            "out.jsonl".into(),
            PURPOSE_OUTPUT,
            10,
        )),
        error: None,
        unrun: 0,
        event: event.clone(),
        urls: vec!["http://a".into(), "http://b".into()],
    }
}

#[test]
fn a_batch_runs_its_course_and_owes_one_delivery_per_url() {
    let mut state = State::default();
    assert!(state.apply(&file("file-1")));
    assert!(state.apply(&batch("b", 2)));
    assert!(state.apply(&Record::Started {
        id: "b".into(),
        at: 1
    }));
    assert!(state.apply(&chunk("b", 0, "x")));
    // Not every chunk is done: it cannot complete yet.
    assert!(!state.apply(&finalizing("b", BatchStatus::Completed)));
    assert!(state.apply(&chunk("b", 1, "y")));
    assert!(state.file_in_use("file-1"));
    assert!(state.apply(&finalizing("b", BatchStatus::Completed)));
    let event = Event::new("batch.completed", "b", 6);
    assert!(state.apply(&finished("b", &event)));
    let b = &state.batch("b").unwrap().batch;
    assert_eq!(b.status, BatchStatus::Completed);
    assert_eq!(
        (b.request_counts.completed, b.request_counts.failed),
        (2, 2)
    );
    assert_eq!(b.usage.input_tokens, 10);
    assert_eq!(b.output_file_id.as_deref(), Some("file-out"));
    assert!(state.file("file-out").is_some());
    assert!(!state.file_in_use("file-1"));
    assert_eq!(state.owed().count(), 2);
    assert!(state.apply(&Record::Delivered {
        event: event.id.clone(),
        url: "http://a".into(),
        delivered: true
    }));
    assert_eq!(state.owed().count(), 1);
    assert_eq!(state.counts()["completed"], 1);
}

#[test]
fn the_first_record_wins_every_race() {
    let mut state = State::default();
    state.apply(&batch("b", 1));
    // Two replicas pin different versions, commit the same chunk, and finish with two events.
    assert!(state.apply(&Record::Pinned {
        id: "b".into(),
        model: "m@1".into()
    }));
    assert!(!state.apply(&Record::Pinned {
        id: "b".into(),
        model: "m@2".into()
    }));
    assert!(state.apply(&chunk("b", 0, "first")));
    assert!(!state.apply(&chunk("b", 0, "second")));
    assert_eq!(state.batch("b").unwrap().done[&0].attempt, "first");
    assert_eq!(state.batch("b").unwrap().batch.request_counts.completed, 1);
    state.apply(&finalizing("b", BatchStatus::Completed));
    let (one, two) = (
        Event::new("batch.completed", "b", 6),
        Event::new("batch.completed", "b", 6),
    );
    assert!(state.apply(&finished("b", &one)));
    assert!(!state.apply(&finished("b", &two)));
    let b = state.batch("b").unwrap();
    assert_eq!(b.event.as_ref().unwrap().id, one.id);
    assert_eq!(b.batch.model.as_deref(), Some("m@1"));
    assert!(state.owed().all(|d| d.event == one.id));
}

#[test]
fn no_chunk_is_accepted_once_finalizing() {
    let mut state = State::default();
    state.apply(&batch("b", 3));
    state.apply(&chunk("b", 0, "x"));
    assert!(state.apply(&Record::Cancelling {
        id: "b".into(),
        at: 2
    }));
    // A chunk in flight when the cancel came still lands ...
    assert!(state.apply(&chunk("b", 1, "y")));
    // ... until the batch finalizes; a cancel of a cancelling batch is refused.
    assert!(!state.apply(&Record::Cancelling {
        id: "b".into(),
        at: 3
    }));
    assert!(!state.apply(&finalizing("b", BatchStatus::Completed)));
    assert!(state.apply(&finalizing("b", BatchStatus::Cancelled)));
    assert!(!state.apply(&chunk("b", 2, "z")));
    assert_eq!(state.batch("b").unwrap().done.len(), 2);
    assert_eq!(
        state.batch("b").unwrap().batch.status,
        BatchStatus::Finalizing
    );
}

#[test]
fn pages_run_newest_first_after_a_cursor() {
    let mut state = State::default();
    for id in ["a", "b", "c", "d"] {
        state.apply(&batch(id, 1));
    }
    let ids = |page: Vec<Batch>| page.into_iter().map(|b| b.id).collect::<Vec<_>>();
    let (first, more) = state.batches_page(None, 2);
    assert_eq!(
        (ids(first), more),
        (vec!["d".to_string(), "c".into()], true)
    );
    let (next, more) = state.batches_page(Some("c"), 2);
    assert_eq!(
        (ids(next), more),
        (vec!["b".to_string(), "a".into()], false)
    );
    assert!(state.batches_page(Some("zz"), 2).0.is_empty());
}
