//! Rerankers and classifiers against transformers itself: tiny random
//! `BertForSequenceClassification` (1 label, and 3 with `id2label`) and
//! `XLMRobertaForSequenceClassification` models written by `scripts/tiny-models.py`, with
//! transformers' logits on fixed texts and (query, text) pairs in `reference.json`. Served in f32,
//! TEI `/rerank` raw scores, `/predict` softmax and Cohere `/v2/rerank` relevance scores must be
//! within [`TOLERANCE`] of them; routes that do not fit the model's kind, and bad input, are 4xx
//! JSON in each dialect's shape ([`errors`]).

mod errors;
mod kserve;
mod shadow;

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::{
    architectures::models_dir,
    common::{spawn, TestServer},
};

/// Largest difference allowed between a served score and transformers' (f32).
const TOLERANCE: f32 = 2e-3;

pub(crate) fn model_dir(name: &str) -> PathBuf {
    models_dir().join(name)
}

pub(crate) async fn serve(name: &str, args: &[&str]) -> TestServer {
    let mut all = vec!["--device", "cpu", "--dtype", "f32"];
    all.extend_from_slice(args);
    let mut server = spawn(&model_dir(name), &all);
    server.wait_ready().await;
    server
}

struct Case {
    first: String,
    second: Option<String>,
    logits: Vec<f32>,
}

struct Reference {
    labels: Vec<String>,
    pairs: Vec<Case>,
    texts: Vec<Case>,
}

