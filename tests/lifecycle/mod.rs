//! Model lifecycle from outside: admin auth, loading versions, hash pins, canary stickiness,
//! shadow agreement, promotion gate, hot swap under load, automatic rollback, restart replay.

use std::{
    process::Command,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use crate::common::{cosine, vectors, TestServer};
use serde_json::{json, Value};

use crate::common::lifecycle::{infer_as, manifest, start, TOKEN};

pub(crate) async fn admin(server: &TestServer, path: &str, body: Value) -> (u16, Value) {
    server.admin(Some(TOKEN), path, Some(body)).await
}

pub(crate) async fn status(server: &TestServer) -> Value {
    let (code, body) = server.admin(Some(TOKEN), "/admin/status", None).await;
    assert_eq!(code, 200, "{body}");
    body["models"][0].clone()
}

/// The admin status of the first model, and `version`'s shadow agreement in it (null when none).
pub(crate) async fn agreement_of(server: &TestServer, version: &str) -> (Value, Value) {
    let s = status(server).await;
    let agreement = s["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["version"] == version)
        .map(|v| v["agreement"].clone())
        .unwrap_or(Value::Null);
    (s, agreement)
}

/// Promotes `model` past the agreement gate; the admin API must accept it.
async fn promote_forced(server: &TestServer, model: &str) {
    let (code, body) = admin(
        server,
        "/admin/promote",
        json!({"model": model, "force": true}),
    )
    .await;
    assert_eq!(code, 200, "{body}");
}

/// Four distinct short texts, the `i`-th such batch.
fn sample_texts(i: usize) -> Vec<String> {
    (0..4)
        .map(|j| {
            format!(
                "sample {} about {}",
                i * 4 + j,
                ["cats", "rust", "rain", "maps"][j]
            )
        })
        .collect()
}

/// Sends distinct texts (with the `/infer` fields in `extra`) until the shadow window of
/// `version` holds `n` samples.
async fn shadow_samples(server: &TestServer, version: &str, n: u64, extra: Value) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut i = 0;
    loop {
        let mut body = extra.clone();
        body["inputs"] = json!(sample_texts(i));
        i += 1;
        let (code, answer) = server.infer(body).await;
        assert_eq!(code, 200, "{answer}");
        let (s, agreement) = agreement_of(server, version).await;
        if agreement["samples"].as_u64().unwrap_or(0) >= n {
            return agreement;
        }
        assert!(Instant::now() < deadline, "no shadow samples: {s}");
    }
}

#[tokio::test]
async fn admin_needs_a_token_and_a_public_bind_needs_a_token_file() {
    let dir = tempfile::tempdir().unwrap();
    manifest(dir.path(), &[("v1", 1)], None);
    let server = start(dir.path(), &[]).await;
    let (code, body) = server.admin(None, "/admin/status", None).await;
    assert_eq!(code, 401, "{body}");
    assert_eq!(body["code"], "unauthorized");
    let (code, _) = server.admin(Some("wrong"), "/admin/status", None).await;
    assert_eq!(code, 401);
    assert_eq!(status(&server).await["promoted"], "v1");

    let out = Command::new(crate::common::inferd_bin())
        .args(["serve", "--model"])
        .arg(dir.path().join("tiny.toml"))
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("without --admin-token-file"));
}

