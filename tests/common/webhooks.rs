//! A webhook receiver on 127.0.0.1:0 that records every delivery (headers and body) and answers
//! as told: 200, 500, or never (a receiver that hangs). Signatures are checked here with an
//! HMAC computed from the Standard Webhooks definition, independently of the server's code.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::post,
    Router,
};
use base64::{engine::general_purpose::STANDARD, Engine};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// A secret in the `whsec_` format, as an operator would generate it.
pub const SECRET: &str = "whsec_dGVzdC1zZWNyZXQtZm9yLWluZmVyZC13ZWJob29rcw==";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Ok,
    Fail,
    Hang,
}

#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: String,
}

impl Delivery {
    pub fn event(&self) -> Value {
        serde_json::from_str(&self.body).expect("a delivery body is JSON")
    }

    /// Whether `webhook-signature` is `v1,` + base64 HMAC-SHA256 of `id.timestamp.body` under
    /// the secret's decoded bytes.
    pub fn signed_with(&self, secret: &str) -> bool {
        let key = STANDARD
            .decode(secret.trim_start_matches("whsec_"))
            .unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
        mac.update(format!("{}.{}.{}", self.id, self.timestamp, self.body).as_bytes());
        let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
        self.signature.split(' ').any(|s| s == expected)
    }
}

#[derive(Clone)]
struct Shared {
    answer: Answer,
    seen: Arc<Mutex<Vec<Delivery>>>,
}

pub struct Receiver {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Delivery>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub async fn start(answer: Answer) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let shared = Shared {
            answer,
            seen: Arc::clone(&seen),
        };
        let app = Router::new()
            .route("/hooks", post(receive))
            .with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { addr, seen, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hooks", self.addr)
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits (up to a minute) until `n` deliveries arrived.
    pub async fn wait_for(&self, n: usize) -> Vec<Delivery> {
        for _ in 0..600 {
            let seen = self.deliveries();
            if seen.len() >= n {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "only {} of {n} webhook deliveries arrived",
            self.deliveries().len()
        );
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    shared.seen.lock().unwrap().push(Delivery {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    match shared.answer {
        Answer::Ok => StatusCode::OK,
        Answer::Fail => StatusCode::INTERNAL_SERVER_ERROR,
        Answer::Hang => {
            std::future::pending::<()>().await;
            unreachable!()
        }
    }
}

/// Writes [`SECRET`] to a file for `--webhook-secret-file`.
pub fn secret_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("webhook.secret");
    std::fs::write(&path, SECRET).unwrap();
    path
}
