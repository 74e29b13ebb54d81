//! A fault-injecting stand-in for inferd: raw HTTP/1.1 over tokio TCP, one request per
//! connection, answering each request with the next scripted [`Action`] (`Ok` once the script
//! runs out). Raw TCP rather than axum so that it can misbehave at the socket level: close
//! without answering, or cut a response short.

#![allow(dead_code)] // each test binary uses a different part

use std::{
    collections::VecDeque,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

#[derive(Debug, Clone)]
pub enum Action {
    /// 200 with a valid /infer body.
    Ok,
    /// An inferd-style JSON error.
    Status {
        status: u16,
        code: &'static str,
        retry_after: Option<u64>,
    },
    /// Waits, then does the inner action.
    Delay(Duration, Box<Action>),
    /// Reads the request and closes the connection without a byte of answer.
    Reset,
    /// Sends the 200 headers and half the body, then closes the connection.
    Truncate,
}

impl Action {
    pub fn status(status: u16, code: &'static str) -> Self {
        Self::Status {
            status,
            code,
            retry_after: None,
        }
    }

    pub fn retry_after(status: u16, code: &'static str, secs: u64) -> Self {
        Self::Status {
            status,
            code,
            retry_after: Some(secs),
        }
    }

    pub fn delay(by: Duration, then: Action) -> Self {
        Self::Delay(by, Box::new(then))
    }
}

pub const OK_BODY: &str = r#"{"model":"fake","version":"1","dimensions":2,"embeddings":[[0.6,0.8]],"usage":{"prompt_tokens":3}}"#;

pub struct FaultServer {
    pub addr: std::net::SocketAddr,
    script: Arc<Mutex<VecDeque<Action>>>,
    hits: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultServer {
    pub async fn start(script: impl IntoIterator<Item = Action>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let script = Arc::new(Mutex::new(script.into_iter().collect::<VecDeque<_>>()));
        let hits = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn({
            let (script, hits, requests) = (script.clone(), hits.clone(), requests.clone());
            async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    let (script, hits, requests) = (script.clone(), hits.clone(), requests.clone());
                    tokio::spawn(async move {
                        let Some(request) = read_request(&stream).await else {
                            return;
                        };
                        hits.fetch_add(1, Ordering::SeqCst);
                        requests.lock().unwrap().push(request);
                        let action = script.lock().unwrap().pop_front().unwrap_or(Action::Ok);
                        respond(stream, action).await;
                    });
                }
            }
        });
        Self {
            addr,
            script,
            hits,
            requests,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests received (complete ones).
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Raw text (head and body) of every request received.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    pub fn push(&self, actions: impl IntoIterator<Item = Action>) {
        self.script.lock().unwrap().extend(actions);
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one request (head and `Content-Length` body); `None` if the peer went away.
async fn read_request(stream: &TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let length = head
                .lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                return Some(String::from_utf8_lossy(&buf[..end + 4 + length]).to_string());
            }
        }
        stream.readable().await.ok()?;
        match stream.try_read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => return None,
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

async fn respond(mut stream: TcpStream, action: Action) {
    let mut action = action;
    while let Action::Delay(by, then) = action {
        tokio::time::sleep(by).await;
        action = *then;
    }
    let bytes = match action {
        Action::Ok => http(200, "OK", OK_BODY, None),
        Action::Status {
            status,
            code,
            retry_after,
        } => {
            let body = format!(r#"{{"error":"injected {code}","code":"{code}"}}"#);
            http(status, "Injected", &body, retry_after)
        }
        Action::Reset => {
            drop(stream);
            return;
        }
        Action::Truncate => {
            let full = http(200, "OK", OK_BODY, None);
            let cut = full.len() - OK_BODY.len() / 2;
            let _ = stream.write_all(&full.as_bytes()[..cut]).await;
            let _ = stream.flush().await;
            drop(stream);
            return;
        }
        Action::Delay(..) => unreachable!(),
    };
    let _ = stream.write_all(bytes.as_bytes()).await;
    let _ = stream.shutdown().await;
    // Drain what the client may still send so the close is clean.
    let mut sink = [0u8; 1024];
    let _ = tokio::time::timeout(Duration::from_millis(100), stream.read(&mut sink)).await;
}

fn http(status: u16, reason: &str, body: &str, retry_after: Option<u64>) -> String {
    let retry = retry_after
        .map(|s| format!("Retry-After: {s}\r\n"))
        .unwrap_or_default();
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{retry}Connection: close\r\n\r\n{body}",
        body.len()
    )
}
