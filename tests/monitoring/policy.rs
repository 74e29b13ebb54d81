//! `--input-policy`: each reason refuses with its code in every dialect's error shape (inferd,
//! OpenAI, TEI, KServe v2, gRPC), is counted by reason, and `warn` only counts.

use inferd::grpc::proto::tei::v1::{embed_client::EmbedClient, EmbedRequest};
use serde_json::{json, Value};
use tonic::Code;

use crate::{
    common::{spawn_tiny_with, TestServer},
    grpc::connect,
};

/// One input per reason, for the tiny model (lowercase letters and digits; anything else is
/// `[UNK]`), with `--input-max-chars 40`.
const FLAGGED: [(&str, &str, &str); 4] = [
    (
        "input_too_many_chars",
        "too_many_chars",
        "abcdefghij abcdefghij abcdefghij abcdefghij",
    ),
    ("input_empty", "empty", " \t\u{200B}\n "),
    (
        "input_invalid_text",
        "invalid_text",
        "ab\u{FFFD}\u{FFFD}\u{FFFD} cd",
    ),
    ("input_unknown_tokens", "unknown_tokens", "東京 大阪 a"),
];

const POLICY: [&str; 4] = ["--input-max-chars", "40", "--grpc-listen", "127.0.0.1:0"];

async fn model(server: &TestServer) -> String {
    let (_, info) = server.get_json("/info").await;
    info["model_id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn each_reason_has_its_code_in_every_dialect_and_is_counted() {
    let mut args = vec!["--input-policy", "enforce"];
    args.extend(POLICY);
    let server = spawn_tiny_with(&args).await;
    let model = model(&server).await;
    let mut grpc = EmbedClient::new(connect(server.grpc_addr().await).await);
    for (code, reason, text) in FLAGGED {
        let inputs = json!(["fine text", text]);
        let (status, body) = server.infer(json!({"inputs": inputs})).await;
        assert_eq!((status, body["code"].as_str()), (422, Some(code)), "{body}");
        let message = body["error"].as_str().unwrap();
        assert!(message.starts_with("input 1 was refused"), "{message}");

        let openai = json!({"input": inputs, "model": model});
        let (status, body) = server.post_json("/v1/embeddings", openai).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (422, Some(code)),
            "{body}"
        );
        assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");

        let (status, body) = server.post_json("/embed", json!({"inputs": inputs})).await;
        assert_eq!((status, body["code"].as_str()), (422, Some(code)), "{body}");
        assert_eq!(body["error_type"], "Validation", "{body}");

        let kserve = json!({"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES",
                                        "data": inputs}]});
        let path = format!("/v2/models/{model}/infer");
        let (status, body) = server.post_json(&path, kserve).await;
        assert_eq!(status, 422, "{body}");
        assert!(kserve_message(&body).contains(code), "{body}");

        let request = EmbedRequest {
            inputs: text.into(),
            truncate: true,
            ..Default::default()
        };
        let status = grpc.embed(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains(code), "{status:?}");

        let counted = server
            .metric(
                "inferd_inputs_flagged_total",
                &[&format!("reason=\"{reason}\"")],
            )
            .await;
        assert_eq!(counted, 5.0, "{reason}: once per dialect");
    }
    let (status, body) = server
        .infer(json!({"inputs": ["fine text", "ok 42"]}))
        .await;
    assert_eq!(status, 200, "{body}");
}

fn kserve_message(body: &Value) -> &str {
    body["error"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn warn_only_counts_and_off_counts_nothing() {
    let mut args = vec!["--input-policy", "warn"];
    args.extend(POLICY);
    let server = spawn_tiny_with(&args).await;
    let texts: Vec<&str> = FLAGGED.iter().map(|(_, _, text)| *text).collect();
    let (status, body) = server.infer(json!({"inputs": texts})).await;
    assert_eq!(status, 200, "warn serves them: {body}");
    for (_, reason, _) in FLAGGED {
        let label = format!("reason=\"{reason}\"");
        let counted = server
            .metric("inferd_inputs_flagged_total", &[&label])
            .await;
        assert_eq!(counted, 1.0, "{reason}");
    }

    let off = spawn_tiny_with(&["--input-max-chars", "40"]).await;
    let (status, body) = off.infer(json!({"inputs": texts})).await;
    assert_eq!(status, 200, "{body}");
    assert!(!off.metrics().await.contains("inferd_inputs_flagged_total"));
}
