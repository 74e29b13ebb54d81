//! Connection hygiene, black-box over raw sockets: a client that never finishes its headers,
//! one that never finishes its body, idle keep-alives and a listener full of idle connections
//! cannot hold the service. Every bound below is generous (the timeouts are 1 s); the tests
//! assert what happens, never how fast.

mod crowd;
mod tls;

use std::time::Duration;

use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::common::{spawn_tiny_with, TestServer};

/// Far longer than any timeout these tests set: a connection still open after it was not closed.
const BOUND: Duration = Duration::from_secs(30);

/// Everything the server sends until it closes the connection; `None` if still open after
/// [`BOUND`]. A reset counts as closed.
async fn read_until_closed(stream: &mut TcpStream) -> Option<String> {
    let mut seen = Vec::new();
    let read = tokio::time::timeout(BOUND, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok()
        .map(|()| String::from_utf8_lossy(&seen).into_owned())
}

/// Reads one response head (through its blank line) from a kept-alive connection.
async fn read_head(stream: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !seen.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(BOUND, stream.read(&mut byte))
            .await
            .expect("a response head")
            .unwrap();
        assert!(
            n == 1,
            "closed mid-head: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.push(byte[0]);
    }
    String::from_utf8_lossy(&seen).into_owned()
}

async fn connect(server: &TestServer) -> TcpStream {
    TcpStream::connect(server.addr).await.unwrap()
}

/// `n` keep-alive connections, each served one `/livez`, left idle.
async fn kept_alive(server: &TestServer, n: usize) -> Vec<TcpStream> {
    let mut kept = Vec::new();
    for _ in 0..n {
        let mut stream = connect(server).await;
        stream
            .write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert!(read_head(&mut stream).await.starts_with("HTTP/1.1 200"));
        kept.push(stream);
    }
    kept
}

/// A client without a connection pool: every call opens a new connection.
fn fresh() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

#[tokio::test]
async fn headers_that_never_finish_are_cut_off() {
    let server = spawn_tiny_with(&["--header-read-timeout", "1s"]).await;
    let mut stream = connect(&server).await;
    stream
        .write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // Slowloris: one more header line every 200 ms, never the blank line that ends them.
    let (mut read, mut write) = stream.into_split();
    let drip = tokio::spawn(async move {
        for i in 0.. {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if write
                .write_all(format!("X-Drip-{i}: y\r\n").as_bytes())
                .await
                .is_err()
            {
                return;
            }
        }
    });
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(BOUND, async {
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    drip.abort();
    assert!(
        closed.is_ok(),
        "a never-ending header block kept its connection"
    );
    // The service is fine.
    assert_eq!(server.get_json("/readyz").await.0, 200);
}

#[tokio::test]
async fn a_stalled_body_is_answered_408_and_closed() {
    let server = spawn_tiny_with(&["--body-read-timeout", "1s"]).await;
    let mut stream = connect(&server).await;
    stream
        .write_all(
            b"POST /infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"inputs\": ",
        )
        .await
        .unwrap();
    let seen = read_until_closed(&mut stream)
        .await
        .expect("a body that never arrives kept its connection");
    assert!(seen.starts_with("HTTP/1.1 408"), "{seen}");
    assert!(seen.contains("\"code\":\"body_timeout\""), "{seen}");
}

#[tokio::test]
async fn an_endless_chunked_body_is_cut_off() {
    let server = spawn_tiny_with(&["--body-read-timeout", "1s"]).await;
    let stream = connect(&server).await;
    let (mut read, mut write) = stream.into_split();
    write
        .write_all(
            b"POST /infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Transfer-Encoding: chunked\r\n\r\n",
        )
        .await
        .unwrap();
    // A chunk every 100 ms, forever: never idle, never finished.
    let feed = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if write.write_all(b"1\r\n \r\n").await.is_err() {
                return;
            }
        }
    });
    let mut seen = Vec::new();
    let closed = tokio::time::timeout(BOUND, async {
        let mut buf = [0u8; 1024];
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    feed.abort();
    assert!(closed.is_ok(), "an endless body kept its connection");
    // The close may reset the socket before the answer is read; whatever arrived is a 408.
    let seen = String::from_utf8_lossy(&seen);
    assert!(
        seen.is_empty() || seen.starts_with("HTTP/1.1 408"),
        "{seen}"
    );
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let server = spawn_tiny_with(&["--idle-timeout", "1s"]).await;
    // A kept-alive connection after its answer...
    let mut kept = connect(&server).await;
    kept.write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let seen = read_until_closed(&mut kept)
        .await
        .expect("an idle keep-alive stayed open");
    assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
    // ...and one that never sends a byte.
    let mut silent = connect(&server).await;
    let seen = read_until_closed(&mut silent)
        .await
        .expect("a silent connection stayed open");
    assert!(seen.is_empty(), "{seen}");
}

#[tokio::test]
async fn a_full_listener_still_answers_probes_and_recovers() {
    let server = spawn_tiny_with(&["--max-connections", "4"]).await;
    // Four kept-alive connections, each served once, so all four hold their place.
    let held = kept_alive(&server, 4).await;
    // A fresh client per call: each call is a new connection, beyond the limit.
    let ready = fresh().get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "probes must answer over the limit");
    let refused = fresh()
        .post(server.url("/infer"))
        .json(&json!({"inputs": "over the limit"}))
        .send()
        .await
        .unwrap();
    let (status, retry_after, body) = crate::common::status_retry_body(refused).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "too_many_connections", "{body}");
    assert_eq!(retry_after.as_deref(), Some("1"));

    drop(held);
    let deadline = tokio::time::Instant::now() + BOUND;
    loop {
        let r = fresh()
            .post(server.url("/infer"))
            .json(&json!({"inputs": "after the idle ones left"}))
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            break;
        }
        assert_eq!(r.status(), 503);
        assert!(
            tokio::time::Instant::now() < deadline,
            "no recovery after the idle connections closed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
