//! The shared PostgreSQL + pgvector backend from the outside: one real PostgreSQL (pgserver's
//! binaries, see `common::pg`), an index built into it with the CLI, two inferd replicas
//! serving it. Writes on one replica are seen by the other; a model mismatch is refused;
//! PostgreSQL stopping mid-test turns `/recommend` into 503 `index_unavailable` while `/infer`
//! keeps answering, and it recovers when PostgreSQL returns.

use std::{path::Path, time::Duration};

use serde_json::{json, Value};

use crate::{
    common::{pg::PgServer, spawn, tiny_model_dir, TestServer},
    recommend::{
        bad_queries, build_index, call, ids, item_history_and_filter_queries, recommend,
        write_catalog, KEY,
    },
};

struct Shared {
    pg: PgServer,
    model: tempfile::TempDir,
    dir: tempfile::TempDir,
}

impl Shared {
    /// A PostgreSQL with the 42-item test catalog built into it as index `catalog`.
    fn new() -> Self {
        let pg = PgServer::start();
        let model = tiny_model_dir();
        let dir = tempfile::tempdir().unwrap();
        write_catalog(&dir.path().join("catalog.jsonl"));
        std::fs::write(dir.path().join("keys"), format!("tester:{KEY}\n")).unwrap();
        let out = build_index(
            model.path(),
            &dir.path().join("catalog.jsonl"),
            Path::new(&pg.url()),
            &["--name", "catalog", "--search", "hnsw"],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("42 items"));
        Self { pg, model, dir }
    }

    async fn replica(&self, extra: &[&str]) -> TestServer {
        let index = format!("catalog={}", self.pg.url());
        let keys = self.dir.path().join("keys");
        let mut args = vec!["--index", &index, "--api-key-file", keys.to_str().unwrap()];
        args.extend_from_slice(extra);
        let mut server = spawn(self.model.path(), &args);
        server.wait_ready().await;
        server
    }
}

#[tokio::test]
async fn two_replicas_share_one_catalog() {
    let shared = Shared::new();
    let a = shared.replica(&[]).await;
    let b = shared.replica(&["--recommend-max-k", "50"]).await;

    let (status, body) = call(&a, reqwest::Method::GET, "/indexes", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["indexes"][0]["backend"], "postgres");
    assert_eq!(body["indexes"][0]["items"], 42);

    // A PUT on A is found by a text query on B.
    let put = json!({"text": "quantum chess engine", "metadata": {"section": "science"}});
    let (status, body) = call(&a, reqwest::Method::PUT, "/items/new-1", Some(put.clone())).await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = call(&b, reqwest::Method::PUT, "/items/new-1", Some(put)).await;
    assert_eq!(status, 200, "replaced, not created");
    let (status, body) = recommend(&b, json!({"text": "quantum chess engine", "k": 1})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ids(&body), ["new-1"]);
    assert!((body["items"][0]["score"].as_f64().unwrap() - 1.0).abs() < 1e-4);
    let (_, body) = recommend(&b, json!({"text": "x", "filter": {"section": "science"}})).await;
    assert_eq!(ids(&body), ["new-1"]);
    let (status, body) = call(&b, reqwest::Method::GET, "/items/new-1", None).await;
    assert_eq!(
        (status, &body["metadata"]["section"]),
        (200, &json!("science"))
    );

    // A DELETE on B is a 404 on A.
    let (status, _) = call(&b, reqwest::Method::DELETE, "/items/new-1", None).await;
    assert_eq!(status, 200);
    let (status, body) = call(&a, reqwest::Method::GET, "/items/new-1", None).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("unknown_item")));
    let (status, _) = call(&a, reqwest::Method::DELETE, "/items/new-1", None).await;
    assert_eq!(status, 404);

    // Item, history, filter and exclusion queries answer as on a directory.
    item_history_and_filter_queries(&a).await;
    let (_, exact) = recommend(
        &a,
        json!({"text": "rust web server", "k": 5, "exact": true}),
    )
    .await;
    let (status, wide) = recommend(
        &a,
        json!({"text": "rust web server", "k": 5, "ef_search": 2048}),
    )
    .await;
    assert_eq!(status, 200, "{wide}");
    assert_eq!(scores(&exact), scores(&wide));

    // Bad input is refused exactly as by the embedded index.
    for body in bad_queries() {
        let (status, reply) = recommend(&b, body.clone()).await;
        assert_eq!(
            (status, reply["code"].as_str()),
            (422, Some("invalid_input")),
            "{body}"
        );
    }
    let (status, reply) = recommend(&b, json!({"history": ["item-1", "gone"]})).await;
    assert_eq!(
        (status, reply["code"].as_str()),
        (404, Some("unknown_item"))
    );
    let (status, reply) = call(&a, reqwest::Method::POST, "/indexes/catalog/compact", None).await;
    assert_eq!((status, reply["code"].as_str()), (409, Some("conflict")));
}

