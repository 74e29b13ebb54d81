//! Status codes from the spawned server: each bad call gets its code and the server keeps
//! serving.

use std::io::Write;

use inferd::grpc::proto::tei::v1::{
    embed_client::EmbedClient, rerank_client::RerankClient, DecodeRequest, EmbedAllRequest,
    EmbedRequest, EmbedSparseRequest, EncodeRequest, RerankRequest,
};
use tonic::{Code, Request};

use super::{embed_request, spawn_grpc};

#[tokio::test]
async fn bad_inputs_get_their_codes_and_the_server_keeps_serving() {
    let (_server, channel) = spawn_grpc(&[]).await;
    let mut embed = EmbedClient::new(channel.clone());

    let empty = embed.embed(EmbedRequest::default()).await.unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument, "{empty:?}");
    assert!(empty.message().contains("empty"), "{empty:?}");

    // A text over the model's limit with truncate = false is refused, not cut.
    let long = EmbedRequest {
        inputs: "word ".repeat(5000),
        truncate: false,
        ..Default::default()
    };
    let too_long = embed.embed(long).await.unwrap_err();
    assert_eq!(too_long.code(), Code::InvalidArgument, "{too_long:?}");

    let sparse = embed
        .embed_sparse(EmbedSparseRequest {
            inputs: "x".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(sparse.code(), Code::Unimplemented);
    let all = embed
        .embed_all(EmbedAllRequest {
            inputs: "x".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(all.code(), Code::Unimplemented);

    let mut rerank = RerankClient::new(channel.clone());
    let wrong_kind = rerank
        .rerank(RerankRequest {
            query: "q".into(),
            texts: vec!["a".into()],
            truncate: true,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        wrong_kind.code(),
        Code::FailedPrecondition,
        "{wrong_kind:?}"
    );

    let mut tokenize =
        inferd::grpc::proto::tei::v1::tokenize_client::TokenizeClient::new(channel.clone());
    let no_text = tokenize
        .tokenize(EncodeRequest::default())
        .await
        .unwrap_err();
    assert_eq!(no_text.code(), Code::InvalidArgument);
    let no_ids = tokenize.decode(DecodeRequest::default()).await.unwrap_err();
    assert_eq!(no_ids.code(), Code::InvalidArgument);

    // A stream with a bad message answers the good ones before it, then ends with its code.
    let messages = [embed_request("fine"), EmbedRequest::default()];
    let mut answers = embed
        .embed_stream(tokio_stream::iter(messages))
        .await
        .unwrap()
        .into_inner();
    assert!(answers.message().await.unwrap().is_some());
    assert_eq!(
        answers.message().await.unwrap_err().code(),
        Code::InvalidArgument
    );

    assert!(embed.embed(embed_request("still serving")).await.is_ok());
}

#[tokio::test]
async fn api_keys_apply_to_grpc_calls_but_not_health() {
    let mut keys = tempfile::NamedTempFile::new().unwrap();
    writeln!(keys, "alice:alice-secret").unwrap();
    let (_server, channel) = spawn_grpc(&["--api-key-file", keys.path().to_str().unwrap()]).await;
    let mut embed = EmbedClient::new(channel.clone());

    let missing = embed.embed(embed_request("hi")).await.unwrap_err();
    assert_eq!(missing.code(), Code::Unauthenticated, "{missing:?}");

    let mut wrong = Request::new(embed_request("hi"));
    wrong
        .metadata_mut()
        .insert("authorization", "Bearer nope".parse().unwrap());
    assert_eq!(
        embed.embed(wrong).await.unwrap_err().code(),
        Code::Unauthenticated
    );

    let mut right = Request::new(embed_request("hi"));
    right
        .metadata_mut()
        .insert("authorization", "Bearer alice-secret".parse().unwrap());
    assert!(!embed
        .embed(right)
        .await
        .unwrap()
        .into_inner()
        .embeddings
        .is_empty());

    let health = tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await;
    assert!(health.is_ok(), "health needs no key: {health:?}");
}
