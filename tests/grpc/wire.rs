//! What arrives on the wire, not through a well-behaved stub: bytes that are not the method's
//! protobuf message, messages over `--max-body-bytes`, streams the client abandons half-way and a
//! client that never reads its answers. Each gets its status, the server does no work for a
//! caller that left, and it keeps serving everyone else.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use http::uri::PathAndQuery;
use inferd::grpc::proto::tei::v1::{embed_client::EmbedClient, EmbedRequest};
use prost::bytes::{Buf, BufMut};
use tonic::{
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    transport::{Channel, Endpoint},
    Code, Request, Status,
};

use super::{embed_request, spawn_grpc};
use crate::common::TestServer;

/// Sends its bytes as the message verbatim and reads answers as bytes: a client that can send
/// what no generated stub would.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

/// `bytes` sent as the one message of a unary call to `path`.
async fn raw_unary(
    channel: &Channel,
    path: &'static str,
    bytes: Vec<u8>,
) -> Result<Vec<u8>, Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.expect("channel ready");
    grpc.unary(
        Request::new(bytes),
        PathAndQuery::from_static(path),
        RawCodec,
    )
    .await
    .map(tonic::Response::into_inner)
}

/// Sharp both ways: a well-formed message over the same raw path is answered (so the refusals
/// below are about the bytes), and field 1 with wire type 7 (no such type) is refused as the
/// caller's fault on both services, where tonic's own codec says INTERNAL.
#[tokio::test]
async fn bytes_that_are_not_the_message_are_invalid_argument() {
    let (_server, channel) = spawn_grpc(&[]).await;
    let good = prost::Message::encode_to_vec(&embed_request("fine"));
    assert!(raw_unary(&channel, "/tei.v1.Embed/Embed", good)
        .await
        .is_ok());

    let garbage = vec![0x0f, 0xff, 0xff, 0xff];
    for path in [
        "/tei.v1.Embed/Embed",
        "/inference.GRPCInferenceService/ModelInfer",
    ] {
        let refused = raw_unary(&channel, path, garbage.clone())
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{path}: {refused:?}");
        assert!(
            refused.message().starts_with("malformed request message"),
            "{refused:?}"
        );
    }
    // A truncated message (a length-delimited field longer than what follows) too.
    let truncated = vec![0x0a, 0x40, b'h', b'i'];
    let refused = raw_unary(&channel, "/tei.v1.Embed/Embed", truncated)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");

    let mut embed = EmbedClient::new(channel);
    assert!(embed.embed(embed_request("still serving")).await.is_ok());
}

/// `--max-body-bytes 4096`: a 3 KB text is served, a 6 KB one is RESOURCE_EXHAUSTED (as the
/// gRPC guide says; tonic alone says OUT_OF_RANGE), in a unary call and inside a stream, where
/// the answers before it arrive first.
#[tokio::test]
async fn messages_over_the_size_limit_are_resource_exhausted() {
    let (_server, channel) = spawn_grpc(&["--max-body-bytes", "4096"]).await;
    let mut embed = EmbedClient::new(channel);
    let text = |bytes: usize| embed_request(&"word ".repeat(bytes / 5));
    assert!(embed.embed(text(3000)).await.is_ok(), "under the limit");

    let refused = embed.embed(text(6000)).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused.message().contains("4096"),
        "the limit is named: {refused:?}"
    );

    let mut answers = embed
        .embed_stream(tokio_stream::iter([embed_request("fine"), text(6000)]))
        .await
        .unwrap()
        .into_inner();
    assert!(answers.message().await.unwrap().is_some());
    let refused = answers.message().await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");

    assert!(embed.embed(embed_request("still serving")).await.is_ok());
}

async fn client_gone(server: &TestServer) -> f64 {
    server
        .metric(
            "inferd_requests_rejected_total",
            &[r#"reason="client_gone""#],
        )
        .await
}

/// One batch at a time, each held 300 ms: a stream sends 8 messages and is dropped after the
/// first answer. The messages still queued are dropped unanswered (`client_gone`), not computed:
/// fewer than 8 sequences reach the model, and the next caller is served.
#[tokio::test]
async fn a_stream_cancelled_mid_way_leaves_no_work_behind() {
    let (server, channel) =
        spawn_grpc(&["--debug-batch-delay", "300ms", "--max-batch-requests", "1"]).await;
    let messages: Vec<EmbedRequest> = (0..8).map(|i| embed_request(&format!("m{i}"))).collect();
    let mut embed = EmbedClient::new(channel.clone());
    let mut answers = embed
        .embed_stream(tokio_stream::iter(messages))
        .await
        .unwrap()
        .into_inner();
    assert!(answers.message().await.unwrap().is_some());
    drop(answers);

    // The batch in the worker when the client left finishes; nothing queued after it runs.
    let mut gone = 0.0;
    for _ in 0..50 {
        gone = client_gone(&server).await;
        if gone >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        gone >= 1.0,
        "queued messages of the cancelled stream were computed"
    );
    tokio::time::sleep(Duration::from_millis(900)).await;
    let computed = server.metric("inferd_batch_size_sum", &[]).await;
    assert!(
        computed < 8.0,
        "{computed} of 8 messages computed after the cancel"
    );
    assert!(embed.embed(embed_request("next caller")).await.is_ok());
}

/// A client that sends 20,000 messages on one stream and never reads an answer, with a 64 KiB
/// stream window: the server stops reading its messages once its window of answers is full, so
/// the work done stops far short of 20,000 (an unbounded server computes them all), while other
/// callers are served. Closing the stream releases everything.
#[tokio::test]
async fn a_client_that_never_reads_is_held_back_and_others_are_served() {
    const SENT: usize = 20_000;
    let (server, _) = spawn_grpc(&[]).await;
    let addr = server.grpc_addr().await;
    let stalled = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .initial_stream_window_size(65_535)
        .initial_connection_window_size(65_535)
        .connect()
        .await
        .unwrap();
    let pulled = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&pulled);
    let outbound = tokio_stream::iter((0..SENT).map(move |i| {
        counter.fetch_add(1, Ordering::Relaxed);
        // ~200 bytes: 20,000 of them are over the server's 1 MiB receive window.
        embed_request(&format!("never read {i} {}", "padding ".repeat(24)))
    }));
    let answers = EmbedClient::new(stalled)
        .embed_stream(outbound)
        .await
        .unwrap()
        .into_inner();

    // Wait until the server's work stops growing: it must stop well before 20,000.
    let embedded = || server.metric("inferd_embeddings_total", &[]);
    let mut last = -1.0;
    for _ in 0..120 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = embedded().await;
        if now > 0.0 && now == last {
            break;
        }
        last = now;
    }
    assert!(last > 0.0, "the stream was served at all");
    assert!(
        last < (SENT / 2) as f64,
        "{last} of {SENT} messages computed for a client that reads nothing"
    );

    let mut other = EmbedClient::new(super::connect(addr).await);
    assert!(other.embed(embed_request("another caller")).await.is_ok());
    drop(answers);
    assert!(other.embed(embed_request("after the close")).await.is_ok());
    assert!(
        pulled.load(Ordering::Relaxed) < SENT,
        "the client was held back too"
    );
}