fn scores(body: &Value) -> Vec<i64> {
    body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {body}"))
        .iter()
        .map(|i| (i["score"].as_f64().unwrap() * 1e4).round() as i64)
        .collect()
}

#[tokio::test]
async fn postgres_down_is_503_and_recovers() {
    let shared = Shared::new();
    let server = shared.replica(&["--index-timeout", "1s"]).await;
    let required = shared.replica(&["--index-required"]).await;
    let (status, _) = recommend(&server, json!({"text": "chess engine"})).await;
    assert_eq!(status, 200);

    shared.pg.stop();
    let r = server
        .client
        .post(server.url("/recommend"))
        .bearer_auth(KEY)
        .json(&json!({"text": "chess engine"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "index_unavailable", "{body}");
    let (status, _) = call(
        &server,
        reqwest::Method::PUT,
        "/items/x",
        Some(json!({"text": "x"})),
    )
    .await;
    assert_eq!(status, 503);
    // Embedding does not depend on the index.
    let (status, _) = call(
        &server,
        reqwest::Method::POST,
        "/infer",
        Some(json!({"inputs": "still here"})),
    )
    .await;
    assert_eq!(status, 200);
    // Readiness follows the database only with --index-required.
    assert_eq!(ready_within(&required, 503).await, 503);
    assert_eq!(server.get_json("/readyz").await.0, 200);

    shared.pg.resume();
    assert_eq!(ready_within(&required, 200).await, 200);
    let mut status = 0;
    for _ in 0..100 {
        status = recommend(&server, json!({"text": "chess engine"})).await.0;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200, "no recovery after PostgreSQL returned");
}

/// Polls `/readyz` until it answers `want` (the monitor pings every second); returns the last.
async fn ready_within(server: &TestServer, want: u16) -> u16 {
    let mut last = 0;
    for _ in 0..100 {
        last = server.get_json("/readyz").await.0;
        if last == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    last
}

#[tokio::test]
async fn an_index_from_other_weights_is_refused() {
    let shared = Shared::new();
    let other = tiny_model_dir();
    let index = format!("catalog={}", shared.pg.url());
    let mut server = spawn(other.path(), &["--index", &index]);
    assert!(!server.wait_exit(Duration::from_secs(60)).await);
    assert!(server.logs().contains("must not mix"), "{}", server.logs());
    let missing = format!("nope={}", shared.pg.url());
    let mut server = spawn(shared.model.path(), &["--index", &missing]);
    assert!(!server.wait_exit(Duration::from_secs(60)).await);
    assert!(
        server.logs().contains("no index \"nope\""),
        "{}",
        server.logs()
    );
    // The URL's password never reaches the logs.
    let secret = "x=postgresql://postgres:hunter2@127.0.0.1:1/postgres".to_string();
    let mut server = spawn(
        shared.model.path(),
        &["--index", &secret, "--index-timeout", "1s"],
    );
    assert!(!server.wait_exit(Duration::from_secs(60)).await);
    assert!(!server.logs().contains("hunter2"), "{}", server.logs());
}

/// Real MiniLM vectors of the 2,000-item catalog subset in pgvector's HNSW: its answers hold
/// ≥ 90% of the exact top 10 (PostgreSQL's own sequential scan over the same f32 vectors,
/// which are sentence-transformers' to cosine ≥ 0.999, see `real_model`).
#[tokio::test]
async fn pgvector_recall_on_real_vectors() {
    let pg = PgServer::start();
    let model = crate::common::real_model_dir();
    let catalog = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/catalog-2k.jsonl.gz");
    let out = build_index(
        &model,
        &catalog,
        Path::new(&pg.url()),
        &["--name", "real", "--search", "hnsw"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let index = format!("real={}", pg.url());
    let mut server = spawn(&model, &["--index", &index]);
    server.wait_ready().await;
    let items = crate::common::catalog_items(&catalog);
    let (mut found, mut wanted) = (0, 0);
    for q in (0..items.len()).step_by(20) {
        let query = json!({"item_id": items[q].0});
        let (status, approx) = server.post_json("/recommend", query.clone()).await;
        assert_eq!(status, 200, "{approx}");
        let mut exact_query = query;
        exact_query["exact"] = json!(true);
        let (_, exact) = server.post_json("/recommend", exact_query).await;
        let got = ids(&approx);
        let want = ids(&exact);
        assert_eq!(want.len(), 10);
        wanted += want.len();
        found += want.iter().filter(|id| got.contains(id)).count();
    }
    let recall = found as f64 / wanted as f64;
    assert!(recall >= 0.9, "recall@10 {recall}");
}
