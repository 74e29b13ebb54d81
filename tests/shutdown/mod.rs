//! Graceful drain: SIGTERM while requests are queued loses none of them; the lame duck says
//! not ready while it still serves; a grace that runs out exits non-zero.

use std::{sync::Arc, time::Duration};

use serde_json::json;

#[tokio::test]
async fn sigterm_drains_queued_work_then_exits() {
    let server = Arc::new(
        crate::common::spawn_tiny_with(&[
            "--debug-batch-delay",
            "100ms",
            "--max-batch-requests",
            "2",
        ])
        .await,
    );
    let n = 10;
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let s = Arc::clone(&server);
            tokio::spawn(async move { s.infer(json!({"inputs": format!("drain me {i}")})).await })
        })
        .collect();
    // Let every request reach the queue (they need ~5 batches × 100 ms to finish).
    tokio::time::sleep(Duration::from_millis(150)).await;
    server.sigterm();
    for h in handles {
        let (status, body) = h.await.unwrap();
        assert_eq!(status, 200, "a queued request was lost in shutdown: {body}");
    }
    // No new connections once draining.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(server
        .client
        .get(server.url("/livez"))
        .send()
        .await
        .is_err());
    let mut server = Arc::into_inner(server).expect("sole owner");
    assert!(
        server.wait_exit(Duration::from_secs(10)).await,
        "non-zero exit"
    );
    assert!(server.logs().contains("drained"), "{}", server.logs());
}

#[tokio::test]
async fn grace_bounds_the_drain() {
    let mut server =
        crate::common::spawn_tiny_with(&["--debug-batch-delay", "5s", "--shutdown-grace", "300ms"])
            .await;
    let s = server.client.clone();
    let url = server.url("/infer");
    let pending =
        tokio::spawn(async move { s.post(url).json(&json!({"inputs": "slow"})).send().await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.sigterm();
    assert!(
        !server.wait_exit(Duration::from_secs(3)).await,
        "a drain cut short by the grace must exit non-zero"
    );
    assert!(server.logs().contains("grace expired"), "{}", server.logs());
    let _ = pending.await;
}

#[tokio::test]
async fn the_lame_duck_says_not_ready_while_it_serves() {
    let mut server = crate::common::spawn_tiny_with(&["--drain-delay", "3s"]).await;
    server.sigterm();
    // The signal lands asynchronously: wait for readiness to turn.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let body = loop {
        let (status, body) = server.get_json("/readyz").await;
        if status == 503 {
            break body;
        }
        assert_eq!(status, 200, "{body}");
        assert!(
            std::time::Instant::now() < deadline,
            "readiness never turned"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(body["code"], "shutting_down", "{body}");
    // Everything else is still served, on new connections too.
    let fresh = reqwest::Client::new();
    let r = fresh
        .post(server.url("/infer"))
        .json(&json!({"inputs": "still served"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the lame duck must keep serving");
    assert!(
        server.wait_exit(Duration::from_secs(30)).await,
        "non-zero exit after a clean drain; logs:\n{}",
        server.logs()
    );
    let logs = server.logs();
    let lame = logs.find("readiness is 503").expect("lame-duck log line");
    let closing = logs.find("closing the listeners").expect("drain log line");
    assert!(lame < closing, "{logs}");
}
