//! Every architecture inferd serves, against transformers itself: tiny random models written by
//! `scripts/tiny-models.py` (transformers' own init with a wide range, perturbed biases and norm
//! weights, sentence-transformers module files), served by a spawned inferd in f32 and compared
//! with sentence-transformers' vectors on the same directory. Each check is shown sharp: the
//! same XLM-R relabelled as BERT (positions from 0) and the same MPNet without its relative
//! attention bias must fail it (ModernBERT's variants: [`modernbert`]; Qwen3's: [`qwen3`]).
//!
//! The models are generated, not committed: `scripts/tiny-models.sh` (which `scripts/test.sh`
//! runs) writes them to `target/tiny-models/`. Missing models fail these tests.

use std::{collections::BTreeMap, path::PathBuf};

use serde_json::{json, Value};

use crate::common::{cosine, floats, refuses, spawn, vectors, TestServer};

/// The parity bar for a tiny model in f32.
const BAR: f32 = 0.9995;

pub(crate) fn models_dir() -> PathBuf {
    let dir = std::env::var_os("INFERD_TINY_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/tiny-models"));
    assert!(
        dir.join("versions.json").exists(),
        "the tiny models are missing from {}: run scripts/tiny-models.sh (scripts/test.sh does)",
        dir.display()
    );
    dir
}

struct Reference {
    text: String,
    prompt_name: Option<String>,
    embedding: Vec<f32>,
}

fn references(family: &str) -> Vec<Reference> {
    let path = models_dir().join(family).join("reference.jsonl");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            Reference {
                text: v["text"].as_str().unwrap().to_string(),
                prompt_name: v["prompt_name"].as_str().map(str::to_string),
                embedding: floats(&v["embedding"]),
            }
        })
        .collect()
}

async fn serve(dir: &str) -> TestServer {
    let path = models_dir().join(dir);
    let mut server = spawn(&path, &["--device", "cpu", "--dtype", "f32"]);
    server.wait_ready().await;
    server
}

/// Worst cosine between the server's `/infer` vectors and `family`'s references, per prompt.
async fn worst_cosine(server: &TestServer, family: &str) -> f32 {
    let mut by_prompt: BTreeMap<Option<String>, Vec<Reference>> = BTreeMap::new();
    for r in references(family) {
        by_prompt.entry(r.prompt_name.clone()).or_default().push(r);
    }
    let mut worst = f32::MAX;
    for (prompt, refs) in by_prompt {
        let texts: Vec<&str> = refs.iter().map(|r| r.text.as_str()).collect();
        let mut body = json!({"inputs": texts});
        if let Some(p) = &prompt {
            body["prompt_name"] = json!(p);
        }
        let (status, got) = server.infer(body).await;
        assert_eq!(status, 200, "{got}");
        for (r, v) in refs.iter().zip(vectors(&got)) {
            assert_eq!(v.len(), r.embedding.len(), "dimensions");
            worst = worst.min(cosine(&v, &r.embedding));
        }
    }
    worst
}

/// Serves `family`'s tiny model and checks parity on every text and prompt; returns /info.
async fn assert_parity(family: &str, model_type: &str) -> Value {
    let server = serve(family).await;
    let (_, info) = server.get_json("/info").await;
    assert_eq!(info["architecture"], model_type, "{info}");
    let worst = worst_cosine(&server, family).await;
    eprintln!("{family}: worst cosine {worst:.7} to sentence-transformers");
    assert!(worst >= BAR, "{family}: worst cosine {worst} < {BAR}");
    info
}

#[tokio::test]
async fn bert_with_cls_pooling_and_a_tanh_dense_layer() {
    let info = assert_parity("bert", "bert").await;
    assert_eq!(info["pooling"], json!(["cls"]));
    assert_eq!(info["dense_layers"], 1);
    assert_eq!(info["dimensions"], 48);
}

#[tokio::test]
async fn roberta_with_max_pooling() {
    let info = assert_parity("roberta", "roberta").await;
    assert_eq!(info["pooling"], json!(["max"]));
    assert_eq!(info["normalize"], false);
}

#[tokio::test]
async fn xlm_roberta_with_prompts() {
    let info = assert_parity("xlm-roberta", "xlm-roberta").await;
    assert_eq!(info["default_prompt_name"], "query");
    assert_eq!(info["prompts"]["passage"], "passage: ");
}

#[tokio::test]
async fn camembert_with_mean_sqrt_len_pooling() {
    let info = assert_parity("camembert", "camembert").await;
    assert_eq!(info["pooling"], json!(["mean_sqrt_len"]));
}

#[tokio::test]
async fn distilbert_with_last_token_pooling_and_an_identity_dense_layer() {
    let info = assert_parity("distilbert", "distilbert").await;
    assert_eq!(info["pooling"], json!(["lasttoken"]));
    assert_eq!(info["dimensions"], 32);
}

#[tokio::test]
async fn mpnet_with_mean_then_cls_pooling() {
    let info = assert_parity("mpnet", "mpnet").await;
    assert_eq!(info["pooling"], json!(["mean", "cls"]));
    assert_eq!(info["dimensions"], 128);
}

/// The check fails a plausible bug: XLM-R served as BERT (positions from 0, the bug inferd had).
#[tokio::test]
async fn xlm_roberta_served_as_bert_fails_the_check() {
    let server = serve("xlm-roberta-as-bert").await;
    let (_, info) = server.get_json("/info").await;
    assert_eq!(info["architecture"], "bert");
    let worst = worst_cosine(&server, "xlm-roberta").await;
    eprintln!("xlm-roberta as bert: worst cosine {worst:.5}");
    assert!(worst < BAR, "served as BERT, XLM-R still passed ({worst})");
}

/// The check fails a plausible bug: MPNet without its relative attention bias.
#[tokio::test]
async fn mpnet_without_relative_bias_fails_the_check() {
    let server = serve("mpnet-no-relative-bias").await;
    let worst = worst_cosine(&server, "mpnet").await;
    eprintln!("mpnet without relative bias: worst cosine {worst:.5}");
    assert!(
        worst < BAR,
        "MPNet without relative bias still passed ({worst})"
    );
}

#[tokio::test]
async fn unknown_architectures_are_refused_with_the_supported_list() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("deberta");
    copy_dir(&models_dir().join("bert"), &model);
    let config_path = model.join("config.json");
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    config["model_type"] = json!("deberta-v2");
    config["architectures"] = json!(["DebertaV2Model"]);
    std::fs::write(&config_path, config.to_string()).unwrap();
    let out = refuses(model.to_str().unwrap(), &[], &[]);
    assert!(
        out.contains("deberta-v2")
            && out.contains(
                "bert, roberta, xlm-roberta, camembert, distilbert, mpnet, modernbert, qwen3"
            ),
        "{out}"
    );
}

#[tokio::test]
async fn mpnet_on_cuda_is_a_clear_startup_error() {
    let model = models_dir().join("mpnet");
    let out = refuses(model.to_str().unwrap(), &[], &["--device", "cuda"]);
    assert!(
        out.contains("mpnet models have no CUDA implementation"),
        "{out}"
    );
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

mod modernbert;
mod options;
mod qwen3;
