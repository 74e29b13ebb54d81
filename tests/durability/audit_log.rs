//! The lifecycle audit log through crashes: a torn last line does not swallow the next admin
//! action, and a damaged line before readable ones refuses the start.

use std::{io::Write, path::Path, time::Duration};

use serde_json::json;

use crate::{
    common::{
        lifecycle::{manifest, start},
        TestServer,
    },
    lifecycle::{admin, status},
};

fn audit_log(dir: &Path) -> std::path::PathBuf {
    dir.join("state/lifecycle.jsonl")
}

/// Sends 30 % of traffic to `tiny@v2`; must be accepted.
async fn canary_v2(server: &TestServer) {
    let body = json!({"model": "tiny@v2", "weight": 0.3});
    let (code, body) = admin(server, "/admin/canary", body).await;
    assert_eq!(code, 200, "{body}");
}

#[tokio::test]
async fn the_admin_action_after_a_torn_line_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    manifest(dir.path(), &[("v1", 1), ("v2", 2)], None);
    let mut server = start(dir.path(), &[]).await;
    let (code, body) = admin(&server, "/admin/load", json!({"model": "tiny@v2"})).await;
    assert_eq!(code, 200, "{body}");
    server.sigkill();
    // A crash in the middle of the next append left half a line.
    std::fs::OpenOptions::new()
        .append(true)
        .open(audit_log(dir.path()))
        .unwrap()
        .write_all(br#"{"ts":"2026-11-30T10:00:00.000Z","actor":"ops","act"#)
        .unwrap();

    let mut server = start(dir.path(), &[]).await;
    canary_v2(&server).await;
    server.sigkill();

    let server = start(dir.path(), &[]).await;
    let s = status(&server).await;
    assert_eq!(
        s["canary"]["version"], "v2",
        "the canary was swallowed: {s}"
    );
    assert_eq!(s["canary"]["weight"], 0.3);
    let log = std::fs::read_to_string(audit_log(dir.path())).unwrap();
    assert_eq!(log.lines().count(), 2, "{log}");
    assert!(log.ends_with('\n'));
}

#[tokio::test]
async fn a_damaged_line_before_readable_ones_refuses_the_start() {
    let dir = tempfile::tempdir().unwrap();
    manifest(dir.path(), &[("v1", 1), ("v2", 2)], None);
    let mut server = start(dir.path(), &[]).await;
    admin(&server, "/admin/load", json!({"model": "tiny@v2"})).await;
    canary_v2(&server).await;
    server.sigkill();

    let path = audit_log(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    let brace = bytes.iter().position(|&b| b == b'{').unwrap();
    bytes[brace] = b'#'; // the first line is no longer JSON; the second still is
    std::fs::write(&path, &bytes).unwrap();

    let mut refused = crate::common::spawn(
        &dir.path().join("tiny.toml"),
        &[
            "--admin-listen",
            "127.0.0.1:0",
            "--admin-token-file",
            dir.path().join("tokens").to_str().unwrap(),
            "--state-dir",
            dir.path().join("state").to_str().unwrap(),
        ],
    );
    assert!(
        !refused.wait_exit(Duration::from_secs(60)).await,
        "started on a damaged audit log"
    );
    let logs = refused.logs();
    assert!(
        logs.contains("lifecycle.jsonl") && logs.contains("byte 0"),
        "the refusal must name the file and offset:\n{logs}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "the log was changed");
}
