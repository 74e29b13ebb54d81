//! The queue and batcher seen from outside: batching under concurrency, back-pressure,
//! deadlines, dropped clients and a panicking worker. Slowness is injected with the hidden
//! `--debug-batch-delay` flag; no test asserts on wall-clock speed.

use std::time::Duration;

use crate::common::{spawn_tiny_with, vectors};
use futures_like::join_all;
use serde_json::json;

mod futures_like {
    /// Awaits every future concurrently (tokio tasks), keeping order.
    pub async fn join_all<T: Send + 'static>(
        futs: Vec<impl std::future::Future<Output = T> + Send + 'static>,
    ) -> Vec<T> {
        let handles: Vec<_> = futs.into_iter().map(tokio::spawn).collect();
        let mut out = Vec::with_capacity(handles.len());
        for h in handles {
            out.push(h.await.unwrap());
        }
        out
    }
}

#[tokio::test]
async fn concurrent_requests_share_batches() {
    let server = std::sync::Arc::new(spawn_tiny_with(&["--debug-batch-delay", "50ms"]).await);
    let n = 24;
    let reqs = (0..n).map(|i| {
        let s = std::sync::Arc::clone(&server);
        async move {
            s.infer(json!({"inputs": format!("request number {i}")}))
                .await
        }
    });
    let results = join_all(reqs.collect()).await;
    for (status, body) in &results {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(vectors(body).len(), 1);
    }
    let batches = server.metric("inferd_batch_size_count", &[]).await;
    let sequences = server.metric("inferd_batch_size_sum", &[]).await;
    // The warm-up runs outside the worker, so every sequence counted here is one of ours.
    assert_eq!(sequences, n as f64);
    assert!(
        batches < n as f64,
        "{n} concurrent requests ran in {batches} batches"
    );
}

#[tokio::test]
async fn vectors_do_not_depend_on_batch_company() {
    let server = spawn_tiny_with(&[]).await;
    let (_, alone) = server.infer(json!({"inputs": "the quick brown fox"})).await;
    let long = "jumps over the lazy dog again and again";
    let (_, mixed) = server
        .infer(json!({"inputs": [long, "the quick brown fox", "x"]}))
        .await;
    let a = &vectors(&alone)[0];
    let b = &vectors(&mixed)[1];
    assert!(
        crate::common::cosine(a, b) > 0.9999,
        "padding changed the vector"
    );
}

#[tokio::test]
async fn full_queue_answers_503_with_retry_after_at_once() {
    let server = std::sync::Arc::new(
        spawn_tiny_with(&[
            "--max-queue-requests",
            "2",
            "--debug-batch-delay",
            "300ms",
            "--max-batch-requests",
            "1",
        ])
        .await,
    );
    let reqs = (0..8).map(|i| {
        let s = std::sync::Arc::clone(&server);
        async move {
            let r = s
                .client
                .post(s.url("/infer"))
                .json(&json!({"inputs": format!("text {i}")}))
                .send()
                .await
                .unwrap();
            crate::common::status_retry_body(r).await
        }
    });
    let results = join_all(reqs.collect()).await;
    let rejected: Vec<_> = results.iter().filter(|(s, _, _)| *s == 503).collect();
    let ok = results.iter().filter(|(s, _, _)| *s == 200).count();
    assert!(!rejected.is_empty(), "no request was refused");
    assert!(ok >= 2, "admitted requests must still complete");
    assert_eq!(ok + rejected.len(), 8);
    for (_, retry_after, body) in rejected {
        assert_eq!(body["code"], "overloaded");
        assert!(retry_after.is_some(), "503 without Retry-After");
    }
    let overloaded = server
        .metric(
            "inferd_requests_rejected_total",
            &[r#"reason="overloaded""#],
        )
        .await;
    assert!(overloaded >= 1.0);
}

#[tokio::test]
async fn expired_requests_get_504_and_are_not_computed() {
    let server = std::sync::Arc::new(
        spawn_tiny_with(&[
            "--request-timeout",
            "200ms",
            "--debug-batch-delay",
            "400ms",
            "--max-batch-requests",
            "1",
        ])
        .await,
    );
    let reqs = (0..3).map(|i| {
        let s = std::sync::Arc::clone(&server);
        async move { s.infer(json!({"inputs": format!("slow {i}")})).await }
    });
    let results = join_all(reqs.collect()).await;
    for (status, body) in &results {
        assert_eq!(*status, 504, "{body}");
        assert_eq!(body["code"], "deadline_exceeded");
    }
    // The first batch started before its deadline; the ones queued behind it expired unrun.
    tokio::time::sleep(Duration::from_millis(900)).await;
    let rejected = |reason: &'static str| {
        let server = std::sync::Arc::clone(&server);
        async move {
            let label = format!("reason=\"{reason}\"");
            server
                .metric("inferd_requests_rejected_total", &[&label])
                .await
        }
    };
    // Each expired while queued or while the batch ahead ran, so none was computed — and the
    // expiry is counted as such, not as a departed client.
    assert_eq!(rejected("deadline_exceeded").await, 3.0);
    assert_eq!(rejected("client_gone").await, 0.0);
    let computed = server.metric("inferd_batch_size_sum", &[]).await;
    assert_eq!(computed, 0.0, "expired work was computed");
}

