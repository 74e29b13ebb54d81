//! Black-box tests of the gateway duties: API keys, per-key rate limits, the response cache.

mod rotation;

use std::io::Write;

use crate::common::{spawn_tiny_with, vectors, TestServer};
use serde_json::{json, Value};

fn key_file() -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(file, "# test keys\nalice:alice-secret\nbob:bob-secret").unwrap();
    file
}

async fn infer_as(server: &TestServer, key: Option<&str>) -> reqwest::Response {
    let mut call = server
        .client
        .post(server.url("/infer"))
        .json(&json!({"inputs": "hello"}));
    if let Some(key) = key {
        call = call.bearer_auth(key);
    }
    call.send().await.unwrap()
}

#[tokio::test]
async fn api_keys_guard_api_routes_but_not_probes_or_metrics() {
    let keys = key_file();
    let server = spawn_tiny_with(&["--api-key-file", keys.path().to_str().unwrap()]).await;

    let missing = infer_as(&server, None).await;
    assert_eq!(missing.status(), 401);
    assert_eq!(missing.headers()["www-authenticate"], "Bearer");
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["code"], "unauthorized", "{body}");

    let wrong = infer_as(&server, Some("nope")).await;
    assert_eq!(wrong.status(), 401);
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(body["code"], "unauthorized", "{body}");

    let right = infer_as(&server, Some("alice-secret")).await;
    assert_eq!(right.status(), 200);
    let by_header = server
        .client
        .post(server.url("/infer"))
        .header("x-api-key", "bob-secret")
        .json(&json!({"inputs": "hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(by_header.status(), 200);

    for path in ["/livez", "/readyz", "/health", "/metrics"] {
        let r = server.client.get(server.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path} must stay open");
    }
}

#[tokio::test]
async fn rate_limit_refuses_after_the_burst_per_key() {
    let keys = key_file();
    let server = spawn_tiny_with(&[
        "--api-key-file",
        keys.path().to_str().unwrap(),
        // One token per 1000 s: the burst is all a key gets during the test.
        "--rate-limit",
        "0.001",
        "--rate-limit-burst",
        "2",
    ])
    .await;
    for _ in 0..2 {
        assert_eq!(infer_as(&server, Some("alice-secret")).await.status(), 200);
    }
    let limited = infer_as(&server, Some("alice-secret")).await;
    assert_eq!(limited.status(), 429);
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1, "Retry-After {retry_after}");
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["code"], "rate_limited", "{body}");

    // Another key has its own bucket; a bad key is refused before it can take tokens.
    assert_eq!(infer_as(&server, Some("bob-secret")).await.status(), 200);
    assert_eq!(infer_as(&server, Some("wrong")).await.status(), 401);
    assert_eq!(infer_as(&server, Some("bob-secret")).await.status(), 200);
    assert_eq!(infer_as(&server, Some("bob-secret")).await.status(), 429);

    assert_eq!(
        server
            .metric("inferd_rate_limited_total", &["key=\"alice\""])
            .await,
        1.0
    );
    assert_eq!(
        server
            .metric("inferd_errors_total", &["code=\"rate_limited\""])
            .await,
        2.0
    );
}

#[tokio::test]
async fn without_keys_the_rate_limit_is_one_shared_bucket() {
    let server = spawn_tiny_with(&["--rate-limit", "0.001", "--rate-limit-burst", "1"]).await;
    assert_eq!(infer_as(&server, None).await.status(), 200);
    assert_eq!(infer_as(&server, None).await.status(), 429);
    // Probes are never limited.
    let (status, _) = server.get_json("/readyz").await;
    assert_eq!(status, 200);
    assert_eq!(
        server
            .metric("inferd_rate_limited_total", &["key=\"anonymous\""])
            .await,
        1.0
    );
}

#[tokio::test]
async fn cache_answers_repeats_with_identical_vectors() {
    let server = spawn_tiny_with(&["--cache-capacity", "100"]).await;
    let hits = || server.metric("inferd_cache_hits_total", &[]);
    let misses = || server.metric("inferd_cache_misses_total", &[]);
    assert_eq!(hits().await, 0.0);

    let (status, first) = server.infer(json!({"inputs": "hello world"})).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(misses().await, 1.0);
    let (status, second) = server.infer(json!({"inputs": "hello world"})).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(hits().await, 1.0);
    assert_eq!(vectors(&first), vectors(&second), "bit-identical");
    assert_eq!(second["model"], first["model"]);

    // Other options are another key.
    let (_, raw) = server
        .infer(json!({"inputs": "hello world", "normalize": false}))
        .await;
    assert_eq!(misses().await, 2.0);
    assert_ne!(vectors(&raw), vectors(&first));

    // A batch mixing hits and misses keeps its order.
    let (_, mixed) = server
        .infer(json!({"inputs": ["a b", "hello world"]}))
        .await;
    assert_eq!(hits().await, 2.0);
    assert_eq!(misses().await, 3.0);
    assert_eq!(vectors(&mixed)[1], vectors(&first)[0]);
    assert_eq!(server.metric("inferd_cache_entries", &[]).await, 3.0);

    // With the cache on, a too-long input is still reported at its own index, even when the
    // inputs before it were answered from the cache.
    let (status, _) = server
        .infer(json!({"inputs": "hello world", "truncate": false}))
        .await;
    assert_eq!(status, 200);
    let long = "word ".repeat(40);
    let (status, body) = server
        .infer(json!({"inputs": ["hello world", long], "truncate": false}))
        .await;
    assert_eq!(status, 413, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("input 1"),
        "{body}"
    );
}
