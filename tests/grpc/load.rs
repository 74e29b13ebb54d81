//! The gRPC listener under load and at shutdown: a full admission queue answers
//! RESOURCE_EXHAUSTED (with `retry-after`) for the excess and nothing else fails; after SIGTERM
//! health turns NOT_SERVING while an open stream keeps being answered to its end.

use std::time::Duration;

use inferd::grpc::proto::tei::v1::{embed_client::EmbedClient, EmbedRequest};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use tonic_health::pb::{
    health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
};

use super::{embed_request, spawn_grpc};

/// 200 concurrent unary calls against a queue of 8 (each batch slowed to 50 ms): every call is
/// answered OK or RESOURCE_EXHAUSTED, both happen, and the server serves afterwards.
#[tokio::test]
async fn a_full_queue_answers_resource_exhausted_for_the_excess_only() {
    let (_server, channel) =
        spawn_grpc(&["--max-queue-requests", "8", "--debug-batch-delay", "50ms"]).await;
    let calls: Vec<_> = (0..200)
        .map(|i| {
            let mut client = EmbedClient::new(channel.clone());
            tokio::spawn(async move { client.embed(embed_request(&format!("text {i}"))).await })
        })
        .collect();
    let (mut ok, mut exhausted) = (0, 0);
    for call in calls {
        match call.await.unwrap() {
            Ok(answer) => {
                assert!(!answer.into_inner().embeddings.is_empty());
                ok += 1;
            }
            Err(status) if status.code() == Code::ResourceExhausted => {
                let retry = status.metadata().get("retry-after");
                assert!(retry.is_some(), "no retry-after: {status:?}");
                exhausted += 1;
            }
            Err(status) => panic!("only OK or RESOURCE_EXHAUSTED, got {status:?}"),
        }
    }
    assert!(ok >= 8, "the queue's 8 places must be served: {ok} OK");
    assert!(
        exhausted > 0,
        "200 calls against 8 places: {ok} OK, none refused"
    );
    let mut client = EmbedClient::new(channel);
    assert!(client.embed(embed_request("after")).await.is_ok());
}

/// SIGTERM with a lame-duck delay: health reads NOT_SERVING while a stream opened before it
/// keeps getting every answer, and the process then exits cleanly.
#[tokio::test]
async fn after_sigterm_health_is_not_serving_while_open_streams_finish() {
    let (mut server, channel) = spawn_grpc(&["--drain-delay", "2s"]).await;
    let (tx, rx) = mpsc::channel::<EmbedRequest>(4);
    let mut answers = EmbedClient::new(channel.clone())
        .embed_stream(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    tx.send(embed_request("before")).await.unwrap();
    assert!(answers.message().await.unwrap().is_some());

    server.sigterm();
    let mut health = HealthClient::new(channel);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status = health
            .check(HealthCheckRequest::default())
            .await
            .unwrap()
            .into_inner()
            .status;
        if status == ServingStatus::NotServing as i32 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "health never turned");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for i in 0..3 {
        tx.send(embed_request(&format!("during the drain {i}")))
            .await
            .unwrap();
        let answer = answers.message().await.unwrap();
        assert!(
            answer.is_some_and(|a| !a.embeddings.is_empty()),
            "message {i}"
        );
    }
    drop(tx);
    assert!(
        answers.message().await.unwrap().is_none(),
        "the stream ends cleanly"
    );
    assert!(
        server.wait_exit(Duration::from_secs(30)).await,
        "non-zero exit after a clean drain; logs:\n{}",
        server.logs()
    );
}
