//! Model loading from outside: manifests and their hash pins, hub ids, and refusals that say
//! what to do.

use std::{path::Path, process::Command};

use serde_json::json;

use crate::common::refuses;

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

fn write_manifest(dir: &Path, weights_sha: &str, dimensions: usize) -> String {
    let manifest = format!(
        r#"name = "tiny"
version = "v7"
[source]
repo = "nobody/tiny"
local_dir = "model"
[model]
dimensions = {dimensions}
max_seq_length = {max}
pooling = "mean"
normalize = true
[sha256]
"model.safetensors" = "{weights_sha}"
"#,
        max = crate::common::tiny_model::MAX_SEQ_LENGTH
    );
    let path = dir.join("tiny.toml");
    std::fs::write(&path, manifest).unwrap();
    path.to_str().unwrap().to_string()
}

fn tiny_with_manifest() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    crate::common::tiny_model::write(&dir.path().join("model"));
    let sha = sha256(&dir.path().join("model/model.safetensors"));
    let manifest = write_manifest(dir.path(), &sha, crate::common::tiny_model::HIDDEN);
    (dir, manifest)
}

#[tokio::test]
async fn manifest_with_matching_hashes_serves_under_its_name_and_version() {
    let (_dir, manifest) = tiny_with_manifest();
    let mut server = crate::common::spawn(Path::new(&manifest), &[]);
    server.wait_ready().await;
    let (status, body) = server
        .infer(json!({"inputs": "hi", "model": "tiny@v7"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model"], "tiny");
    assert_eq!(body["version"], "v7");
    let (status, _) = server.get_json("/info").await;
    assert_eq!(status, 200);
}

#[test]
fn hash_mismatch_refuses_to_start() {
    let (dir, _) = tiny_with_manifest();
    let manifest = write_manifest(
        dir.path(),
        &"0".repeat(64),
        crate::common::tiny_model::HIDDEN,
    );
    let out = refuses(&manifest, &[], &[]);
    assert!(
        out.contains("sha256 mismatch for model.safetensors"),
        "{out}"
    );
}

#[test]
fn manifest_promising_another_shape_is_refused() {
    let (dir, _) = tiny_with_manifest();
    let sha = sha256(&dir.path().join("model/model.safetensors"));
    let manifest = write_manifest(dir.path(), &sha, 999);
    let out = refuses(&manifest, &[], &[]);
    assert!(out.contains("dimensions"), "{out}");
}

#[test]
fn offline_hub_miss_says_how_to_use_a_local_directory() {
    let home = tempfile::tempdir().unwrap();
    let out = refuses(
        "sentence-transformers/all-MiniLM-L6-v2",
        &[
            ("HF_HOME", home.path().to_str().unwrap()),
            ("HF_HUB_OFFLINE", "1"),
        ],
        &[],
    );
    assert!(out.contains("HF_HUB_OFFLINE is set"), "{out}");
}

#[test]
fn unreachable_hub_says_so() {
    let home = tempfile::tempdir().unwrap();
    let out = refuses(
        "sentence-transformers/all-MiniLM-L6-v2",
        &[
            ("HF_HOME", home.path().to_str().unwrap()),
            ("HF_ENDPOINT", "http://127.0.0.1:9"),
        ],
        &[],
    );
    assert!(out.contains("is the hub reachable?"), "{out}");
    assert!(out.contains("--model"), "{out}");
}

#[test]
fn nonsense_model_and_bad_flags_are_refused() {
    let out = refuses("/definitely/not/here", &[], &[]);
    assert!(out.contains("owner/name"), "{out}");
    let dir = crate::common::tiny_model_dir();
    let model = dir.path().to_str().unwrap();
    let out = refuses(model, &[], &["--max-batch-tokens", "0"]);
    assert!(
        out.contains("--max-batch-tokens must be at least 1"),
        "{out}"
    );
    let out = refuses(model, &[], &["--dtype", "f16", "--device", "cpu"]);
    assert!(out.contains("needs a CUDA device"), "{out}");
    if cfg!(not(feature = "cuda")) {
        let out = refuses(model, &[], &["--device", "cuda"]);
        assert!(out.contains("initialising CUDA device 0"), "{out}");
    }
}

#[tokio::test]
async fn explicit_cpu_device_and_auto_fallback() {
    let dir = crate::common::tiny_model_dir();
    for device in ["cpu", "auto"] {
        let mut server = crate::common::spawn(dir.path(), &["--device", device]);
        server.wait_ready().await;
        let (_, info) = server.get_json("/info").await;
        if cfg!(not(feature = "cuda")) {
            assert_eq!(info["device"], "cpu");
        }
    }
}
