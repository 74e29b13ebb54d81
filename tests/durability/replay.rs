//! Replay equals live, as a property: seeded random sequences of admin actions (loads, unloads,
//! canaries, shadows, forced promotions, rollbacks; refused ones included), then a restart by
//! SIGKILL or SIGTERM; the restored deployment must be exactly the one that was live.
//!
//! The boot version (`v1`, from `--model`) is never unloaded here: the command line brings it
//! back on every start, whatever the log says (README, "Reliability").

use serde_json::{json, Value};

use super::stop;
use crate::common::lifecycle::{manifest, start};
use crate::lifecycle::{admin, status};

const VERSIONS: [&str; 4] = ["v1", "v2", "v3", "v4"];
const SEEDS: [u64; 3] = [7, 11, 2026];
const ROUNDS: usize = 3;
const ACTIONS_PER_ROUND: usize = 14;

/// One random admin call: path and body.
fn random_action(rng: &mut fastrand::Rng) -> (&'static str, Value) {
    let any = format!("tiny@{}", VERSIONS[rng.usize(..VERSIONS.len())]);
    let not_boot = format!("tiny@{}", VERSIONS[rng.usize(1..VERSIONS.len())]);
    match rng.u8(..9) {
        0..=1 => ("/admin/load", json!({ "model": not_boot })),
        2 => ("/admin/unload", json!({ "model": not_boot })),
        3 => {
            let weight = [0.0, 0.25, 0.5][rng.usize(..3)];
            ("/admin/canary", json!({"model": any, "weight": weight}))
        }
        4 => ("/admin/shadow", json!({"model": any, "sample_rate": 0.5})),
        5 => ("/admin/shadow/stop", json!({"model": "tiny"})),
        6..=7 => ("/admin/promote", json!({"model": any, "force": true})),
        _ => ("/admin/rollback", json!({"model": "tiny"})),
    }
}

/// The parts of `/admin/status` the audit log must restore.
fn deployment(status: &Value) -> Value {
    let mut versions: Vec<(String, String)> = status["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["version"].to_string(), v["role"].to_string()))
        .collect();
    versions.sort();
    json!({
        "promoted": status["promoted"],
        "canary": [status["canary"]["version"], status["canary"]["weight"]],
        "shadow": [status["shadow"]["version"], status["shadow"]["sample_rate"]],
        "history": status["history"],
        "versions": versions,
    })
}

#[tokio::test]
async fn replayed_state_equals_live_state_for_random_admin_sequences() {
    for seed in SEEDS {
        let mut rng = fastrand::Rng::with_seed(seed);
        let dir = tempfile::tempdir().unwrap();
        let versions: Vec<(&str, u64)> = VERSIONS.iter().zip(1..).map(|(v, s)| (*v, s)).collect();
        manifest(dir.path(), &versions, None);
        let mut server = start(dir.path(), &[]).await;
        let mut done = Vec::new();
        let mut accepted = 0;
        for round in 0..ROUNDS {
            for _ in 0..ACTIONS_PER_ROUND {
                let (path, body) = random_action(&mut rng);
                let (code, _) = admin(&server, path, body.clone()).await;
                assert!(code < 500, "{path} {body} answered {code}");
                accepted += usize::from(code == 200);
                done.push(format!("{code} {path} {body}"));
            }
            let live = deployment(&status(&server).await);
            let how = if round % 2 == 0 { "SIGKILL" } else { "SIGTERM" };
            if round % 2 == 0 {
                server.sigkill();
            } else {
                stop(&mut server).await;
            }
            server = start(dir.path(), &[]).await;
            let replayed = deployment(&status(&server).await);
            assert_eq!(
                replayed,
                live,
                "seed {seed}, round {round}: the state replayed after {how} differs from the \
                 live one; actions so far:\n{}",
                done.join("\n")
            );
        }
        assert!(
            accepted >= ROUNDS * 3,
            "seed {seed}: too few actions took effect"
        );
    }
}
