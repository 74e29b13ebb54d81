//! Servers with several versions of one model and the admin API: a manifest of tiny models
//! with different seeds, and a server started on its first version with a state dir.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::TestServer;

/// The admin token the servers started here accept (name `ops`).
pub const TOKEN: &str = "s3cret";

/// A manifest `tiny.toml` in `dir` with one version per `(label, seed)`; a `bad_sha` version
/// pins a wrong hash.
pub fn manifest(dir: &Path, versions: &[(&str, u64)], bad_sha: Option<&str>) -> PathBuf {
    let mut text = format!(
        "name = \"tiny\"\nversion = \"{}\"\n[model]\ndimensions = {}\nmax_seq_length = {}\n\
         pooling = \"mean\"\nnormalize = true\n",
        versions[0].0,
        super::tiny_model::HIDDEN,
        super::tiny_model::MAX_SEQ_LENGTH
    );
    for (label, seed) in versions {
        super::tiny_model::write_seeded(&dir.join(label), *seed);
        let mut sha =
            inferd::model::manifest::sha256_file(&dir.join(label).join("model.safetensors"))
                .unwrap();
        if bad_sha == Some(label) {
            sha = "0".repeat(64);
        }
        text += &format!(
            "\n[[versions]]\nversion = \"{label}\"\nlocal_dir = \"{label}\"\n\
             [versions.sha256]\n\"model.safetensors\" = \"{sha}\"\n\
             [versions.lineage]\nauthor = \"tests\"\n"
        );
    }
    let path = dir.join("tiny.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Starts a server on `tiny@v1` with the admin API on port 0 and a state dir.
pub async fn start(dir: &Path, extra: &[&str]) -> TestServer {
    std::fs::write(dir.join("tokens"), format!("ops:{TOKEN}\n")).unwrap();
    let tokens = dir.join("tokens");
    let state = dir.join("state");
    let mut args = vec![
        "--admin-listen",
        "127.0.0.1:0",
        "--admin-token-file",
        tokens.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
        "--manifest-dir",
        dir.to_str().unwrap(),
        "--shadow-min-samples",
        "16",
    ];
    args.extend_from_slice(extra);
    let mut server = super::spawn(&dir.join("tiny.toml"), &args);
    server.wait_ready().await;
    server
}

/// `/infer` with a route key; returns status and the answering version.
pub async fn infer_as(server: &TestServer, key: &str, text: &str) -> (u16, String) {
    let r = server
        .client
        .post(server.url("/infer"))
        .header("x-inferd-route-key", key)
        .json(&json!({"inputs": text}))
        .send()
        .await
        .unwrap();
    let version = r
        .headers()
        .get("x-model-version")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (r.status().as_u16(), version)
}