#[tokio::test]
async fn a_queue_slot_is_free_once_the_answer_is_handed_back() {
    // 8 clients, each sending its next request as soon as it has its answer, never hold more
    // than 8 slots: a queue of 8 must take them all, every time.
    let (clients, rounds) = (8, 60);
    let server = std::sync::Arc::new(
        spawn_tiny_with(&["--max-queue-requests", "8", "--debug-batch-delay", "2ms"]).await,
    );
    let reqs = (0..clients).map(|c| {
        let s = std::sync::Arc::clone(&server);
        async move {
            let mut statuses = Vec::new();
            for i in 0..rounds {
                let text = format!("client {c} request {i}");
                statuses.push(s.infer(json!({ "inputs": text })).await.0);
            }
            statuses
        }
    });
    let statuses: Vec<u16> = join_all(reqs.collect()).await.concat();
    let refused = statuses.iter().filter(|s| **s == 503).count();
    assert_eq!(
        refused,
        0,
        "{refused} of {} requests refused",
        statuses.len()
    );
    assert!(statuses.iter().all(|s| *s == 200));
    let overloaded = server
        .metric(
            "inferd_requests_rejected_total",
            &[r#"reason="overloaded""#],
        )
        .await;
    assert_eq!(overloaded, 0.0);
    assert_eq!(
        server.metric("inferd_batch_size_sum", &[]).await,
        (clients * rounds) as f64
    );
}

#[tokio::test]
async fn departed_clients_are_not_computed() {
    let server =
        spawn_tiny_with(&["--debug-batch-delay", "300ms", "--max-batch-requests", "1"]).await;
    // Occupy the worker, then send requests whose clients give up quickly.
    let busy = server
        .client
        .post(server.url("/infer"))
        .json(&json!({"inputs": "busy"}))
        .send();
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let give_up = async {
        for i in 0..3 {
            let _ = impatient
                .post(server.url("/infer"))
                .json(&json!({"inputs": format!("gone {i}")}))
                .send()
                .await;
        }
    };
    let (busy, ()) = tokio::join!(busy, give_up);
    assert_eq!(busy.unwrap().status(), 200);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let gone = server
        .metric(
            "inferd_requests_rejected_total",
            &[r#"reason="client_gone""#],
        )
        .await;
    assert!(gone >= 1.0, "requests of departed clients were computed");
    assert!(server.metric("inferd_batch_size_sum", &[]).await < 4.0);
}

#[tokio::test]
async fn a_panicking_batch_fails_alone_and_the_worker_keeps_serving() {
    let server = spawn_tiny_with(&["--debug-panic-on", "poison pill"]).await;
    let (status, body) = server.infer(json!({"inputs": "poison pill"})).await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["code"], "internal_error");
    assert_eq!(body["error"], "internal error", "no internals leak");
    let (status, body) = server
        .infer(json!({"inputs": ["healthy", "requests"]}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        server.metric("inferd_worker_restarts_total", &[]).await,
        1.0
    );
    let (status, _) = server.get_json("/readyz").await;
    assert_eq!(status, 200);
}
