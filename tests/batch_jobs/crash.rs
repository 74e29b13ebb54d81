//! `kill -9` at several points of a batch, restarting on the same state dir each time: the
//! batch resumes, every `custom_id` is answered exactly once, no acknowledged upload is lost,
//! and the webhook announcing the end carries one event id, signed.

use std::time::Duration;

use serde_json::json;

use super::*;
use crate::common::webhooks::{self, Answer, Receiver};

#[tokio::test]
async fn kill_9_at_any_point_and_the_batch_resumes_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let hooks = Receiver::start(Answer::Ok).await;
    let secret = webhooks::secret_file(dir.path());
    let url = hooks.url();
    let args = [
        "--batch-chunk-requests",
        "6",
        "--batch-workers",
        "2",
        "--debug-batch-delay",
        "40ms",
        "--webhook-url",
        &url,
        "--webhook-secret-file",
        secret.to_str().unwrap(),
    ];
    let total = 90;
    let mut server = ready_in(dir.path(), &args).await;
    // An upload acknowledged just before a crash survives it.
    let (status, spare) = upload(&server, &lines(2), "batch").await;
    assert_eq!(status, 200);
    let b = submit(&server, &lines(total)).await;
    let id = b["id"].as_str().unwrap().to_string();
    let mut seen_progress = Vec::new();
    for kill_after in [1, 30, 60] {
        let b = wait_until(&server, &id, |b| done(b) >= kill_after || ended(b)).await;
        seen_progress.push(done(&b));
        server.sigkill();
        server = ready_in(dir.path(), &args).await;
        let after = batch(&server, &id).await;
        assert!(done(&after) >= done(&b), "progress went back: {after}");
    }
    let b = wait_ended(&server, &id).await;
    assert_eq!(b["status"], "completed", "{b}");
    assert_eq!(
        b["request_counts"],
        json!({"total": total, "completed": total, "failed": 0})
    );
    let by_id = answers(&server, &b).await;
    assert_eq!(by_id.len(), total);
    for i in 0..total {
        assert_eq!(by_id[&format!("req-{i}")]["response"]["status_code"], 200);
    }
    let (status, file) = server
        .get_json(&format!("/v1/files/{}", spare["id"].as_str().unwrap()))
        .await;
    assert_eq!(status, 200, "{file}");
    // One event, one id, signed; a crash around delivery may repeat it, never re-id it.
    hooks.wait_for(1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let deliveries: Vec<_> = hooks
        .deliveries()
        .into_iter()
        .filter(|d| d.event()["data"]["id"] == id.as_str())
        .collect();
    assert!(!deliveries.is_empty());
    let ids: std::collections::BTreeSet<_> = deliveries.iter().map(|d| d.id.clone()).collect();
    assert_eq!(ids.len(), 1, "one event id: {ids:?}");
    for d in &deliveries {
        assert!(d.signed_with(webhooks::SECRET), "bad signature: {d:?}");
        let event = d.event();
        assert_eq!(event["type"], "batch.completed");
        assert_eq!(event["object"], "event");
        assert_eq!(event["id"], d.id.as_str());
    }
    // A restart after the end delivers nothing new and keeps the answers.
    server.sigkill();
    let server = ready_in(dir.path(), &args).await;
    assert_eq!(
        answers(&server, &batch(&server, &id).await).await.len(),
        total
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let again: std::collections::BTreeSet<_> =
        hooks.deliveries().into_iter().map(|d| d.id).collect();
    assert_eq!(
        again, ids,
        "no new event after the restart: {seen_progress:?}"
    );
}
