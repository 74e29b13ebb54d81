//! Drift on the real all-MiniLM-L6-v2 (a real tokenizer's unknown tokens, a real embedding
//! space): `inferd drift profile` writes a reference from real short texts, a server started
//! with it keeps every signal low on more texts of the same kind, and long hex strings, another
//! script and emoji-only texts each raise their signal. Also the learned reference and the
//! gauges.

use std::path::Path;

use serde_json::{json, Value};

use crate::common::{inferd_bin, metric_value, real_model_dir, spawn, spawn_tiny_with, TestServer};

fn short_texts() -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/short-texts.txt");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

async fn embed_all(server: &TestServer, texts: &[String]) {
    for chunk in texts.chunks(25) {
        let (status, body) = server.infer(json!({"inputs": chunk})).await;
        assert_eq!(status, 200, "{body}");
    }
}

async fn signals(server: &TestServer) -> Value {
    let (status, body) = server.get_json("/drift").await;
    assert_eq!(status, 200, "{body}");
    body["models"][0]["signals"].clone()
}

fn signal(signals: &Value, name: &str) -> f64 {
    signals[name]
        .as_f64()
        .unwrap_or_else(|| panic!("{name}: {signals}"))
}

/// Texts of a kind, `n` of them, each a little different.
fn texts(n: usize, make: impl Fn(usize) -> String) -> Vec<String> {
    (0..n).map(make).collect()
}

#[tokio::test]
async fn a_profiled_reference_keeps_like_texts_low_and_each_kind_of_unlike_text_raises_its_signal()
{
    let model = real_model_dir();
    let dir = tempfile::tempdir().unwrap();
    let texts_path = dir.path().join("validation.txt");
    let profile = dir.path().join("profile.json");
    let all = short_texts();
    std::fs::write(&texts_path, all[..250].join("\n")).unwrap();
    let out = std::process::Command::new(inferd_bin())
        .args(["drift", "profile", "--model"])
        .arg(&model)
        .arg("--texts")
        .arg(&texts_path)
        .arg("--out")
        .arg(&profile)
        .env("INFERD_THREADS", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written: Value = serde_json::from_slice(&std::fs::read(&profile).unwrap()).unwrap();
    assert_eq!(
        (written["texts"].as_u64(), written["format"].as_u64()),
        (Some(250), Some(1))
    );
    assert_eq!(written["centroid"].as_array().unwrap().len(), 384);

    let mut server = spawn(
        &model,
        &[
            "--drift-reference",
            profile.to_str().unwrap(),
            "--drift-window",
            "50",
        ],
    );
    server.wait_ready().await;
    let (_, report) = server.get_json("/drift").await;
    let version = &report["models"][0];
    assert_eq!(
        (
            version["state"].as_str(),
            version["reference_source"].as_str()
        ),
        (Some("monitoring"), Some("file")),
        "{report}"
    );
    assert_eq!(
        version["reference"]["centroid"], written["centroid"],
        "the file, as written"
    );
    assert!(
        version["signals"].is_null(),
        "no recent inputs yet: {report}"
    );

    // More texts of the same kind: every signal stays low (a PSI under 0.25 is "no significant
    // shift"; a window of 50 leaves some sampling noise in it).
    embed_all(&server, &all[250..400]).await;
    let like = signals(&server).await;
    for (name, bound) in [
        ("token_length", 0.25),
        ("unknown_tokens", 0.01),
        ("truncation", 0.01),
        ("script", 0.01),
        ("embedding", 0.05),
        ("embedding_norm", 0.05),
    ] {
        assert!(signal(&like, name) < bound, "{name}: {like}");
    }
    let metrics = server.metrics().await;
    let gauge = metric_value(&metrics, "inferd_drift", &["signal=\"token_length\""]);
    assert!(
        (gauge - signal(&like, "token_length")).abs() < 1e-9,
        "{metrics}"
    );

    // Long hex strings: many more tokens per text, and far from the texts' centroid.
    let hex = texts(150, |i| {
        format!("{:032x}{:032x}", i * 7919 + 1, i * 104_729 + 3)
    });
    embed_all(&server, &hex).await;
    let after_hex = signals(&server).await;
    assert!(signal(&after_hex, "token_length") > 1.0, "{after_hex}");
    assert!(signal(&after_hex, "embedding") > 0.2, "{after_hex}");
    assert!(signal(&after_hex, "script") < 0.01, "{after_hex}");

    // Another script: the non-Latin share.
    let greek = texts(150, |i| format!("Καλημέρα κόσμε, αριθμός {i}"));
    embed_all(&server, &greek).await;
    let after_greek = signals(&server).await;
    assert!(signal(&after_greek, "script") > 0.8, "{after_greek}");

    // Emoji only: unknown to MiniLM's vocabulary.
    let emoji = texts(150, |i| ["🙂🎉🚀", "🔥💯", "🥑🍕🌮🍣"][i % 3].to_string());
    embed_all(&server, &emoji).await;
    let after_emoji = signals(&server).await;
    for (stage, s) in [
        ("like", &like),
        ("hex", &after_hex),
        ("greek", &after_greek),
        ("emoji", &after_emoji),
    ] {
        eprintln!("drift after {stage}: {s}");
    }
    assert!(
        signal(&after_emoji, "unknown_tokens") > 0.5,
        "{after_emoji}"
    );
    assert!(signal(&like, "unknown_tokens") < signal(&after_emoji, "unknown_tokens") / 10.0);
}

#[tokio::test]
async fn without_a_reference_the_first_window_becomes_it_and_zero_turns_drift_off() {
    let server = spawn_tiny_with(&["--drift-window", "20"]).await;
    let (status, body) = server.infer(json!({"inputs": vec!["a b c"; 12]})).await;
    assert_eq!(status, 200, "{body}");
    let (_, report) = server.get_json("/drift").await;
    let version = &report["models"][0];
    assert_eq!(report["enabled"], true);
    assert_eq!(version["role"], "promoted", "{report}");
    assert_eq!(
        (
            version["state"].as_str(),
            version["reference_texts"].as_u64()
        ),
        (Some("learning"), Some(12)),
        "{report}"
    );
    server.infer(json!({"inputs": vec!["a b c"; 8]})).await;
    server.infer(json!({"inputs": vec!["a b c"; 4]})).await;
    let (_, report) = server.get_json("/drift").await;
    let version = &report["models"][0];
    assert_eq!(
        (
            version["state"].as_str(),
            version["reference_source"].as_str()
        ),
        (Some("monitoring"), Some("first_requests")),
        "{report}"
    );
    assert_eq!(version["recent_texts"], 4, "{report}");
    assert!(
        signal(&version["signals"], "token_length") < 1e-9,
        "{report}"
    );

    let off = spawn_tiny_with(&["--drift-window", "0"]).await;
    off.infer(json!({"inputs": "a"})).await;
    let (status, report) = off.get_json("/drift").await;
    assert_eq!(status, 200);
    assert_eq!(report, json!({"enabled": false, "models": []}));
    assert!(!off.metrics().await.contains("inferd_drift{"));
}

#[test]
fn a_profile_of_no_texts_or_a_missing_reference_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "\n  \n").unwrap();
    let out = std::process::Command::new(inferd_bin())
        .args(["drift", "profile", "--model", "unused", "--texts"])
        .arg(&empty)
        .args(["--out", "unused.json"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("holds no texts"), "{stderr}");
    let refused = crate::common::refuses(
        "tiny",
        &[],
        &[
            "--drift-reference",
            dir.path().join("nope.json").to_str().unwrap(),
        ],
    );
    assert!(refused.contains("drift reference"), "{refused}");
}

