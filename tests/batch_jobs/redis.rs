//! Two replicas on one real Redis and one shared state dir: either takes chunks, a replica
//! killed mid-batch has its claimed chunks reclaimed by the other, and every request is
//! answered exactly once; the batch's event is delivered once per id.

use std::collections::BTreeSet;

use serde_json::json;

use super::*;
use crate::common::{
    redis::RedisServer,
    webhooks::{self, Answer, Receiver},
};

#[tokio::test]
async fn a_replica_killed_mid_batch_leaves_its_chunks_to_the_other() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let hooks = Receiver::start(Answer::Ok).await;
    let secret = webhooks::secret_file(dir.path());
    let (url, redis_url) = (hooks.url(), redis.url());
    // Each replica keeps its own state dir; batch files live on the volume they share.
    let volume = dir.path().join("shared-batches");
    let shared = [
        "--jobs-redis",
        &redis_url,
        "--batch-dir",
        volume.to_str().unwrap(),
        "--jobs-claim-timeout",
        "2s",
        "--batch-chunk-requests",
        "5",
        "--batch-workers",
        "2",
        "--webhook-url",
        &url,
        "--webhook-secret-file",
        secret.to_str().unwrap(),
    ];
    // Replica a is slow, so whenever it dies it holds a chunk mid-run; b is slow enough that
    // the batch outlasts a's first chunk by far.
    let with_delay = |delay: &'static str| [&shared[..], &["--debug-batch-delay", delay]].concat();
    let (slow, args) = (with_delay("400ms"), with_delay("100ms"));
    let replica = |name: &str, args: &[&str]| {
        let mut server = spawn_with(dir.path(), &dir.path().join(name), args);
        async move {
            server.wait_ready().await;
            server
        }
    };
    let mut a = replica("a", &slow).await;
    let b = replica("b", &args).await;
    let total = 600;
    let created = submit(&a, &lines(total)).await;
    let id = created["id"].as_str().unwrap().to_string();
    // The other replica sees the batch at once (it reads the journal both append to).
    assert_eq!(batch(&b, &id).await["request_counts"]["total"], total);
    // Kill a once it has committed a chunk of its own (it then holds the next ones).
    completed_here(&a).await;
    let partway = batch(&b, &id).await;
    assert!(
        !ended(&partway),
        "the batch ended before the kill: {partway}"
    );
    a.sigkill();
    let end = wait_ended(&b, &id).await;
    assert_eq!(end["status"], "completed", "{end}");
    assert_eq!(
        end["request_counts"],
        json!({"total": total, "completed": total, "failed": 0})
    );
    let by_id = answers(&b, &end).await;
    assert_eq!(by_id.len(), total);
    assert!(
        b.logs().contains("reclaimed a task"),
        "the survivor took over a chunk"
    );
    // Both replicas ran chunks before the kill, so neither did it alone.
    let ran_b = b
        .metric("inferd_batch_requests_total", &["outcome=\"completed\""])
        .await;
    assert!(
        ran_b > 0.0 && ran_b < total as f64,
        "replica b ran {ran_b} of {total}"
    );
    // One event id, however many deliveries.
    let deliveries = hooks.wait_for(1).await;
    let ids: BTreeSet<_> = deliveries.iter().map(|d| d.id.clone()).collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert!(deliveries.iter().all(|d| d.signed_with(webhooks::SECRET)));
    // A replica that joins later replays the same state.
    let c = replica("c", &args).await;
    assert_eq!(batch(&c, &id).await["status"], "completed");
    assert_eq!(answers(&c, &end).await.len(), total);
}

/// Waits until `server` has committed a chunk.
async fn completed_here(server: &TestServer) {
    for _ in 0..1200 {
        let ran = server
            .metric("inferd_batch_requests_total", &["outcome=\"completed\""])
            .await;
        if ran > 0.0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the replica never committed a chunk");
}
