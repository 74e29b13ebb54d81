//! The gRPC listener from outside: the spawned server with `--grpc-listen 127.0.0.1:0`, called
//! with tonic clients generated from `proto/tei.proto` (and tonic's health and reflection
//! clients). Answers are compared with the HTTP API's for the same inputs.

mod connections;
mod errors;
mod kserve;
mod load;
mod wire;

use std::net::SocketAddr;

use inferd::grpc::proto::tei::v1::{
    embed_client::EmbedClient, info_client::InfoClient, tokenize_client::TokenizeClient,
    DecodeRequest, EmbedRequest, EncodeRequest, InfoRequest, ModelType,
};
use serde_json::{json, Value};
use tonic::transport::Channel;
use tonic_health::pb::{health_check_response::ServingStatus, health_client::HealthClient};

use crate::common::{spawn_tiny_with, TestServer};

const TEXTS: [&str; 3] = [
    "the quick brown fox",
    "a completely different sentence about rivers",
    "hello",
];

/// A ready tiny-model server with its gRPC listener, and a channel to it.
pub async fn spawn_grpc(args: &[&str]) -> (TestServer, Channel) {
    let mut all = vec!["--grpc-listen", "127.0.0.1:0"];
    all.extend_from_slice(args);
    let server = spawn_tiny_with(&all).await;
    let channel = connect(server.grpc_addr().await).await;
    (server, channel)
}

pub async fn connect(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("connecting to the gRPC listener")
}

