//! Parity with sentence-transformers on the real all-MiniLM-L6-v2 and all-mpnet-base-v2 (fetched
//! by `scripts/fetch-model.sh --all`). The fixtures hold sentence-transformers' own vectors.

use std::path::{Path, PathBuf};

use crate::common::{cosine, floats, real_model_dir, spawn, vectors, TestServer};
use serde_json::{json, Value};

struct Reference {
    text: String,
    embedding: Vec<f32>,
}

fn references() -> Vec<Reference> {
    fixture("reference.jsonl")
}

fn fixture(name: &str) -> Vec<Reference> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            Reference {
                text: v["text"].as_str().unwrap().to_string(),
                embedding: floats(&v["embedding"]),
            }
        })
        .collect()
}

async fn real_server() -> TestServer {
    real_server_with(&[]).await
}

async fn real_server_with(args: &[&str]) -> TestServer {
    serve_with(&real_model_dir(), args).await
}

async fn serve_with(dir: &Path, args: &[&str]) -> TestServer {
    let mut server = spawn(dir, &[&["--threads", "2"], args].concat());
    server.wait_ready().await;
    server
}

/// The real all-mpnet-base-v2 directory fetched by `scripts/fetch-model.sh all-mpnet-base-v2`.
fn mpnet_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/all-mpnet-base-v2");
    assert!(
        dir.join("model.safetensors").exists(),
        "MPNet parity needs {}: run scripts/fetch-model.sh all-mpnet-base-v2 (scripts/test.sh does)",
        dir.display()
    );
    dir
}

#[tokio::test]
async fn matches_sentence_transformers_on_every_reference_text() {
    assert_parity(&real_server_with(&["--dtype", "f32"]).await).await;
}

#[tokio::test]
async fn mpnet_matches_sentence_transformers_in_f32() {
    let server = serve_with(
        &mpnet_dir(),
        &[
            "--device",
            "cpu",
            "--dtype",
            "f32",
            "--request-timeout",
            "300s",
        ],
    )
    .await;
    let (_, info) = server.get_json("/info").await;
    assert_eq!(info["architecture"], "mpnet");
    assert_eq!(info["max_seq_length"], 384);
    assert_fixture_parity(&server, "mpnet-reference.jsonl", 768).await;
}

/// `--dtype auto`: bf16 on AMX CPUs (every product on AMX tiles), f32 elsewhere.
#[tokio::test]
async fn mpnet_matches_sentence_transformers_with_auto_dtype() {
    let server = serve_with(
        &mpnet_dir(),
        &["--device", "cpu", "--request-timeout", "300s"],
    )
    .await;
    let (_, info) = server.get_json("/info").await;
    let want = if inferd::model::isa().amx_bf16 {
        "bf16"
    } else {
        "f32"
    };
    assert_eq!(info["dtype"], want);
    if want == "f32" {
        // The same kernels as the f32 test above, which checks every reference text: running
        // all 290 through MPNet again would only add minutes on a 2-core CPU without AMX.
        return;
    }
    assert_fixture_parity(&server, "mpnet-reference.jsonl", 768).await;
}

/// bf16 projections (AMX where the CPU has it, else AVX-512 BF16) must keep the same parity bar.
#[tokio::test]
async fn bf16_projections_match_sentence_transformers() {
    if !inferd::model::isa().avx512_bf16 {
        eprintln!("skipping: this CPU has no AVX-512 BF16");
        return;
    }
    let server = real_server_with(&["--device", "cpu", "--dtype", "bf16"]).await;
    let (_, info) = server.get_json("/info").await;
    assert_eq!(info["dtype"], "bf16");
    assert_parity(&server).await;
}

async fn assert_parity(server: &TestServer) {
    assert_fixture_parity(server, "reference.jsonl", 384).await;
}

async fn assert_fixture_parity(server: &TestServer, fixture_name: &str, dims: usize) {
    let refs = fixture(fixture_name);
    assert_eq!(refs.len(), 290);
    let mut worst = (f32::MAX, String::new());
    // Small requests: on a loaded 2-core machine 16 long texts through MPNet (f32) took longer
    // than the test client's 60 s timeout.
    for chunk in refs.chunks(4) {
        let texts: Vec<&str> = chunk.iter().map(|r| r.text.as_str()).collect();
        let (status, body) = server.infer(json!({"inputs": texts})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["dimensions"], dims);
        for (r, got) in chunk.iter().zip(vectors(&body)) {
            let c = cosine(&got, &r.embedding);
            if c < worst.0 {
                worst = (c, r.text.chars().take(60).collect());
            }
            assert!(c >= 0.999, "cosine {c} < 0.999 for {:?}", r.text);
        }
    }
    eprintln!(
        "{fixture_name}: worst cosine {:.6} for {:?}",
        worst.0, worst.1
    );
}

#[tokio::test]
async fn a_text_embeds_the_same_alone_and_among_long_texts() {
    let server = real_server().await;
    let refs = references();
    let short = "Advanced internationalization framework.";
    let long: Vec<&str> = refs
        .iter()
        .map(|r| r.text.as_str())
        .filter(|t| t.len() > 800)
        .take(7)
        .collect();
    assert_eq!(long.len(), 7);
    let (_, alone) = server.infer(json!({"inputs": short})).await;
    let mut batch = long.clone();
    batch.insert(3, short);
    let (status, mixed) = server.infer(json!({"inputs": batch})).await;
    assert_eq!(status, 200);
    let c = cosine(&vectors(&alone)[0], &vectors(&mixed)[3]);
    assert!(c >= 0.9999, "alone vs in a long batch: cosine {c}");
}

#[tokio::test]
async fn default_manifest_pins_and_labels_the_model() {
    real_model_dir(); // the manifest's local_dir must be populated
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/models/all-MiniLM-L6-v2.toml");
    let mut server = spawn(manifest.as_ref(), &[]);
    server.wait_ready().await;
    let (_, info) = server.get_json("/info").await;
    assert_eq!(info["model"], "all-MiniLM-L6-v2");
    assert_eq!(info["max_seq_length"], 256);
    assert_eq!(
        info["sha256"],
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
    );
    assert_eq!(info["version"], "53aa51172d14");
    let (status, body) = server.infer(json!({"inputs": "hello"})).await;
    assert_eq!(status, 200);
    assert_eq!(body["version"], "53aa51172d14");
}