#[tokio::test]
async fn a_shadow_candidate_reports_its_own_drift() {
    use crate::common::lifecycle::{self, TOKEN};
    let dir = tempfile::tempdir().unwrap();
    lifecycle::manifest(dir.path(), &[("v1", 1), ("v2", 2)], None);
    let server = lifecycle::start(dir.path(), &["--drift-window", "10"]).await;
    let load = json!({"model": "tiny", "version": "v2"});
    let (code, body) = server.admin(Some(TOKEN), "/admin/load", Some(load)).await;
    assert_eq!(code, 200, "{body}");
    let shadow = json!({"model": "tiny@v2", "sample_rate": 1.0});
    let (code, body) = server
        .admin(Some(TOKEN), "/admin/shadow", Some(shadow))
        .await;
    assert_eq!(code, 200, "{body}");
    for i in 0..20 {
        let (status, body) = server
            .infer(json!({"inputs": format!("text number {i}")}))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    // Shadow copies run after the answer: wait until the candidate has seen all 20.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let candidate = loop {
        let (_, report) = server.get_json("/drift").await;
        let models = report["models"].as_array().unwrap().clone();
        let v2 = models.iter().find(|m| m["version"] == "v2").cloned();
        let seen = |m: &Value| {
            m["reference_texts"].as_u64().unwrap() + m["recent_texts"].as_u64().unwrap()
        };
        if let Some(v2) = v2.filter(|m| seen(m) >= 20) {
            let v1 = models.iter().find(|m| m["version"] == "v1").unwrap();
            assert_eq!(
                (v1["role"].as_str(), seen(v1)),
                (Some("promoted"), 20),
                "{report}"
            );
            break v2;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no shadow drift: {report}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(candidate["role"], "shadow", "{candidate}");
    assert_eq!(candidate["state"], "monitoring", "{candidate}");
    assert!(candidate["signals"]["embedding"].is_number(), "{candidate}");
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("inferd_drift{model=\"tiny\",version=\"v2\""),
        "{metrics}"
    );
}