#[tokio::test]
async fn versions_load_side_by_side_and_a_hash_mismatch_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    manifest(dir.path(), &[("v1", 1), ("v2", 2), ("v3", 3)], Some("v3"));
    let server = start(dir.path(), &[]).await;

    let (code, body) = admin(
        &server,
        "/admin/load",
        json!({"model": "tiny", "version": "v3"}),
    )
    .await;
    assert_eq!(code, 422, "{body}");
    assert_eq!(body["code"], "load_failed");
    assert!(
        body["error"].as_str().unwrap().contains("sha256 mismatch"),
        "{body}"
    );

    let (code, body) = admin(&server, "/admin/load", json!({"model": "tiny@v2"})).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["role"], "standby");
    let (code, _) = admin(&server, "/admin/load", json!({"model": "tiny@v2"})).await;
    assert_eq!(code, 409);

    assert_eq!(infer_as(&server, "k", "hello").await, (200, "v1".into()));
    let (code, body) = server
        .infer(json!({"inputs": "hello", "model": "tiny@v2"}))
        .await;
    assert_eq!((code, body["version"].as_str()), (200, Some("v2")));

    let (_, info) = server.get_json("/info").await;
    let roles: Vec<(String, String)> = info["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["version"].as_str().unwrap().into(),
                m["role"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        roles,
        [
            ("v1".into(), "promoted".into()),
            ("v2".into(), "standby".into())
        ]
    );

    let out = Command::new(crate::common::inferd_bin())
        .args(["models", "verify", "--manifest-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("ok      tiny@v1") && text.contains("FAILED  tiny@v3"),
        "{text}"
    );
}

#[tokio::test]
async fn canary_is_sticky_per_route_key() {
    let dir = tempfile::tempdir().unwrap();
    manifest(dir.path(), &[("v1", 1), ("v2", 2)], None);
    let server = start(dir.path(), &[]).await;
    admin(&server, "/admin/load", json!({"model": "tiny@v2"})).await;
    let (code, body) = admin(
        &server,
        "/admin/canary",
        json!({"model": "tiny@v2", "weight": 0.3}),
    )
    .await;
    assert_eq!(code, 200, "{body}");

    let mut on_canary = 0;
    for user in 0..100 {
        let key = format!("user-{user}");
        let (_, first) = infer_as(&server, &key, "hi").await;
        for _ in 0..3 {
            assert_eq!(
                infer_as(&server, &key, "hi there").await,
                (200, first.clone())
            );
        }
        on_canary += usize::from(first == "v2");
    }
    assert!(
        (10..60).contains(&on_canary),
        "{on_canary} of 100 keys on the canary"
    );
    let s = status(&server).await;
    assert_eq!(s["canary"]["weight"], 0.3);
}

#[tokio::test]
async fn shadow_agreement_gates_promotion() {
    let dir = tempfile::tempdir().unwrap();
    manifest(dir.path(), &[("v1", 1), ("same", 1), ("other", 2)], None);
    let server = start(dir.path(), &[]).await;
    for v in ["same", "other"] {
        let (code, body) = admin(
            &server,
            "/admin/load",
            json!({"model": "tiny", "version": v}),
        )
        .await;
        assert_eq!(code, 200, "{body}");
    }
    // Never shadowed: refused.
    let (code, body) = admin(&server, "/admin/promote", json!({"model": "tiny@other"})).await;
    assert_eq!(
        (code, body["code"].as_str()),
        (409, Some("agreement_below_threshold")),
        "{body}"
    );

    admin(
        &server,
        "/admin/shadow",
        json!({"model": "tiny@same", "sample_rate": 1.0}),
    )
    .await;
    let same = shadow_samples(&server, "same", 16, json!({})).await;
    assert!(same["mean_cosine"].as_f64().unwrap() > 0.999, "{same}");
    assert!(same["rank_correlation"].as_f64().unwrap() > 0.999, "{same}");

    admin(
        &server,
        "/admin/shadow",
        json!({"model": "tiny@other", "sample_rate": 1.0}),
    )
    .await;
    let other = shadow_samples(&server, "other", 16, json!({})).await;
    assert!(other["mean_cosine"].as_f64().unwrap() < 0.9, "{other}");
    assert!(other["rank_correlation"].as_f64().unwrap() < 0.9, "{other}");
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("inferd_shadow_agreement{"),
        "agreement not exported"
    );

    let (code, body) = admin(&server, "/admin/promote", json!({"model": "tiny@other"})).await;
    assert_eq!(code, 409, "{body}");
    promote_forced(&server, "tiny@other").await;
    assert_eq!(infer_as(&server, "k", "hi").await, (200, "other".into()));
}

