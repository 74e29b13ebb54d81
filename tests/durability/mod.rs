//! Nothing acknowledged is ever lost: a full disk under live item writes, a damaged write-ahead
//! log, a torn or damaged audit log, and replay of random admin sequences, each seen from
//! outside through restarts by SIGKILL and SIGTERM.

mod audit_log;
mod disk_full;
mod replay;
mod wal_corruption;

use std::{collections::BTreeMap, path::Path, time::Duration};

use serde_json::{json, Value};

use crate::{
    common::{spawn, status_retry_body, TestServer},
    recommend::{Fixture, KEY},
};

/// What every id must look like after a restart: `Some(n)` acknowledged with metadata `n`,
/// `None` refused (never applied).
type Expected = BTreeMap<String, Option<u64>>;

/// Serves the index in `index_dir` (a copy of the fixture's, possibly on another filesystem).
async fn serve_index(fx: &Fixture, index_dir: &Path) -> TestServer {
    let mut server = spawn_index(fx, index_dir);
    server.wait_ready().await;
    server
}

fn spawn_index(fx: &Fixture, index_dir: &Path) -> TestServer {
    let index = format!("catalog={}", index_dir.display());
    let keys = fx.dir.path().join("keys");
    spawn(
        fx.model.path(),
        &["--index", &index, "--api-key-file", keys.to_str().unwrap()],
    )
}

/// `PUT /items/{id}` with metadata `{"n": n}` and some padding; returns status, `Retry-After`
/// and body.
async fn put(server: &TestServer, id: &str, n: u64) -> (u16, Option<String>, Value) {
    let body = json!({"text": format!("item {id}"), "metadata": {"n": n, "pad": "x".repeat(300)}});
    let r = server
        .client
        .put(server.url(&format!("/items/{id}")))
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    status_retry_body(r).await
}

/// Writes `ids`, which must all be acknowledged, into `expected`.
async fn put_all(server: &TestServer, expected: &mut Expected, ids: impl Iterator<Item = String>) {
    for (n, id) in ids.enumerate() {
        let (status, _, body) = put(server, &id, n as u64).await;
        assert!(matches!(status, 200 | 201), "{id}: {status} {body}");
        expected.insert(id, Some(n as u64));
    }
}

/// Every acknowledged write is there with its metadata; every refused one is absent.
async fn assert_state(server: &TestServer, expected: &Expected, after: &str) {
    for (id, n) in expected {
        let r = server
            .client
            .get(server.url(&format!("/items/{id}")))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        match n {
            Some(n) => {
                assert_eq!(
                    status, 200,
                    "acknowledged write of {id} lost after {after}: {body}"
                );
                assert_eq!(body["metadata"]["n"], json!(n), "{id} after {after}");
            }
            None => assert_eq!(status, 404, "refused write of {id} applied after {after}"),
        }
    }
}

/// SIGTERM, then waits for a clean exit.
async fn stop(server: &mut TestServer) {
    server.sigterm();
    assert!(
        server.wait_exit(Duration::from_secs(60)).await,
        "unclean exit; logs:\n{}",
        server.logs()
    );
}
