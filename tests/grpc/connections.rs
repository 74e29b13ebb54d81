//! The gRPC listener's connection bounds: a socket that never sends its HTTP/2 preface is closed
//! after `--header-read-timeout`; beyond `--max-connections` a new connection is refused, and a
//! slot frees as soon as a connection closes. Bounds are generous; nothing asserts speed.

use std::time::Duration;

use inferd::grpc::proto::tei::v1::{
    embed_client::EmbedClient, info_client::InfoClient, InfoRequest,
};
use tokio::{io::AsyncReadExt, net::TcpStream};
use tonic::transport::Channel;

use super::connect;
use crate::common::spawn_tiny_with;

/// Far past the 1 s timeout set below.
const BOUND: Duration = Duration::from_secs(30);

/// Whether a fresh channel to `addr` can make a call.
async fn served(addr: std::net::SocketAddr) -> Option<Channel> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5))
        .connect()
        .await
        .ok()?;
    let mut info = InfoClient::new(channel.clone());
    info.info(InfoRequest {}).await.ok().map(|_| channel)
}

#[tokio::test]
async fn silent_sockets_are_closed_and_the_connection_limit_holds() {
    let server = spawn_tiny_with(&[
        "--grpc-listen",
        "127.0.0.1:0",
        "--max-connections",
        "3",
        "--header-read-timeout",
        "1s",
    ])
    .await;
    let addr = server.grpc_addr().await;

    let mut silent = TcpStream::connect(addr).await.unwrap();
    let mut seen = Vec::new();
    let closed = tokio::time::timeout(BOUND, silent.read_to_end(&mut seen)).await;
    assert!(closed.is_ok(), "a silent gRPC connection stayed open");

    // Three working connections hold every slot...
    let mut held = Vec::new();
    for _ in 0..3 {
        let channel = connect(addr).await;
        EmbedClient::new(channel.clone())
            .embed(super::embed_request("hold a slot"))
            .await
            .expect("served within the limit");
        held.push(channel);
    }
    // ...so a fourth is refused...
    assert!(
        served(addr).await.is_none(),
        "a connection beyond --max-connections 3 was served"
    );
    // ...until one of them leaves.
    drop(held.pop());
    let deadline = tokio::time::Instant::now() + BOUND;
    while served(addr).await.is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no slot freed after a connection closed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The held ones still work.
    for channel in held {
        EmbedClient::new(channel)
            .embed(super::embed_request("still held"))
            .await
            .expect("held connections keep working");
    }
}
