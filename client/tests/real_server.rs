//! The client against a real inferd serving a tiny random BERT.
//!
//! The server runs in this test process through `inferd::serve` (the same entry point the
//! binary calls, configured by the same command-line parser) on 127.0.0.1:0. That is more
//! robust than spawning `target/debug/inferd`: cargo builds the library as a dev-dependency, so
//! there is no binary to locate (`CARGO_BIN_EXE_*` exists only for a package's own binaries),
//! no stale binary to run, no nested `cargo build` contending for the build lock, and any
//! `CARGO_TARGET_DIR` works. The binary's own black-box tests live in the root crate.

#[path = "../../tests/common/tiny_model.rs"]
#[allow(dead_code)]
mod tiny_model;

use std::{
    io::Write,
    net::SocketAddr,
    time::{Duration, Instant},
};

use clap::Parser;
use inferd::cli::{Cli, Command};
use inferd_client::{BreakerConfig, Client, EmbedRequest, Error, RetryPolicy};
use tokio::sync::oneshot;

struct Server {
    addr: SocketAddr,
    _stop: oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

impl Server {
    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

async fn serve(extra: &[&str]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    tiny_model::write(dir.path());
    let mut args = vec![
        "inferd",
        "serve",
        "--model",
        dir.path().to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--tokenizer-workers",
        "1",
        // Tests run side by side: no fixed gRPC port (this client speaks HTTP only).
        "--grpc-listen",
        "off",
    ];
    args.extend_from_slice(extra);
    let Command::Serve(config) = Cli::try_parse_from(args).unwrap().command else {
        unreachable!("`serve` parses as serve")
    };
    config.validate().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    // Its own runtime on its own thread, as in the binary; it stops when `Server` drops.
    let listener = listener.into_std().unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let served = inferd::serve(*config, listener, async move {
                let _ = stopped.await;
            })
            .await;
            if let Err(err) = served {
                eprintln!("inferd::serve failed: {err:#}");
            }
        });
    });
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let ready = http.get(format!("http://{addr}/readyz")).send().await;
        if ready.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "inferd not ready after 120 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Server {
        addr,
        _stop: stop,
        _dir: dir,
    }
}

#[tokio::test]
async fn embeds_against_a_real_server() {
    let server = serve(&[]).await;
    let client = Client::builder(server.url()).build().unwrap();
    let response = client
        .embed(&EmbedRequest::new(["hello world", "a b"]))
        .await
        .unwrap();
    assert_eq!(response.dimensions, tiny_model::HIDDEN);
    assert_eq!(response.embeddings.len(), 2);
    let norm: f32 = response.embeddings[0]
        .iter()
        .map(|x| x * x)
        .sum::<f32>()
        .sqrt();
    assert!((norm - 1.0).abs() < 1e-4);
    let raw = client
        .embed(&EmbedRequest::new("hello world").normalize(false))
        .await
        .unwrap();
    let norm: f32 = raw.embeddings[0].iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() > 1e-3);
    assert_eq!(
        client.embed_one("hello").await.unwrap().len(),
        tiny_model::HIDDEN
    );

    // The server's typed errors come through with their codes, and are not retried.
    let err = client
        .embed(&EmbedRequest::new(vec![""]))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(422));
    assert_eq!(err.code(), Some("invalid_input"));
    let err = client
        .embed(&EmbedRequest::new("x").model("nope"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("model_not_found"));
}

#[tokio::test]
async fn api_keys_and_rate_limits_end_to_end() {
    let mut keys = tempfile::NamedTempFile::new().unwrap();
    writeln!(keys, "svc:svc-secret").unwrap();
    let server = serve(&[
        "--api-key-file",
        keys.path().to_str().unwrap(),
        "--rate-limit",
        "1",
        "--rate-limit-burst",
        "1",
    ])
    .await;

    let anonymous = Client::builder(server.url()).build().unwrap();
    let err = anonymous.embed_one("hello").await.unwrap_err();
    assert_eq!(err.code(), Some("unauthorized"));
    assert!(matches!(err, Error::Api { status: 401, .. }));

    // 1 request/s with a burst of 1: the second call is refused with 429 and Retry-After: 1,
    // which the client waits out before retrying.
    let client = Client::builder(server.url())
        .api_key("svc-secret")
        .retry(RetryPolicy {
            max_attempts: 3,
            ..RetryPolicy::default()
        })
        .breaker(BreakerConfig::default())
        .build()
        .unwrap();
    client.embed_one("first").await.unwrap();
    let started = Instant::now();
    client.embed_one("second").await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "the retry came after {:?}",
        started.elapsed()
    );

    // Without retries the 429 surfaces with its code; it is not a server failure.
    let impatient = Client::builder(server.url())
        .api_key("svc-secret")
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let err = impatient.embed_one("third").await.unwrap_err();
    assert_eq!(err.code(), Some("rate_limited"));
    assert!(matches!(
        err,
        Error::Api {
            status: 429,
            retry_after: Some(_),
            ..
        }
    ));
    assert!(!err.is_server_failure());
}
