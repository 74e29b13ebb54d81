//! Black-box tests of the HTTP contract against a spawned server with a tiny random model.

use crate::common::{cosine, spawn_tiny, tiny_model, vectors};
use serde_json::{json, Value};

#[tokio::test]
async fn infer_returns_one_normalised_vector_per_input_in_order() {
    let server = spawn_tiny().await;
    let (status, body) = server
        .infer(json!({"inputs": ["hello world", "a b", "hello world"]}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["dimensions"], tiny_model::HIDDEN);
    assert!(body["model"].is_string() && body["version"].is_string());
    let v = vectors(&body);
    assert_eq!(v.len(), 3);
    for vec in &v {
        assert_eq!(vec.len(), tiny_model::HIDDEN);
        let norm: f32 = vec.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
    }
    assert!(cosine(&v[0], &v[2]) > 0.99999, "same text, same vector");
    assert!(cosine(&v[0], &v[1]) < 0.9999, "different texts differ");
    // [CLS] h e l l o w o r l d [SEP] = 2 + 10 pieces; "a b" = 2 + 2.
    assert_eq!(body["usage"]["prompt_tokens"], 12 + 4 + 12);
}

#[tokio::test]
async fn single_string_and_normalize_false() {
    let server = spawn_tiny().await;
    let (status, one) = server.infer(json!({"inputs": "hello"})).await;
    assert_eq!(status, 200);
    assert_eq!(vectors(&one).len(), 1);
    let (_, raw) = server
        .infer(json!({"inputs": "hello", "normalize": false}))
        .await;
    let raw = &vectors(&raw)[0];
    let norm: f32 = raw.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!(
        (norm - 1.0).abs() > 1e-3,
        "unnormalised vector should not be unit length"
    );
    assert!(cosine(raw, &vectors(&one)[0]) > 0.99999);
}

#[tokio::test]
async fn truncation_is_on_by_default_and_refusable() {
    let server = spawn_tiny().await;
    let long = "word ".repeat(40); // 160 pieces, limit is 32
    let (status, body) = server.infer(json!({"inputs": long})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["usage"]["prompt_tokens"], tiny_model::MAX_SEQ_LENGTH);

    let (status, body) = server
        .infer(json!({"inputs": ["ok", long], "truncate": false}))
        .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["code"], "input_too_long");
    assert!(
        body["error"].as_str().unwrap().contains("input 1"),
        "{body}"
    );
}

