//! Black-box tests of the OpenAI, TEI and KServe v2 dialects and the OpenAPI document, against a
//! spawned server with a tiny random model: shapes, dialect-shaped errors, and vectors that equal
//! `/infer`'s.

use crate::common::{cosine, floats, spawn_tiny, spawn_tiny_with, tiny_model, vectors, TestServer};
use base64::Engine;
use serde_json::{json, Value};

/// `/infer`'s vectors for `texts` (normalised, truncating).
async fn infer(server: &TestServer, texts: &[&str]) -> Vec<Vec<f32>> {
    let (status, body) = server.infer(json!({ "inputs": texts })).await;
    assert_eq!(status, 200, "{body}");
    vectors(&body)
}

fn assert_same(a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() < 1e-5, "{a:?} != {b:?}");
    }
}

async fn model_name(server: &TestServer) -> String {
    let (_, info) = server.get_json("/info").await;
    info["model"].as_str().unwrap().to_string()
}

// ---- OpenAI -------------------------------------------------------------------------------

#[tokio::test]
async fn openai_embeddings_match_infer_in_float_and_base64() {
    let server = spawn_tiny().await;
    let model = model_name(&server).await;
    let expected = infer(&server, &["hello world", "a b"]).await;

    let (status, body) = server
        .post_json(
            "/v1/embeddings",
            json!({"input": ["hello world", "a b"], "model": model, "user": "u1"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "list");
    assert_eq!(body["model"], model.as_str());
    assert_eq!(body["usage"]["prompt_tokens"], 12 + 4);
    assert_eq!(body["usage"]["total_tokens"], 12 + 4);
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    for (i, item) in data.iter().enumerate() {
        assert_eq!(item["object"], "embedding");
        assert_eq!(item["index"], i);
        assert_same(&floats(&item["embedding"]), &expected[i]);
    }

    let (status, body) = server
        .post_json(
            "/v1/embeddings",
            json!({"input": "hello world", "model": model, "encoding_format": "base64"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let encoded = body["data"][0]["embedding"]
        .as_str()
        .expect("base64 string");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    let decoded: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_same(&decoded, &expected[0]);
}

#[tokio::test]
async fn openai_model_token_ids_are_decoded_and_embedded_like_text() {
    // The served model's own ids (tiktoken's are the default: see `frameworks::`).
    let server = spawn_tiny_with(&["--openai-token-ids", "model"]).await;
    let model = model_name(&server).await;
    let (status, tokens) = server
        .post_json(
            "/tokenize",
            json!({"inputs": "hello", "add_special_tokens": false}),
        )
        .await;
    assert_eq!(status, 200, "{tokens}");
    let ids: Vec<u64> = tokens[0]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_u64().unwrap())
        .collect();
    let expected = infer(&server, &["hello"]).await;

    for input in [json!(ids), json!([ids])] {
        let (status, body) = server
            .post_json("/v1/embeddings", json!({"input": input, "model": model}))
            .await;
        assert_eq!(status, 200, "{body}");
        assert_same(&floats(&body["data"][0]["embedding"]), &expected[0]);
    }

    let (status, body) = server
        .post_json("/v1/embeddings", json!({"input": [999999], "model": model}))
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("outside the vocabulary"));
}

#[tokio::test]
async fn openai_errors_have_openai_shape_and_inferd_statuses() {
    let server = spawn_tiny().await;
    let model = model_name(&server).await;

    let (status, body) = server
        .post_json(
            "/v1/embeddings",
            json!({"input": "a", "model": model, "dimensions": tiny_model::HIDDEN + 1}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(body["error"]["param"], "dimensions");
    assert_eq!(body["error"]["code"], "invalid_input");
    assert!(body["error"]["message"].as_str().unwrap().contains("32"));

    let (status, body) = server
        .post_json(
            "/v1/embeddings",
            json!({"input": "a", "model": model, "dimensions": 8}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"][0]["embedding"].as_array().unwrap().len(), 8);

    let (status, body) = server
        .post_json(
            "/v1/embeddings",
            json!({"input": "a", "model": model, "dimensions": tiny_model::HIDDEN}),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let (status, body) = server
        .post_json("/v1/embeddings", json!({"input": "a", "model": "nope"}))
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "model_not_found");
    assert!(body["error"]["param"].is_null());

    let (status, body) = server
        .post_json(
            "/v1/embeddings",
            json!({"input": ["a", ""], "model": model}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("`input[1]` is an empty string"));

    // Over-long inputs are refused when the request says not to cut them.
    let long = "word ".repeat(40);
    let (status, body) = server
        .post_json(
            "/v1/embeddings",
            json!({"input": long, "model": model, "truncate": false}),
        )
        .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "input_too_long");

    let (status, body) = server
        .post_json("/v1/embeddings", json!({"model": model}))
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn openai_models_are_listed() {
    let server = spawn_tiny().await;
    let model = model_name(&server).await;
    let (status, body) = server.get_json("/v1/models").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "list");
    assert_eq!(body["data"][0]["id"], model.as_str());
    assert_eq!(body["data"][0]["object"], "model");
    let (status, one) = server.get_json(&format!("/v1/models/{model}")).await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["id"], model.as_str());
    let (status, missing) = server.get_json("/v1/models/nope").await;
    assert_eq!(status, 404);
    assert_eq!(missing["error"]["code"], "model_not_found");
}

#[tokio::test]
async fn key_errors_are_in_each_dialects_shape() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, "team:s3cret\n").unwrap();
    let server = spawn_tiny_with(&["--api-key-file", keys.to_str().unwrap()]).await;

    let (status, body) = server
        .post_json("/v1/embeddings", json!({"input": "a", "model": "m"}))
        .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "unauthorized");
    let (status, body) = server.post_json("/embed", json!({"inputs": "a"})).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error_type"], "Validation");
    let (status, body) = server.get_json("/v2/models/m").await;
    assert_eq!(status, 401, "{body}");
    assert!(body["error"].is_string() && body.get("code").is_none());

    let r = server
        .client
        .post(server.url("/embed"))
        .bearer_auth("s3cret")
        .json(&json!({"inputs": "a"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The API description stays open.
    let (status, _) = server.get_json("/openapi.json").await;
    assert_eq!(status, 200);
}

// ---- TEI ----------------------------------------------------------------------------------

#[tokio::test]
async fn tei_embed_matches_infer_and_refuses_long_inputs_when_asked() {
    let server = spawn_tiny().await;
    let expected = infer(&server, &["hello world", "a b"]).await;
    let (status, body) = server
        .post_json("/embed", json!({"inputs": ["hello world", "a b"]}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_same(&floats(&body[0]), &expected[0]);
    assert_same(&floats(&body[1]), &expected[1]);

    // A single string still answers a list of vectors; `POST /` (feature-extraction) too.
    let (status, body) = server.post_json("/", json!({"inputs": "a b"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body.as_array().unwrap().len(), 1);
    assert_same(&floats(&body[0]), &expected[1]);

    let (_, raw) = server
        .post_json("/embed", json!({"inputs": "a b", "normalize": false}))
        .await;
    assert!(cosine(&floats(&raw[0]), &expected[1]) > 0.99999);

    let long = "word ".repeat(40);
    let (status, body) = server
        .post_json("/embed", json!({"inputs": long, "truncate": false}))
        .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["code"], "input_too_long");
    assert_eq!(body["error_type"], "Validation");
    assert!(body["error"].is_string());

    let (status, body) = server
        .post_json("/embed", json!({"inputs": "a", "prompt_name": "query"}))
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"].as_str().unwrap().contains("none"), "{body}");
}

#[tokio::test]
async fn tei_truncation_direction_keeps_the_right_end() {
    let server = spawn_tiny().await;
    // One token per word: 45 words, the model keeps 30 plus [CLS] and [SEP].
    let words: Vec<String> = (0..45)
        .map(|i| ((b'a' + (i * 7 % 26) as u8) as char).to_string())
        .collect();
    let keep = tiny_model::MAX_SEQ_LENGTH - 2;
    let head = words[..keep].join(" ");
    let tail = words[words.len() - keep..].join(" ");
    let expected = infer(&server, &[&head, &tail]).await;
    let long = words.join(" ");
    for (direction, want) in [("Right", &expected[0]), ("Left", &expected[1])] {
        let (status, body) = server
            .post_json(
                "/embed",
                json!({"inputs": long, "truncate": true, "truncation_direction": direction}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_same(&floats(&body[0]), want);
    }
    assert!(cosine(&expected[0], &expected[1]) < 0.9999);
}

#[tokio::test]
async fn tei_tokenize_and_decode_round_trip() {
    let server = spawn_tiny().await;
    let (status, body) = server
        .post_json("/tokenize", json!({"inputs": ["ab c", "d"]}))
        .await;
    assert_eq!(status, 200, "{body}");
    let first = body[0].as_array().unwrap();
    // [CLS] a ##b c [SEP]
    assert_eq!(first.len(), 5);
    assert_eq!(first[0]["special"], true);
    assert!(first[0]["start"].is_null());
    assert_eq!(first[1]["text"], "a");
    assert_eq!(
        (first[3]["start"].as_u64(), first[3]["stop"].as_u64()),
        (Some(3), Some(4))
    );
    assert_eq!(first[3]["text"], "c");
    assert_eq!(body[1].as_array().unwrap().len(), 3);

    let ids: Vec<u64> = first.iter().map(|t| t["id"].as_u64().unwrap()).collect();
    let (status, text) = server.post_json("/decode", json!({"ids": ids})).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(text, json!(["ab c"]));
    let (status, texts) = server
        .post_json(
            "/decode",
            json!({"ids": [ids, [5]], "skip_special_tokens": false}),
        )
        .await;
    assert_eq!(status, 200, "{texts}");
    assert!(texts[0].as_str().unwrap().contains("[CLS]"));

    let (status, body) = server.post_json("/decode", json!({"ids": "x"})).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error_type"], "Validation");
}

#[tokio::test]
async fn tei_similarity_and_rerank_are_cosines_best_first() {
    let server = spawn_tiny().await;
    let texts = ["zq xv", "hello world", "hello"];
    let v = infer(&server, &["hello world", texts[0], texts[1], texts[2]]).await;
    let want: Vec<f32> = v[1..].iter().map(|x| cosine(&v[0], x)).collect();

    let (status, body) = server
        .post_json(
            "/similarity",
            json!({"inputs": {"source_sentence": "hello world", "sentences": texts}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let got = floats(&body);
    assert_eq!(got.len(), 3);
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() < 1e-4);
    }

    let (status, body) = server
        .post_json(
            "/rerank",
            json!({"query": "hello world", "texts": texts, "return_text": true}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let ranks = body.as_array().unwrap();
    assert_eq!(ranks.len(), 3);
    assert_eq!(ranks[0]["index"], 1);
    assert_eq!(ranks[0]["text"], "hello world");
    assert!((ranks[0]["score"].as_f64().unwrap() - 1.0).abs() < 1e-4);
    let scores: Vec<f64> = ranks.iter().map(|r| r["score"].as_f64().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    for r in ranks {
        let i = r["index"].as_u64().unwrap() as usize;
        assert!((r["score"].as_f64().unwrap() as f32 - want[i]).abs() < 1e-4);
    }

    let (_, body) = server
        .post_json("/rerank", json!({"query": "hello", "texts": ["a"]}))
        .await;
    assert!(body[0].get("text").is_none());
    let (status, body) = server
        .post_json("/rerank", json!({"query": "", "texts": ["a"]}))
        .await;
    assert_eq!(status, 422, "{body}");
}

#[tokio::test]
async fn info_carries_tei_fields_beside_inferds() {
    let server = spawn_tiny().await;
    let (status, info) = server.get_json("/info").await;
    assert_eq!(status, 200);
    assert_eq!(info["model_id"], info["model"]);
    assert_eq!(info["max_input_length"], tiny_model::MAX_SEQ_LENGTH);
    assert_eq!(info["model_dtype"], info["dtype"]);
    assert_eq!(info["model_type"]["embedding"]["pooling"], "mean");
    for field in [
        "max_concurrent_requests",
        "max_batch_tokens",
        "max_client_batch_size",
        "tokenization_workers",
        "auto_truncate",
        "batching",
        "limits",
        "inferd_version",
    ] {
        assert!(!info[field].is_null(), "{field} missing from {info}");
    }
}

// ---- KServe v2 ----------------------------------------------------------------------------

#[tokio::test]
async fn kserve_metadata_and_health() {
    let server = spawn_tiny().await;
    let model = model_name(&server).await;
    let (status, body) = server.get_json("/v2").await;
    assert_eq!(status, 200);
    assert_eq!(body["name"], "inferd");
    let (status, body) = server.get_json("/v2/health/live").await;
    assert_eq!((status, body["live"].as_bool()), (200, Some(true)));
    let (status, body) = server.get_json("/v2/health/ready").await;
    assert_eq!((status, body["ready"].as_bool()), (200, Some(true)));

    let (status, meta) = server.get_json(&format!("/v2/models/{model}")).await;
    assert_eq!(status, 200, "{meta}");
    assert_eq!(meta["name"], model.as_str());
    assert_eq!(
        meta["inputs"][0],
        json!({"name": "text", "datatype": "BYTES", "shape": [-1]})
    );
    assert_eq!(
        meta["outputs"][0],
        json!({"name": "embedding", "datatype": "FP32", "shape": [-1, tiny_model::HIDDEN]})
    );
    let version = meta["versions"][0].as_str().unwrap();
    let (status, _) = server
        .get_json(&format!("/v2/models/{model}/versions/{version}"))
        .await;
    assert_eq!(status, 200);
    let (status, body) = server.get_json(&format!("/v2/models/{model}/ready")).await;
    assert_eq!((status, body["ready"].as_bool()), (200, Some(true)));

    let (status, body) = server.get_json("/v2/models/nope/ready").await;
    assert_eq!(status, 404);
    assert!(body["error"].as_str().unwrap().contains("nope"));
    assert!(body.get("code").is_none());
}

#[tokio::test]
async fn kserve_infer_json_bytes_gives_fp32_matrix_equal_to_infer() {
    let server = spawn_tiny().await;
    let model = model_name(&server).await;
    let expected = infer(&server, &["hello world", "a b"]).await;
    let (status, body) = server
        .post_json(
            &format!("/v2/models/{model}/infer"),
            json!({"id": "r1", "inputs": [{"name": "text", "shape": [2, 1], "datatype": "BYTES",
                "data": ["hello world", "a b"]}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], "r1");
    assert_eq!(body["model_name"], model.as_str());
    let out = &body["outputs"][0];
    assert_eq!(out["name"], "embedding");
    assert_eq!(out["datatype"], "FP32");
    assert_eq!(out["shape"], json!([2, tiny_model::HIDDEN]));
    let flat = floats(&out["data"]);
    assert_same(&flat[..tiny_model::HIDDEN], &expected[0]);
    assert_same(&flat[tiny_model::HIDDEN..], &expected[1]);

    for (bad, want) in [
        (
            json!({"inputs": [{"name": "text", "shape": [3], "datatype": "BYTES", "data": ["a"]}]}),
            "shape",
        ),
        (
            json!({"inputs": [{"name": "text", "shape": [1], "datatype": "FP32", "data": [1.0]}]}),
            "BYTES",
        ),
        (
            json!({"inputs": [{"name": "other", "shape": [1], "datatype": "BYTES", "data": ["a"]}]}),
            "unknown input",
        ),
        (json!({"inputs": []}), "`text` is required"),
    ] {
        let (status, body) = server
            .post_json(&format!("/v2/models/{model}/infer"), bad)
            .await;
        assert_eq!(status, 422, "{body}");
        assert!(body["error"].as_str().unwrap().contains(want), "{body}");
    }
}

#[tokio::test]
async fn kserve_infer_binary_tensor_extension() {
    let server = spawn_tiny().await;
    let model = model_name(&server).await;
    let expected = infer(&server, &["hello world", "a b"]).await;
    let mut tensor = Vec::new();
    for text in ["hello world", "a b"] {
        tensor.extend_from_slice(&(text.len() as u32).to_le_bytes());
        tensor.extend_from_slice(text.as_bytes());
    }
    let header = serde_json::to_vec(&json!({
        "inputs": [{"name": "text", "shape": [2], "datatype": "BYTES",
            "parameters": {"binary_data_size": tensor.len()}}],
        "outputs": [{"name": "embedding", "parameters": {"binary_data": true}}]
    }))
    .unwrap();
    let mut body = header.clone();
    body.extend_from_slice(&tensor);
    let r = server
        .client
        .post(server.url(&format!("/v2/models/{model}/infer")))
        .header("Inference-Header-Content-Length", header.len())
        .header("Content-Type", "application/octet-stream")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let json_len: usize = r.headers()["inference-header-content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let bytes = r.bytes().await.unwrap();
    let head: Value = serde_json::from_slice(&bytes[..json_len]).unwrap();
    let out = &head["outputs"][0];
    assert_eq!(out["shape"], json!([2, tiny_model::HIDDEN]));
    assert!(out.get("data").is_none());
    let size = out["parameters"]["binary_data_size"].as_u64().unwrap() as usize;
    assert_eq!(size, bytes.len() - json_len);
    let flat: Vec<f32> = bytes[json_len..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_same(&flat[..tiny_model::HIDDEN], &expected[0]);
    assert_same(&flat[tiny_model::HIDDEN..], &expected[1]);
}

// ---- OpenAPI ------------------------------------------------------------------------------

#[tokio::test]
async fn openapi_document_lists_every_route_and_docs_render() {
    let server = spawn_tiny().await;
    let (status, doc) = server.get_json("/openapi.json").await;
    assert_eq!(status, 200);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().unwrap();
    for route in [
        "/infer",
        "/info",
        "/livez",
        "/readyz",
        "/health",
        "/metrics",
        "/v1/embeddings",
        "/v1/models",
        "/v1/models/{model}",
        "/embed",
        "/tokenize",
        "/decode",
        "/similarity",
        "/rerank",
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/{name}",
        "/v2/models/{name}/ready",
        "/v2/models/{name}/infer",
        "/v2/models/{name}/versions/{version}/infer",
    ] {
        assert!(
            paths.contains_key(route),
            "{route} missing from /openapi.json"
        );
    }
    let r = server.client.get(server.url("/docs")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // Relative, so the page works behind a path prefix.
    assert!(r.text().await.unwrap().contains("fetch(\"openapi.json\")"));
}

#[tokio::test]
async fn body_rejections_are_in_the_dialects_shape_too() {
    let server = spawn_tiny().await;
    let post = |path: &str, body: &'static str| {
        server
            .client
            .post(server.url(path))
            .header("Content-Type", "application/json")
            .body(body)
            .send()
    };
    let r = post("/v1/embeddings", "{not json").await.unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_json");
    assert_eq!(body["error"]["type"], "invalid_request_error");

    let r = post("/v2/models/x/infer", "{not json").await.unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert!(status == 400 || status == 404, "{status} {body}");
    assert!(body["error"].is_string());

    let r = post("/embed", "{\"inputs\": 5}").await.unwrap();
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error_type"], "Validation");
    assert!(body["error"].as_str().unwrap().contains("got a number"));
}