fn reference(name: &str) -> Reference {
    let path = model_dir(name).join("reference.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: Value = serde_json::from_str(&text).unwrap();
    let cases = |key: &str, first: &str, second: Option<&str>| -> Vec<Case> {
        v[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| Case {
                first: c[first].as_str().unwrap().to_string(),
                second: second.map(|s| c[s].as_str().unwrap().to_string()),
                logits: crate::common::floats(&c["logits"]),
            })
            .collect()
    };
    Reference {
        labels: v["labels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap().to_string())
            .collect(),
        pairs: cases("pairs", "query", Some("text")),
        texts: cases("texts", "text", None),
    }
}

/// The reference pairs grouped by query, in order.
fn by_query(pairs: &[Case]) -> Vec<(String, Vec<&Case>)> {
    let mut groups: Vec<(String, Vec<&Case>)> = Vec::new();
    for case in pairs {
        match groups.last_mut() {
            Some((q, cases)) if *q == case.first => cases.push(case),
            _ => groups.push((case.first.clone(), vec![case])),
        }
    }
    groups
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

fn softmax(x: &[f32]) -> Vec<f32> {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = x.iter().map(|v| (v - max).exp()).collect();
    let sum: f32 = e.iter().sum();
    e.iter().map(|v| v / sum).collect()
}

/// `/rerank` for every query of `name`'s reference: sorted best first, texts echoed, and each
/// score within [`TOLERANCE`] of transformers' logit (raw) or its sigmoid. Returns the worst
/// difference.
async fn check_rerank(server: &TestServer, name: &str) -> f32 {
    let mut worst = 0f32;
    for (query, cases) in by_query(&reference(name).pairs) {
        let texts: Vec<&str> = cases.iter().map(|c| c.second.as_deref().unwrap()).collect();
        for raw in [true, false] {
            let body = json!({"query": query, "texts": texts, "raw_scores": raw,
                "return_text": true, "truncate": true});
            let (status, ranks) = server.post_json("/rerank", body).await;
            assert_eq!(status, 200, "{ranks}");
            let ranks = ranks.as_array().unwrap();
            assert_eq!(ranks.len(), texts.len());
            let scores: Vec<f32> = ranks
                .iter()
                .map(|r| r["score"].as_f64().unwrap() as f32)
                .collect();
            assert!(
                scores.windows(2).all(|w| w[0] >= w[1]),
                "not sorted: {scores:?}"
            );
            for r in ranks {
                let index = r["index"].as_u64().unwrap() as usize;
                assert_eq!(r["text"], texts[index]);
                let logit = cases[index].logits[0];
                let want = if raw { logit } else { sigmoid(logit) };
                let got = r["score"].as_f64().unwrap() as f32;
                worst = worst.max((got - want).abs());
            }
        }
    }
    eprintln!("{name}: worst /rerank difference {worst:.2e} to transformers");
    worst
}

async fn assert_reranker(name: &str, architecture: &str) {
    let server = serve(name, &[]).await;
    let (_, info) = server.get_json("/info").await;
    assert_eq!(info["kind"], "reranker", "{info}");
    assert_eq!(info["rerank"], "cross_encoder");
    assert_eq!(info["architecture"], architecture);
    assert_eq!(
        info["model_type"]["reranker"]["id2label"]["0"], "LABEL_0",
        "{info}"
    );
    let worst = check_rerank(&server, name).await;
    assert!(
        worst <= TOLERANCE,
        "{name}: worst difference {worst} > {TOLERANCE}"
    );
}

#[tokio::test]
async fn bert_reranker_scores_match_transformers() {
    assert_reranker("bert-reranker", "bert").await;
}

#[tokio::test]
async fn xlm_roberta_reranker_scores_match_transformers() {
    assert_reranker("xlm-roberta-reranker", "xlm-roberta").await;
}

/// Mean pooling, a GELU + LayerNorm head with biases.
#[tokio::test]
async fn modernbert_reranker_scores_match_transformers() {
    assert_reranker("modernbert-reranker", "modernbert").await;
}

/// The parity check is sharp: a reranker that differs from the original in one detail a server
/// could get wrong (pairs in one token type; the head's dense layer; ModernBERT's pooling) is served fine but does not
/// match the original's logits (the variant directory carries the original's `reference.json`).
#[tokio::test]
async fn reranker_parity_fails_when_a_head_detail_is_undone() {
    for name in [
        "bert-reranker-one-token-type",
        "xlm-roberta-reranker-identity-head",
        "modernbert-reranker-first-token",
    ] {
        let server = serve(name, &[]).await;
        let worst = check_rerank(&server, name).await;
        assert!(
            worst > 20.0 * TOLERANCE,
            "{name} matched the original's logits (worst difference {worst}): the check cannot see this detail"
        );
    }
}

#[tokio::test]
async fn bert_classifier_predict_matches_transformers() {
    assert_classifier("bert-classifier").await;
}

/// The first token, no biases: transformers' defaults for ModernBERT's head.
#[tokio::test]
async fn modernbert_classifier_predict_matches_transformers() {
    assert_classifier("modernbert-classifier").await;
}

/// `/predict` on texts, one pair and a batch of pairs: labels best first, softmax (or raw
/// logits) within [`TOLERANCE`] of transformers'.
async fn assert_classifier(name: &str) {
    let server = serve(name, &[]).await;
    let (_, info) = server.get_json("/info").await;
    assert_eq!(info["kind"], "classifier", "{info}");
    assert_eq!(info["labels"], json!(["negative", "neutral", "positive"]));
    assert_eq!(info["model_type"]["classifier"]["label2id"]["positive"], 2);
    let reference = reference(name);
    let check = |predictions: &Value, case: &Case, raw: bool| {
        let want = if raw {
            case.logits.clone()
        } else {
            softmax(&case.logits)
        };
        let list = predictions.as_array().unwrap();
        assert_eq!(list.len(), reference.labels.len());
        let scores: Vec<f32> = list
            .iter()
            .map(|p| p["score"].as_f64().unwrap() as f32)
            .collect();
        assert!(
            scores.windows(2).all(|w| w[0] >= w[1]),
            "not sorted: {scores:?}"
        );
        let mut worst = 0f32;
        for p in list {
            let label = reference
                .labels
                .iter()
                .position(|l| p["label"] == *l)
                .unwrap();
            worst = worst.max((p["score"].as_f64().unwrap() as f32 - want[label]).abs());
        }
        worst
    };
    let mut worst = 0f32;
    let texts: Vec<&str> = reference.texts.iter().map(|c| c.first.as_str()).collect();
    for raw in [false, true] {
        let (status, body) = server
            .post_json("/predict", json!({"inputs": texts, "raw_scores": raw}))
            .await;
        assert_eq!(status, 200, "{body}");
        for (predictions, case) in body.as_array().unwrap().iter().zip(&reference.texts) {
            worst = worst.max(check(predictions, case, raw));
        }
    }
    let pair = &reference.pairs[0];
    let one = json!({"inputs": [pair.first, pair.second], "truncate": true});
    let (status, body) = server.post_json("/predict", one).await;
    assert_eq!(status, 200, "{body}");
    worst = worst.max(check(&body, pair, false));
    let pairs: Vec<Value> = reference
        .pairs
        .iter()
        .map(|c| json!([c.first, c.second]))
        .collect();
    let (status, body) = server
        .post_json("/predict", json!({"inputs": pairs, "truncate": true}))
        .await;
    assert_eq!(status, 200, "{body}");
    for (predictions, case) in body.as_array().unwrap().iter().zip(&reference.pairs) {
        worst = worst.max(check(predictions, case, false));
    }
    eprintln!("{name}: worst /predict difference {worst:.2e} to transformers");
    assert!(worst <= TOLERANCE, "worst difference {worst} > {TOLERANCE}");
}

/// Cohere's `/v2/rerank` (strings) and `/v1/rerank` (`{text}` objects, `return_documents`):
/// sigmoid relevance scores best first, cut to `top_n`.
#[tokio::test]
async fn cohere_rerank_relevance_scores_match_transformers() {
    let name = "bert-reranker";
    let server = serve(name, &[]).await;
    let (_, info) = server.get_json("/info").await;
    let model = info["model"].as_str().unwrap().to_string();
    let mut worst = 0f32;
    for (query, cases) in by_query(&reference(name).pairs) {
        let docs: Vec<&str> = cases.iter().map(|c| c.second.as_deref().unwrap()).collect();
        let body = json!({"model": model, "query": query, "documents": docs, "top_n": 3});
        let (status, v2) = server.post_json("/v2/rerank", body).await;
        assert_eq!(status, 200, "{v2}");
        assert_eq!(v2["meta"]["api_version"]["version"], "2");
        assert!(v2["id"].as_str().is_some_and(|id| !id.is_empty()));
        let results = v2["results"].as_array().unwrap();
        assert_eq!(results.len(), 3);
        let mut want: Vec<f32> = cases.iter().map(|c| sigmoid(c.logits[0])).collect();
        for r in results {
            let index = r["index"].as_u64().unwrap() as usize;
            let got = r["relevance_score"].as_f64().unwrap() as f32;
            worst = worst.max((got - want[index]).abs());
            assert!(r.get("document").is_none());
        }
        want.sort_by(|a, b| b.total_cmp(a));
        let best = results[0]["relevance_score"].as_f64().unwrap() as f32;
        assert!((best - want[0]).abs() <= TOLERANCE, "the best comes first");
        let objects: Vec<Value> = docs.iter().map(|d| json!({"text": d})).collect();
        let body = json!({"model": model, "query": query, "documents": objects,
            "return_documents": true});
        let (status, v1) = server.post_json("/v1/rerank", body).await;
        assert_eq!(status, 200, "{v1}");
        let results = v1["results"].as_array().unwrap();
        assert_eq!(results.len(), docs.len());
        for r in results {
            let index = r["index"].as_u64().unwrap() as usize;
            assert_eq!(r["document"]["text"], docs[index]);
        }
    }
    eprintln!("{name}: worst /v2/rerank difference {worst:.2e} to transformers");
    assert!(worst <= TOLERANCE, "worst difference {worst} > {TOLERANCE}");
}
