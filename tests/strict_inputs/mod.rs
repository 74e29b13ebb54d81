//! Strict inputs and clean errors on both listeners: every refusal is JSON with a stable code
//! (undecodable paths, bad query strings, wrong methods), bodies are objects only, messages use
//! the API's words, admin errors do not show server paths, and labels are checked.

use serde_json::{json, Value};

use crate::common::{
    lifecycle::{self, TOKEN},
    spawn_tiny, TestServer,
};

/// Status and JSON body of a raw request (`Value::Null` when the body is not JSON).
async fn call(
    server: &TestServer,
    method: reqwest::Method,
    url: String,
    body: Option<&str>,
) -> (u16, Value) {
    let mut request = server.client.request(method, url).bearer_auth(TOKEN);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn bodies_are_objects_and_messages_name_no_rust_types() {
    let server = spawn_tiny().await;
    for body in [
        // Every field of `/infer`'s request in order: serde alone would accept this array as
        // the struct, so only the object check refuses it.
        r#"["hello", true, true, null, null, null]"#,
        r#""hello""#,
        r#"{"inputs": "x", "truncate": {}}"#,
    ] {
        let (status, err) = call(
            &server,
            reqwest::Method::POST,
            server.url("/infer"),
            Some(body),
        )
        .await;
        assert_eq!(status, 422, "{body}: {err}");
        assert_eq!(err["code"], "invalid_input", "{body}: {err}");
        let message = err["error"].as_str().unwrap();
        assert!(
            !message.contains("struct") && !message.contains("Request"),
            "{message}"
        );
    }
    let (status, _) = server.infer(json!({"inputs": "still fine"})).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn bad_urls_on_the_serving_listener_are_json() {
    let server = spawn_tiny().await;
    for path in ["/items/%ff", "/items/x?index=a&index=b"] {
        let (status, err) = call(&server, reqwest::Method::GET, server.url(path), None).await;
        assert_eq!(status, 400, "{path}: {err}");
        assert_eq!(err["code"], "invalid_url", "{path}: {err}");
    }
    let (status, err) = call(&server, reqwest::Method::DELETE, server.url("/infer"), None).await;
    assert_eq!(
        (status, err["code"].as_str()),
        (405, Some("method_not_allowed")),
        "{err}"
    );
}

/// Every documented route with a path parameter, in every dialect: a parameter that does not
/// decode is a 4xx in JSON (each dialect's own error shape), never axum's plain-text rejection.
#[tokio::test]
async fn an_undecodable_path_parameter_is_json_on_every_route() {
    let server = spawn_tiny().await;
    let (_, doc) = server.get_json("/openapi.json").await;
    let mut checked = 0;
    for (template, operations) in doc["paths"].as_object().unwrap() {
        if !template.contains('{') {
            continue;
        }
        // Each `{param}` becomes a byte that is not UTF-8.
        let path: String = template
            .split('/')
            .map(|part| if part.starts_with('{') { "%ff" } else { part })
            .collect::<Vec<_>>()
            .join("/");
        for method in operations.as_object().unwrap().keys() {
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let body = (method == reqwest::Method::POST).then_some("{}");
            let (status, err) = call(&server, method.clone(), server.url(&path), body).await;
            assert!(
                (400..500).contains(&status) && err.is_object(),
                "{method} {path}: {status} {err}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} routes with path parameters");
}

#[tokio::test]
async fn admin_errors_are_json_without_server_paths_and_labels_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    lifecycle::manifest(dir.path(), &[("v1", 1)], None);
    let server = lifecycle::start(dir.path(), &[]).await;
    let base = format!("http://{}", server.admin_addr().await);

    let (status, err) = call(
        &server,
        reqwest::Method::GET,
        format!("{base}/admin/events?limit=abc"),
        None,
    )
    .await;
    assert_eq!(
        (status, err["code"].as_str()),
        (400, Some("invalid_url")),
        "{err}"
    );
    let (status, err) = call(
        &server,
        reqwest::Method::DELETE,
        format!("{base}/admin/status"),
        None,
    )
    .await;
    assert_eq!(
        (status, err["code"].as_str()),
        (405, Some("method_not_allowed")),
        "{err}"
    );

    let load = |body: Value| {
        let url = format!("{base}/admin/load");
        let server = &server;
        async move { call(server, reqwest::Method::POST, url, Some(&body.to_string())).await }
    };
    let (status, err) = load(json!({"model": "tiny", "version": "v\n2"})).await;
    assert_eq!(
        (status, err["code"].as_str()),
        (422, Some("invalid_input")),
        "{err}"
    );
    assert!(err["error"].as_str().unwrap().contains("version"), "{err}");
    // Nothing was loaded under the bad label: /infer still answers.
    assert_eq!(server.infer(json!({"inputs": "x"})).await.0, 200);

    let missing = dir.path().join("nowhere").join("tiny.toml");
    let (status, err) =
        load(json!({"model": "tiny@v9", "source": missing.to_str().unwrap()})).await;
    assert_eq!(
        (status, err["code"].as_str()),
        (422, Some("load_failed")),
        "{err}"
    );
    let message = err["error"].as_str().unwrap();
    let root = dir.path().to_str().unwrap();
    assert!(!message.contains(root), "a server path leaked: {message}");
}

/// `/tokenize` answers about 70 bytes per token: with `--max-response-bytes 20000`, 50 words
/// are answered and 1,000 are refused 413 `response_too_large` before anything is written (on
/// gRPC too, with the message limit: RESOURCE_EXHAUSTED), and the server keeps serving.
#[tokio::test]
async fn answers_that_would_outgrow_the_response_limit_are_refused() {
    use inferd::grpc::proto::tei::v1::{tokenize_client::TokenizeClient, EncodeRequest};

    let server = crate::common::spawn_tiny_with(&[
        "--max-response-bytes",
        "20000",
        "--max-body-bytes",
        "20000",
        "--grpc-listen",
        "127.0.0.1:0",
    ])
    .await;
    let tokenize = |words: usize| {
        let body = json!({"inputs": "word ".repeat(words)}).to_string();
        let url = server.url("/tokenize");
        let server = &server;
        async move { call(server, reqwest::Method::POST, url, Some(&body)).await }
    };
    let (status, body) = tokenize(50).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = tokenize(1000).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["code"], "response_too_large", "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("--max-response-bytes"),
        "{body}"
    );
    assert_eq!(tokenize(50).await.0, 200);

    let channel = crate::grpc::connect(server.grpc_addr().await).await;
    let mut grpc = TokenizeClient::new(channel);
    let encode = |words: usize| EncodeRequest {
        inputs: "word ".repeat(words),
        add_special_tokens: true,
        ..Default::default()
    };
    assert!(grpc.tokenize(encode(50)).await.is_ok());
    let refused = grpc.tokenize(encode(3000)).await.unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );
    assert!(
        refused.message().contains("--max-body-bytes"),
        "{refused:?}"
    );
}