fn embed_request(text: &str) -> EmbedRequest {
    EmbedRequest {
        inputs: text.into(),
        truncate: true,
        normalize: Some(true),
        ..Default::default()
    }
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "vector lengths differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Sharp: the texts embed to clearly different vectors (checked below), so an answer for the
/// wrong text, in the wrong order, or unnormalised (HTTP normalises) fails the 1e-5 bound.
#[tokio::test]
async fn embed_and_embed_stream_match_http_embed() {
    let (server, channel) = spawn_grpc(&[]).await;
    let http: Vec<Vec<f32>> = server
        .client
        .post(server.url("/embed"))
        .json(&json!({"inputs": TEXTS, "normalize": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(max_abs_diff(&http[0], &http[1]) > 1e-2, "texts must differ");

    let mut client = EmbedClient::new(channel);
    for (text, want) in TEXTS.iter().zip(&http) {
        let answer = client
            .embed(embed_request(text))
            .await
            .unwrap()
            .into_inner();
        assert!(max_abs_diff(&answer.embeddings, want) < 1e-5, "{text}");
        let meta = answer.metadata.expect("metadata");
        assert_eq!(meta.compute_chars as usize, text.chars().count());
        assert!(meta.compute_tokens > 0 && meta.total_time_ns > 0);
    }

    let outbound = tokio_stream::iter(TEXTS.map(embed_request));
    let mut answers = client.embed_stream(outbound).await.unwrap().into_inner();
    let mut streamed = Vec::new();
    while let Some(answer) = answers.message().await.unwrap() {
        streamed.push(answer.embeddings);
    }
    assert_eq!(streamed.len(), TEXTS.len());
    for (i, (got, want)) in streamed.iter().zip(&http).enumerate() {
        assert!(
            max_abs_diff(got, want) < 1e-5,
            "stream answer {i} out of order or wrong"
        );
    }
}

/// Ids and offsets equal HTTP `/tokenize`'s; decoding them equals HTTP `/decode`'s text.
#[tokio::test]
async fn tokenize_and_decode_match_http_and_round_trip() {
    let (server, channel) = spawn_grpc(&[]).await;
    let mut client = TokenizeClient::new(channel);
    let text = TEXTS[0];
    let http: Value = server
        .client
        .post(server.url("/tokenize"))
        .json(&json!({"inputs": text, "add_special_tokens": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tokens = client
        .tokenize(EncodeRequest {
            inputs: text.into(),
            add_special_tokens: true,
            prompt_name: None,
        })
        .await
        .unwrap()
        .into_inner()
        .tokens;
    let http_ids: Vec<u64> = http[0]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_u64().unwrap())
        .collect();
    let ids: Vec<u32> = tokens.iter().map(|t| t.id).collect();
    assert_eq!(ids.iter().map(|&i| i as u64).collect::<Vec<_>>(), http_ids);
    assert!(tokens.first().unwrap().special, "[CLS] first");
    assert_eq!(
        tokens[1].start,
        http[0][1]["start"].as_u64().map(|s| s as u32)
    );

    let decoded = client
        .decode(DecodeRequest {
            ids: ids.clone(),
            skip_special_tokens: true,
        })
        .await
        .unwrap()
        .into_inner()
        .text;
    let http_text: Value = server
        .client
        .post(server.url("/decode"))
        .json(&json!({"ids": ids, "skip_special_tokens": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(decoded, http_text[0].as_str().unwrap());
    assert!(!decoded.is_empty());

    // Streams answer in order: each text's tokens, then its decoded text.
    let requests = TEXTS.map(|t| EncodeRequest {
        inputs: t.into(),
        add_special_tokens: false,
        prompt_name: None,
    });
    let mut answers = client
        .tokenize_stream(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    let mut lists = Vec::new();
    while let Some(answer) = answers.message().await.unwrap() {
        lists.push(answer.tokens.iter().map(|t| t.id).collect::<Vec<u32>>());
    }
    assert_eq!(lists.len(), TEXTS.len());
    let decode_requests: Vec<DecodeRequest> = lists
        .iter()
        .map(|ids| DecodeRequest {
            ids: ids.clone(),
            skip_special_tokens: false,
        })
        .collect();
    let mut texts = client
        .decode_stream(tokio_stream::iter(decode_requests))
        .await
        .unwrap()
        .into_inner();
    for (i, ids) in lists.iter().enumerate() {
        let text = texts
            .message()
            .await
            .unwrap()
            .expect("one answer per message")
            .text;
        let one = client
            .decode(DecodeRequest {
                ids: ids.clone(),
                skip_special_tokens: false,
            })
            .await
            .unwrap()
            .into_inner()
            .text;
        assert_eq!(text, one, "decode stream answer {i}");
    }
}

#[tokio::test]
async fn info_health_and_reflection() {
    let (server, channel) = spawn_grpc(&["--max-client-batch", "7"]).await;
    let info = InfoClient::new(channel.clone())
        .info(InfoRequest {})
        .await
        .unwrap()
        .into_inner();
    let http: Value = server
        .client
        .get(server.url("/info"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info.model_type, ModelType::Embedding as i32);
    assert_eq!(info.max_client_batch_size, 7);
    assert!(!info.model_id.is_empty());
    assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(
        Some(info.max_input_length as u64),
        http["max_input_length"].as_u64(),
        "{http}"
    );

    // Health follows readiness a moment after HTTP does: watch until SERVING, then every
    // service answers SERVING to Check.
    let mut health = HealthClient::new(channel.clone());
    let mut watch = health
        .watch(tonic_health::pb::HealthCheckRequest::default())
        .await
        .unwrap()
        .into_inner();
    while let Some(update) = watch.message().await.unwrap() {
        if update.status == ServingStatus::Serving as i32 {
            break;
        }
    }
    for service in [
        "",
        "tei.v1.Embed",
        "tei.v1.Tokenize",
        "inference.GRPCInferenceService",
    ] {
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "service {service:?}");
    }

    let mut services = reflection::list_services(channel).await;
    services.sort();
    for wanted in [
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "inference.GRPCInferenceService",
        "tei.v1.Embed",
        "tei.v1.Info",
        "tei.v1.Predict",
        "tei.v1.Rerank",
        "tei.v1.Tokenize",
    ] {
        assert!(
            services.iter().any(|s| s == wanted),
            "{wanted} not in {services:?}"
        );
    }
}

mod reflection {
    use tonic::transport::Channel;
    use tonic_reflection::pb::v1::{
        server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        ServerReflectionRequest,
    };

    /// The service names the reflection service lists.
    pub async fn list_services(channel: Channel) -> Vec<String> {
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut answers = ServerReflectionClient::new(channel)
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .unwrap()
            .into_inner();
        let answer = answers.message().await.unwrap().expect("one answer");
        match answer.message_response {
            Some(MessageResponse::ListServicesResponse(list)) => {
                list.service.into_iter().map(|s| s.name).collect()
            }
            other => panic!("expected a service list, got {other:?}"),
        }
    }
}

/// A reranker's `Rerank` and `Predict` equal HTTP `/rerank` and `/predict` (raw scores, the
/// same pairs). Sharp: the texts score differently (checked), so a rank in the wrong order or
/// against the wrong text fails.
#[tokio::test]
async fn rerank_and_predict_on_a_reranker_match_http() {
    use inferd::grpc::proto::tei::v1::{
        predict_client::PredictClient, rerank_client::RerankClient, PredictPairRequest,
        RerankRequest,
    };
    let server = crate::rerank::serve("bert-reranker", &["--grpc-listen", "127.0.0.1:0"]).await;
    let channel = connect(server.grpc_addr().await).await;
    let (query, texts) = (
        "what is a fox",
        vec![TEXTS[0].to_string(), TEXTS[1].to_string()],
    );
    let (status, http) = server
        .post_json(
            "/rerank",
            json!({"query": query, "texts": texts, "raw_scores": true}),
        )
        .await;
    assert_eq!(status, 200, "{http}");
    let answer = RerankClient::new(channel.clone())
        .rerank(RerankRequest {
            query: query.into(),
            texts: texts.clone(),
            truncate: true,
            raw_scores: true,
            return_text: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.ranks.len(), 2);
    let http_ranks = http.as_array().unwrap();
    let (a, b) = (&http_ranks[0], &http_ranks[1]);
    assert!((a["score"].as_f64().unwrap() - b["score"].as_f64().unwrap()).abs() > 1e-4);
    for (got, want) in answer.ranks.iter().zip(http_ranks) {
        assert_eq!(got.index as u64, want["index"].as_u64().unwrap());
        assert!((got.score as f64 - want["score"].as_f64().unwrap()).abs() < 1e-4);
        assert_eq!(
            got.text.as_deref(),
            Some(texts[got.index as usize].as_str())
        );
    }

    let predicted = PredictClient::new(channel)
        .predict_pair(PredictPairRequest {
            inputs: vec![query.into(), texts[0].clone()],
            truncate: true,
            raw_scores: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let index0 = http_ranks.iter().find(|r| r["index"] == 0).unwrap();
    assert!(
        (predicted.predictions[0].score as f64 - index0["score"].as_f64().unwrap()).abs() < 1e-4
    );
}
