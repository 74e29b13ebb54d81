//! Traces from outside: the spawned server exports over OTLP/gRPC to a real receiver
//! ([`collector`]), and the test reads back what arrived. Sharp on the links: every assertion
//! names the exact parent span id, so losing the caller's `traceparent`, the context across the
//! channel to the model thread, or the batch's parent and link fails it.

mod collector;

use serde_json::{json, Value};
use tonic::Request;

use crate::{
    common::{spawn_tiny_with, tiny_model::HIDDEN, TestServer},
    grpc::spawn_grpc,
};
use collector::{has, span, Collector};
use inferd::grpc::proto::tei::v1::{embed_client::EmbedClient, EmbedRequest};

/// A fresh W3C trace context: (trace id, the caller's span id, the `traceparent` header).
fn caller_context() -> (String, String, String) {
    let trace_id = format!("{:032x}", fastrand::u128(1..));
    let span_id = format!("{:016x}", fastrand::u64(1..));
    let traceparent = format!("00-{trace_id}-{span_id}-01");
    (trace_id, span_id, traceparent)
}

async fn infer_with(server: &TestServer, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = server
        .client
        .post(server.url("/infer"))
        .json(&json!({"inputs": ["hello world", "a second text"]}));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

fn id(span: &Value) -> &str {
    span["span_id"].as_str().unwrap()
}

fn parent(span: &Value) -> &str {
    span["parent_span_id"].as_str().unwrap()
}

/// One `/infer` with a caller's `traceparent`: every span of the path is in the caller's trace,
/// each under the right parent, and the batch links back to the request it served.
#[tokio::test]
async fn one_infer_is_one_trace_from_the_callers_span_to_the_forward_pass() {
    let collector = Collector::start();
    let endpoint = collector.endpoint();
    let server = spawn_tiny_with(&[
        "--otlp-endpoint",
        &endpoint,
        "--otel-service-name",
        "embedder",
    ])
    .await;
    let (trace_id, caller, traceparent) = caller_context();
    let response = infer_with(
        &server,
        &[
            ("traceparent", &traceparent),
            ("tracestate", "vendor=value"),
            ("x-request-id", "trace-test-42"),
        ],
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "trace-test-42");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["embeddings"].as_array().unwrap().len(), 2);

    let spans = collector
        .trace(&trace_id, |spans| {
            [
                "POST /infer",
                "embed",
                "admission",
                "tokenize",
                "queue",
                "batch",
                "forward",
                "pooling",
            ]
            .iter()
            .all(|name| has(spans, name))
        })
        .await;

    let http = span(&spans, "POST /infer");
    assert_eq!(
        parent(http),
        caller,
        "the request span continues the caller's span"
    );
    assert_eq!(http["trace_state"], "vendor=value");
    assert_eq!(http["kind"], 2, "a server span");
    assert_eq!(http["service"], "embedder");
    assert_eq!(http["attributes"]["http.route"], "/infer");
    assert_eq!(http["attributes"]["request_id"], "trace-test-42");
    assert_eq!(http["attributes"]["http.response.status_code"], 200);

    let embed = span(&spans, "embed");
    assert_eq!(parent(embed), id(http));
    for step in ["admission", "tokenize", "queue"] {
        assert_eq!(
            parent(span(&spans, step)),
            id(embed),
            "{step} runs inside embed"
        );
    }

    // Across the channel, on the model thread: the batch is the request's child and links to it.
    let batch = span(&spans, "batch");
    assert_eq!(parent(batch), id(embed));
    assert_eq!(
        batch["links"],
        json!([{"trace_id": trace_id, "span_id": id(embed)}])
    );
    assert_eq!(batch["attributes"]["batch.sequences"], 2);
    assert_eq!(parent(span(&spans, "forward")), id(batch));
    assert_eq!(parent(span(&spans, "pooling")), id(batch));
}