/// A shadow copy is the request the caller made: the candidate embeds the same texts with the
/// same `prompt_name` and `dimensions`, so identical weights agree fully. Were the prompt
/// dropped, the candidate would embed other token sequences (checked below to move every
/// vector); were `dimensions` dropped, the vectors would differ in size and `mean_cosine` would
/// be absent.
#[tokio::test]
async fn shadow_copies_keep_the_prompt_and_dimensions() {
    let dir = tempfile::tempdir().unwrap();
    manifest(dir.path(), &[("v1", 1), ("same", 1)], None);
    let prompts = json!({"prompts": {"query": "qq zz: "}, "default_prompt_name": null});
    for v in ["v1", "same"] {
        let path = dir.path().join(v).join("config_sentence_transformers.json");
        std::fs::write(path, prompts.to_string()).unwrap();
    }
    let server = start(dir.path(), &[]).await;
    let (code, body) = admin(&server, "/admin/load", json!({"model": "tiny@same"})).await;
    assert_eq!(code, 200, "{body}");

    let dims = crate::common::tiny_model::HIDDEN / 2;
    let asked = json!({"inputs": sample_texts(0), "prompt_name": "query", "dimensions": dims});
    let (_, with_prompt) = server.infer(asked.clone()).await;
    let (_, without) = server
        .infer(json!({"inputs": sample_texts(0), "dimensions": dims}))
        .await;
    for (a, b) in vectors(&with_prompt).iter().zip(&vectors(&without)) {
        assert_eq!(a.len(), dims);
        assert!(cosine(a, b) < 0.99, "the prompt does not move the vectors");
    }

    let (code, body) = admin(
        &server,
        "/admin/shadow",
        json!({"model": "tiny@same", "sample_rate": 1.0}),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let extra = json!({"prompt_name": "query", "dimensions": dims});
    let same = shadow_samples(&server, "same", 16, extra).await;
    assert!(same["mean_cosine"].as_f64().unwrap() > 0.999, "{same}");
    assert!(same["rank_correlation"].as_f64().unwrap() > 0.999, "{same}");
}

#[tokio::test]
async fn load_canary_promote_rollback_unload_under_load_fails_nothing() {
    let dir = tempfile::tempdir().unwrap();
    manifest(dir.path(), &[("v1", 1), ("v2", 1)], None);
    let server = Arc::new(start(dir.path(), &[]).await);
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let (server, stop, ok, failed) =
                (server.clone(), stop.clone(), ok.clone(), failed.clone());
            tokio::spawn(async move {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let (code, _) =
                        infer_as(&server, &format!("c{c}-{i}"), &format!("text {c} {i}")).await;
                    let counter = if code == 200 { &ok } else { &failed };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    let steps = [
        ("/admin/load", json!({"model": "tiny@v2"})),
        (
            "/admin/shadow",
            json!({"model": "tiny@v2", "sample_rate": 1.0}),
        ),
        ("/admin/canary", json!({"model": "tiny@v2", "weight": 0.5})),
        ("/admin/promote", json!({"model": "tiny@v2", "force": true})),
        ("/admin/rollback", json!({"model": "tiny"})),
        ("/admin/unload", json!({"model": "tiny@v2"})),
    ];
    for (path, body) in steps {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (code, reply) = admin(&server, path, body).await;
        assert_eq!(code, 200, "{path}: {reply}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0);
    assert!(ok.load(Ordering::Relaxed) > 20);
    let s = status(&server).await;
    assert_eq!(s["promoted"], "v1");
    assert_eq!(s["versions"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_failing_canary_is_rolled_back_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    manifest(dir.path(), &[("v1", 1), ("v2", 2)], None);
    let server = start(dir.path(), &["--canary-min-requests", "5"]).await;
    let (code, body) = admin(
        &server,
        "/admin/load",
        json!({"model": "tiny@v2", "faults": {"panic_on": "boom"}}),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    admin(
        &server,
        "/admin/canary",
        json!({"model": "tiny@v2", "weight": 1.0}),
    )
    .await;
    let mut saw_failure = false;
    for i in 0..40 {
        let (code, version) = infer_as(&server, &format!("k{i}"), "boom").await;
        saw_failure |= code == 500;
        if status(&server).await["canary"]["weight"] == 0.0 {
            break;
        }
        if code == 200 {
            assert_eq!(version, "v2");
        }
    }
    assert!(saw_failure);
    assert_eq!(status(&server).await["canary"]["weight"], 0.0);
    assert_eq!(infer_as(&server, "k", "boom").await, (200, "v1".into()));
    let (_, events) = server.admin(Some(TOKEN), "/admin/events", None).await;
    let last = events.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["action"], "auto_rollback", "{events}");
    assert_eq!(last["actor"], "inferd");
    assert_eq!(last["detail"]["breach"]["kind"], "error_ratio");
}

#[tokio::test]
async fn a_restart_restores_promoted_version_and_canary() {
    let dir = tempfile::tempdir().unwrap();
    manifest(dir.path(), &[("v1", 1), ("v2", 2), ("v3", 3)], None);
    let mut server = start(dir.path(), &[]).await;
    for v in ["v2", "v3"] {
        admin(
            &server,
            "/admin/load",
            json!({"model": "tiny", "version": v}),
        )
        .await;
    }
    promote_forced(&server, "tiny@v2").await;
    admin(
        &server,
        "/admin/canary",
        json!({"model": "tiny@v3", "weight": 0.4}),
    )
    .await;
    server.kill();

    let server = start(dir.path(), &[]).await;
    let s = status(&server).await;
    assert_eq!(s["promoted"], "v2", "{s}");
    assert_eq!(s["canary"]["version"], "v3");
    assert_eq!(s["canary"]["weight"], 0.4);
    assert_eq!(s["history"], json!(["v1"]));
    let events = std::fs::read_to_string(dir.path().join("state/lifecycle.jsonl")).unwrap();
    assert_eq!(
        events.lines().count(),
        4,
        "replay must not append: {events}"
    );
    let first: Value = serde_json::from_str(events.lines().next().unwrap()).unwrap();
    assert_eq!(first["actor"], "ops");
    assert_eq!(first["sha256"].as_str().unwrap().len(), 64);
}

/// An item index keeps answering with the version that built it after another is promoted
/// (its vectors only compare with that model's), and says so clearly once that version is gone.
#[tokio::test]
async fn an_index_follows_the_version_that_built_it_across_a_promotion() {
    let dir = tempfile::tempdir().unwrap();
    manifest(dir.path(), &[("v1", 1), ("v2", 2)], None);
    let catalog = dir.path().join("catalog.jsonl");
    let lines: Vec<String> = (0..12)
        .map(|i| {
            json!({"id": format!("item-{i}"), "text": format!("item {i} about topic {}", i % 3)})
                .to_string()
        })
        .collect();
    std::fs::write(&catalog, lines.join("\n")).unwrap();
    let index = dir.path().join("index");
    let built = Command::new(crate::common::inferd_bin())
        .args(["index", "build", "--model-version", "v1", "--model"])
        .arg(dir.path().join("tiny.toml"))
        .arg("--catalog")
        .arg(&catalog)
        .arg("--out")
        .arg(&index)
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let index_arg = format!("catalog={}", index.display());
    let server = start(dir.path(), &["--index", &index_arg]).await;
    let recommend = |body: Value| {
        let server = &server;
        async move {
            let r = server
                .client
                .post(server.url("/recommend"))
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let query = json!({"text": "item about topic 1", "k": 3});
    let (code, before) = recommend(query.clone()).await;
    assert_eq!(
        (code, before["version"].as_str()),
        (200, Some("v1")),
        "{before}"
    );

    let (code, body) = admin(&server, "/admin/load", json!({"model": "tiny@v2"})).await;
    assert_eq!(code, 200, "{body}");
    promote_forced(&server, "tiny@v2").await;
    assert_eq!(
        infer_as(&server, "k", "hello").await,
        (200, "v2".to_string())
    );
    let (code, after) = recommend(query.clone()).await;
    assert_eq!(code, 200, "{after}");
    assert_eq!(after["version"], "v1");
    assert_eq!(after["items"], before["items"], "same model, same answer");

    let (code, body) = admin(&server, "/admin/unload", json!({"model": "tiny@v1"})).await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = recommend(query).await;
    assert_eq!(code, 409, "{body}");
    assert_eq!(body["code"], "conflict", "{body}");
    assert!(body["error"].as_str().unwrap().contains("v1"), "{body}");
    // Queries by stored vectors need no model.
    let (code, body) = recommend(json!({"item_id": "item-1", "k": 3})).await;
    assert_eq!(code, 200, "{body}");
}
