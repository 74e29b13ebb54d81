//! The lifecycle audit log through crashes: a torn last line does not swallow the next admin
//! action, and a damaged line before readable ones refuses the start.

use std::{io::Write, path::Path, time::Duration};

use serde_json::json;

use crate::{
    common::{
        lifecycle::{manifest, start, TOKEN},
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

/// The audit log's disk fills up under a live deployment: admin actions are then refused
/// `503 storage_unavailable` and leave routing exactly as it was (before this fix they answered
/// 200 and took effect unrecorded, so a restart silently undid them). Once there is room again,
/// the next action is recorded and survives a SIGKILL.
///
/// tmpfs allocates whole pages, so an append that fits in the log's last page still succeeds on
/// a full disk: the same canary is set again (no change) until one is refused, which leaves less
/// room than a canary event. The actions checked after it write events at least that long
/// (`unload`'s is shorter, so it is not among them; it records before it removes anything).
#[tokio::test]
async fn an_admin_action_the_audit_log_cannot_take_is_refused_and_undone() {
    let Some(disk) = super::disk_full::Tmpfs::mount("1m") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    manifest(dir.path(), &[("v1", 1), ("v2", 2), ("v3", 3)], None);
    std::os::unix::fs::symlink(disk.path(), dir.path().join("state")).unwrap();
    let mut server = start(dir.path(), &[]).await;
    let (code, body) = admin(&server, "/admin/load", json!({"model": "tiny@v2"})).await;
    assert_eq!(code, 200, "{body}");
    canary_v2(&server).await;
    let before = routes(&status(&server).await);

    let filler = super::disk_full::fill(disk.path());
    let same_canary = json!({"model": "tiny@v2", "weight": 0.3});
    let mut refused = None;
    for _ in 0..64 {
        let (code, answer) = admin(&server, "/admin/canary", same_canary.clone()).await;
        if code != 200 {
            refused = Some((code, answer));
            break;
        }
    }
    let (code, answer) = refused.expect("a full disk never refused an audit event");
    assert_eq!(
        (code, &answer["code"]),
        (503, &json!("storage_unavailable")),
        "{answer}"
    );

    let refused = [
        ("/admin/promote", json!({"model": "tiny@v2", "force": true})),
        ("/admin/canary", json!({"model": "tiny@v2", "weight": 0.9})),
        (
            "/admin/shadow",
            json!({"model": "tiny@v2", "sample_rate": 1.0}),
        ),
        ("/admin/load", json!({"model": "tiny@v3"})),
    ];
    for (path, body) in refused {
        let (code, answer) = admin(&server, path, body.clone()).await;
        assert_eq!(code, 503, "{path} {body}: {answer}");
        assert_eq!(answer["code"], "storage_unavailable", "{answer}");
        let now = routes(&status(&server).await);
        assert_eq!(now, before, "{path} changed the deployment unrecorded");
    }
    let (code, _) = server.admin(Some(TOKEN), "/admin/status", None).await;
    assert_eq!(code, 200);

    std::fs::remove_file(filler).unwrap();
    let (code, body) = admin(
        &server,
        "/admin/promote",
        json!({"model": "tiny@v2", "force": true}),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let live = status(&server).await;
    assert_eq!(live["promoted"], "v2", "{live}");
    server.sigkill();

    let server = start(dir.path(), &[]).await;
    let replayed = routes(&status(&server).await);
    assert_eq!(
        replayed,
        routes(&live),
        "replay differs from the live state"
    );
    assert_eq!(
        replayed["versions"],
        json!([["v1", "standby"], ["v2", "promoted"]])
    );
}

/// What routing a deployment's status shows: versions and roles, canary, shadow, history.
fn routes(s: &serde_json::Value) -> serde_json::Value {
    let mut versions: Vec<(String, String)> = s["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["version"].as_str().unwrap().into(),
                v["role"].as_str().unwrap().into(),
            )
        })
        .collect();
    versions.sort();
    json!({
        "promoted": s["promoted"],
        "canary": [s["canary"]["version"], s["canary"]["weight"]],
        "shadow": [s["shadow"]["version"], s["shadow"]["sample_rate"]],
        "history": s["history"],
        "versions": versions,
    })
}