/// Without a `traceparent` the request starts its own trace, and the server makes a request id;
/// probes and the model's warm-up are not traced.
#[tokio::test]
async fn a_request_without_context_starts_a_trace_and_gets_an_id() {
    let collector = Collector::start();
    let endpoint = collector.endpoint();
    let server = spawn_tiny_with(&["--otlp-endpoint", &endpoint]).await;
    let response = infer_with(&server, &[("x-request-id", "has space")]).await;
    assert_eq!(response.status(), 200);
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        request_id.len(),
        32,
        "an unusable caller id is replaced: {request_id}"
    );

    // The request span of that id: a root, with the default service name.
    let found = collector
        .first(|s| s["attributes"]["request_id"] == request_id.as_str())
        .await;
    assert_eq!(parent(&found), "");
    assert_eq!(found["service"], "inferd");
    assert_eq!(found["name"], "POST /infer");
    // Spans are exported in the order they end: once this request's batch is in, so is
    // everything before it. The readiness polls and the warm-up passes were not traced.
    let trace_id = found["trace_id"].as_str().unwrap();
    collector.trace(trace_id, |spans| has(spans, "batch")).await;
    let names = collector.names();
    assert!(!names.iter().any(|n| n.contains("readyz")), "{names:?}");
    let count = |name: &str| names.iter().filter(|n| *n == name).count();
    assert_eq!(
        count("forward"),
        1,
        "only the request's forward pass: {names:?}"
    );
}

/// gRPC metadata carries the caller's context the same way.
#[tokio::test]
async fn grpc_calls_continue_the_callers_trace() {
    let collector = Collector::start();
    let endpoint = collector.endpoint();
    let (_server, channel) = spawn_grpc(&["--otlp-endpoint", &endpoint]).await;
    let (trace_id, caller, traceparent) = caller_context();
    let mut request = Request::new(EmbedRequest {
        inputs: "hello world".into(),
        truncate: true,
        normalize: Some(true),
        ..Default::default()
    });
    request
        .metadata_mut()
        .insert("traceparent", traceparent.parse().unwrap());
    let answer = EmbedClient::new(channel).embed(request).await.unwrap();
    assert!(!answer.into_inner().embeddings.is_empty());

    let spans = collector
        .trace(&trace_id, |spans| {
            has(spans, "tei.v1.Embed/Embed") && has(spans, "forward")
        })
        .await;
    let call = span(&spans, "tei.v1.Embed/Embed");
    assert_eq!(parent(call), caller);
    let embed = span(&spans, "embed");
    assert_eq!(span(&spans, "batch")["links"][0]["span_id"], id(embed));
}

/// A collector that is down: requests succeed as without tracing, the lost spans are counted,
/// and the outage is one warning in the log.
#[tokio::test]
async fn a_collector_that_is_down_costs_only_a_log_line() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let server = spawn_tiny_with(&["--otlp-endpoint", &endpoint]).await;
    let (_, _, traceparent) = caller_context();
    for _ in 0..5 {
        let response = infer_with(&server, &[("traceparent", &traceparent)]).await;
        assert_eq!(response.status(), 200);
        assert!(response.headers().contains_key("x-request-id"));
        let body: Value = response.json().await.unwrap();
        let vectors = crate::common::vectors(&body);
        assert_eq!(vectors.len(), 2);
        assert!(vectors.iter().all(|v| v.len() == HIDDEN));
    }
    let dropped = r#"inferd_trace_spans_dropped_total"#;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while server.metric(dropped, &[r#"reason="export_failed""#]).await == 0.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no failed export counted; logs:\n{}",
            server.logs()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let response = infer_with(&server, &[]).await;
    assert_eq!(
        response.status(),
        200,
        "still serving after the failed export"
    );
    assert_eq!(
        server.metric(dropped, &[r#"reason="queue_full""#]).await,
        0.0
    );
    let warnings = server.logs().matches("trace export failed;").count();
    assert_eq!(
        warnings,
        1,
        "one warning per outage; logs:\n{}",
        server.logs()
    );
}
