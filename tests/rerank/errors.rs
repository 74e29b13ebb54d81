//! What does not fit: routes of another model kind, bad rerank / predict input, unsupported
//! heads. Every refusal is a 4xx JSON body in the dialect's own error shape.

use serde_json::{json, Value};

use super::{model_dir, serve};
use crate::common::{refuses, spawn_tiny};

/// TEI's error shape with inferd's code.
fn assert_tei(status: u16, body: &Value, want_status: u16, code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert!(
        body["error"].as_str().is_some() && body["error_type"].as_str().is_some(),
        "{body}"
    );
}

/// Cohere's `{"message"}` with inferd's code.
fn assert_cohere(status: u16, body: &Value, want_status: u16, code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(body.get("error").is_none(), "{body}");
}

#[tokio::test]
async fn a_reranker_refuses_embedding_routes_and_bad_input() {
    let server = serve("bert-reranker", &["--max-client-batch", "4"]).await;
    let (_, info) = server.get_json("/info").await;
    let model = info["model"].as_str().unwrap().to_string();
    // Embedding routes of every dialect: 400 wrong_model_kind.
    let (status, body) = server.post_json("/embed", json!({"inputs": "a"})).await;
    assert_tei(status, &body, 400, "wrong_model_kind");
    assert!(
        body["error"].as_str().unwrap().contains("reranker"),
        "{body}"
    );
    let (status, body) = server.infer(json!({"inputs": ["a"]})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("wrong_model_kind")),
        "{body}"
    );
    let body_oai = json!({"model": model, "input": "a"});
    let (status, body) = server.post_json("/v1/embeddings", body_oai).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "wrong_model_kind", "{body}");
    // TEI /rerank: empty texts, non-string items, over the batch limit, too long untruncated.
    for texts in [
        json!([]),
        json!(["a", 3]),
        json!(["a", "b", "c", "d", "e"]),
        json!(["a", ""]),
    ] {
        let (status, body) = server
            .post_json("/rerank", json!({"query": "q", "texts": texts}))
            .await;
        assert_tei(status, &body, 422, "invalid_input");
    }
    let (status, body) = server
        .post_json("/rerank", json!({"query": "", "texts": ["a"]}))
        .await;
    assert_tei(status, &body, 422, "invalid_input");
    // Over-long: cut by default (`--auto-truncate`), refused when the request says not to cut.
    let long = "word ".repeat(400);
    let (status, body) = server
        .post_json("/rerank", json!({"query": "q", "texts": [long]}))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = server
        .post_json(
            "/rerank",
            json!({"query": "q", "texts": [long], "truncate": false}),
        )
        .await;
    assert_tei(status, &body, 413, "input_too_long");
    // Cohere: empty documents, top_n 0 or above the documents, non-strings, over the limit.
    let cohere = |documents: Value, top_n: Option<i64>| {
        let mut body = json!({"model": model, "query": "q", "documents": documents});
        if let Some(n) = top_n {
            body["top_n"] = json!(n);
        }
        body
    };
    let cases = [
        (cohere(json!([]), None), 422, "invalid_input"),
        (cohere(json!(["a", "b"]), Some(0)), 422, "invalid_input"),
        (cohere(json!(["a", "b"]), Some(3)), 422, "invalid_input"),
        (cohere(json!(["a", 7]), None), 422, "invalid_input"),
        (cohere(json!([{"text": "a"}]), None), 422, "invalid_input"), // objects are v1 only
        (cohere(json!(vec!["a"; 5]), None), 422, "invalid_input"),
        (cohere(json!("a"), None), 422, "invalid_input"),
    ];
    for (body, want, code) in cases {
        let (status, got) = server.post_json("/v2/rerank", body.clone()).await;
        assert_cohere(status, &got, want, code);
        assert!(
            got["message"].as_str().unwrap().contains("documents") || body.get("top_n").is_some(),
            "{got}"
        );
    }
    let unknown = json!({"model": "nope", "query": "q", "documents": ["a"]});
    let (status, got) = server.post_json("/v1/rerank", unknown).await;
    assert_cohere(status, &got, 404, "model_not_found");
    let (status, got) = server.post_json("/v1/rerank", json!({"query": "q"})).await;
    assert_cohere(status, &got, 422, "invalid_input");
    // Over the body limit's cousin: 10k documents, far over --max-client-batch.
    let many = vec!["doc"; 10_000];
    let (status, got) = server
        .post_json("/v2/rerank", cohere(json!(many), None))
        .await;
    assert_cohere(status, &got, 422, "invalid_input");
    assert!(
        got["message"].as_str().unwrap().contains("at most 4"),
        "{got}"
    );
}

#[tokio::test]
async fn a_classifier_is_not_a_reranker_and_an_embedder_does_not_predict() {
    let classifier = serve("bert-classifier", &[]).await;
    let (status, body) = classifier
        .post_json("/rerank", json!({"query": "q", "texts": ["a"]}))
        .await;
    assert_tei(status, &body, 400, "wrong_model_kind");
    let (status, body) = classifier
        .post_json("/predict", json!({"inputs": [["a", 1]]}))
        .await;
    assert_tei(status, &body, 422, "invalid_input");
    let (_, info) = classifier.get_json("/info").await;
    assert_eq!(info["rerank"], "none");
    drop(classifier);

    // An embedding model: bi-encoder /rerank and Cohere rerank, /predict refused.
    let embedder = spawn_tiny().await;
    let (_, info) = embedder.get_json("/info").await;
    assert_eq!(
        (info["kind"].as_str(), info["rerank"].as_str()),
        (Some("embedding"), Some("bi_encoder"))
    );
    let (status, body) = embedder.post_json("/predict", json!({"inputs": "a"})).await;
    assert_tei(status, &body, 400, "wrong_model_kind");
    let texts = json!(["the cat sat", "stock prices fell"]);
    let (status, ranks) = embedder
        .post_json("/rerank", json!({"query": "a cat", "texts": texts}))
        .await;
    assert_eq!(status, 200, "{ranks}");
    let (_, sims) = embedder
        .post_json(
            "/similarity",
            json!({"inputs": {"source_sentence": "a cat", "sentences": texts}}),
        )
        .await;
    let model = info["model"].as_str().unwrap();
    let (status, v2) = embedder
        .post_json(
            "/v2/rerank",
            json!({"model": model, "query": "a cat", "documents": texts}),
        )
        .await;
    assert_eq!(status, 200, "{v2}");
    for r in v2["results"].as_array().unwrap() {
        let index = r["index"].as_u64().unwrap() as usize;
        let cosine = sims[index].as_f64().unwrap();
        assert!(
            (r["relevance_score"].as_f64().unwrap() - cosine).abs() < 1e-5,
            "{v2} {sims}"
        );
    }
}

#[tokio::test]
async fn unsupported_heads_are_a_startup_error_listing_the_supported_ones() {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(model_dir("bert-reranker")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    let path = dir.path().join("config.json");
    let mut config: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config["architectures"] = json!(["BertForTokenClassification"]);
    std::fs::write(&path, config.to_string()).unwrap();
    let text = refuses(dir.path().to_str().unwrap(), &[], &["--device", "cpu"]);
    assert!(
        text.contains("BertForTokenClassification is not supported"),
        "{text}"
    );
    assert!(
        text.contains("XLMRobertaForSequenceClassification"),
        "{text}"
    );
}