#[tokio::test]
async fn probes_info_and_metrics() {
    let server = spawn_tiny().await;
    for path in ["/livez", "/readyz", "/health"] {
        let (status, _) = server.get_json(path).await;
        assert_eq!(status, 200, "{path}");
    }
    let (status, info) = server.get_json("/info").await;
    assert_eq!(status, 200);
    assert_eq!(info["dimensions"], tiny_model::HIDDEN);
    assert_eq!(info["max_seq_length"], tiny_model::MAX_SEQ_LENGTH);
    assert_eq!(info["pooling"], json!(["mean"]));
    assert_eq!(info["device"], "cpu");
    let dtype = if inferd::model::isa().amx_bf16 {
        "bf16"
    } else {
        "f32"
    };
    assert_eq!(info["dtype"], dtype);
    assert_eq!(info["cpu_isa"], inferd::model::isa().name());
    assert_eq!(info["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(info["batching"]["max_queue_requests"], 1024);
    assert!(info["inferd_version"].is_string());
    assert_eq!(info["models"].as_array().unwrap().len(), 1);

    server.infer(json!({"inputs": "hello"})).await;
    let text = server.metrics().await;
    assert!(
        text.contains(r#"inferd_http_requests_total{route="/infer",method="POST",status="200"}"#),
        "{text}"
    );
    assert!(text.contains("inferd_ready 1"));
    assert!(text.contains("inferd_model_load_seconds{"));
}

#[tokio::test]
async fn unknown_route_and_wrong_method_are_json() {
    let server = spawn_tiny().await;
    let (status, body) = server.get_json("/nope/123").await;
    assert_eq!(status, 404);
    assert_eq!(body["code"], "not_found");
    let r = server
        .client
        .get(server.url("/infer"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "method_not_allowed");
    // Raw paths never become metric labels.
    assert!(!server.metrics().await.contains("/nope/123"));
}

#[tokio::test]
async fn unknown_model_is_404() {
    let server = spawn_tiny().await;
    let (status, body) = server.infer(json!({"inputs": "x", "model": "nope"})).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["code"], "model_not_found");
}

/// Every malformed request gets a JSON 4xx with the documented code — never a 5xx.
#[tokio::test]
async fn bad_input_gets_clear_4xx() {
    let server = spawn_tiny_with_small_limits().await;
    const JSON: Option<&str> = Some("application/json");
    let too_big = format!(r#"{{"inputs":"{}"}}"#, "a".repeat(5000));
    let cases: Vec<(&str, Option<&str>, &str, u16, &str)> = vec![
        ("syntax", JSON, r#"{"inputs": ["#, 400, "invalid_json"),
        ("not json", JSON, "hello", 400, "invalid_json"),
        (
            "no content type",
            None,
            r#"{"inputs":"a"}"#,
            415,
            "unsupported_media_type",
        ),
        (
            "text/plain",
            Some("text/plain"),
            r#"{"inputs":"a"}"#,
            415,
            "unsupported_media_type",
        ),
        ("empty list", JSON, r#"{"inputs":[]}"#, 422, "invalid_input"),
        (
            "empty string",
            JSON,
            r#"{"inputs":""}"#,
            422,
            "invalid_input",
        ),
        (
            "non-string item",
            JSON,
            r#"{"inputs":["a",1]}"#,
            422,
            "invalid_input",
        ),
        (
            "null item",
            JSON,
            r#"{"inputs":["a",null]}"#,
            422,
            "invalid_input",
        ),
        ("number", JSON, r#"{"inputs":5}"#, 422, "invalid_input"),
        (
            "missing inputs",
            JSON,
            r#"{"normalize":true}"#,
            422,
            "invalid_input",
        ),
        (
            "unknown field",
            JSON,
            r#"{"inputs":"a","nope":1}"#,
            422,
            "invalid_input",
        ),
        (
            "wrong flag type",
            JSON,
            r#"{"inputs":"a","normalize":"yes"}"#,
            422,
            "invalid_input",
        ),
        ("array body", JSON, r#"["a"]"#, 422, "invalid_input"),
        (
            "too many inputs",
            JSON,
            r#"{"inputs":["a","b","c","d","e"]}"#,
            422,
            "invalid_input",
        ),
        ("body too large", JSON, &too_big, 413, "payload_too_large"),
    ];
    for (name, content_type, body, want_status, want_code) in cases {
        let mut req = server
            .client
            .post(server.url("/infer"))
            .body(body.to_string());
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let body: Value = r
            .json()
            .await
            .unwrap_or_else(|e| panic!("{name}: body not JSON: {e}"));
        assert_eq!(status, want_status, "{name}: {body}");
        assert_eq!(body["code"], want_code, "{name}: {body}");
        assert!(
            body["error"].as_str().is_some_and(|m| !m.is_empty()),
            "{name}: {body}"
        );
    }
    // The server is still healthy and served no 5xx.
    let (status, _) = server.infer(json!({"inputs": "still fine"})).await;
    assert_eq!(status, 200);
    let text = server.metrics().await;
    assert_eq!(
        crate::common::metric_value(
            &text,
            "inferd_http_requests_total",
            &[r#"route="/infer""#, r#"status="5"#]
        ),
        0.0,
        "{text}"
    );
}

async fn spawn_tiny_with_small_limits() -> crate::common::TestServer {
    crate::common::spawn_tiny_with(&["--max-client-batch", "4", "--max-body-bytes", "4096"]).await
}

/// Unicode, emoji, control characters and markup all embed.
#[tokio::test]
async fn odd_text_embeds() {
    let server = spawn_tiny().await;
    let texts = [
        "  ",
        "\u{0}\u{7}",
        "日本語のテキスト",
        "🙂🙃",
        "<b>x</b> & {\"json\": 1}",
        "\n\t",
    ];
    let (status, body) = server.infer(json!({"inputs": texts})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(vectors(&body).len(), texts.len());
}
