//! Test harness: spawns the real `inferd` binary on 127.0.0.1:0 and talks HTTP to it.
//!
//! Each server runs in its own process (the Prometheus recorder is process-wide, and signals
//! must be real), learns its port from the `listening` log line, and is killed on drop.

#![allow(dead_code)] // not every helper is used by every feature folder

pub mod lifecycle;
pub mod pg;
pub mod redis;
pub mod tiny_model;
pub mod webhooks;

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{mpsc, Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::Value;

pub struct TestServer {
    child: Child,
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    logs: Arc<Mutex<Vec<String>>>,
    _dir: Option<tempfile::TempDir>,
}

/// The `inferd` binary under test: this build's, or `INFERD_TEST_BIN` (e.g. a build of another
/// commit, to show a test fails there).
pub fn inferd_bin() -> PathBuf {
    std::env::var_os("INFERD_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_inferd")))
}

/// A fresh tiny random model in a temp dir.
pub fn tiny_model_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    tiny_model::write(dir.path());
    dir
}

/// Spawns a server on a tiny model and waits until it is ready.
pub async fn spawn_tiny() -> TestServer {
    spawn_tiny_with(&[]).await
}

pub async fn spawn_tiny_with(args: &[&str]) -> TestServer {
    let dir = tiny_model_dir();
    let mut server = spawn(dir.path(), args);
    server._dir = Some(dir);
    server.wait_ready().await;
    server
}

/// Spawns a server on `model` with extra flags; returns once it listens (not necessarily ready).
pub fn spawn(model: &Path, args: &[&str]) -> TestServer {
    let mut child = Command::new(inferd_bin())
        .arg("serve")
        .arg("--model")
        .arg(model)
        .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
        .args(args)
        // Tests run in parallel on small machines: one compute thread each unless asked.
        .env("INFERD_THREADS", "1")
        // A SIGTERM drains at once unless a test asks for a lame-duck `--drain-delay`.
        .env("INFERD_DRAIN_DELAY", "0s")
        // Many servers run at once: the gRPC listener only where a test asks (`--grpc-listen`).
        .env("INFERD_GRPC_LISTEN", "off")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning inferd");
    let logs = Arc::new(Mutex::new(Vec::new()));
    let (addr_tx, addr_rx) = mpsc::channel();
    collect_lines(
        child.stdout.take().unwrap(),
        Arc::clone(&logs),
        Some(addr_tx),
    );
    collect_lines(child.stderr.take().unwrap(), Arc::clone(&logs), None);
    let addr = match addr_rx.recv_timeout(Duration::from_secs(30)) {
        Ok(addr) => addr,
        Err(_) => panic!(
            "inferd did not report a listening address; logs:\n{}",
            logs.lock().unwrap().join("\n")
        ),
    };
    TestServer {
        child,
        addr,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap(),
        logs,
        _dir: None,
    }
}

fn collect_lines(
    stream: impl std::io::Read + Send + 'static,
    logs: Arc<Mutex<Vec<String>>>,
    addr_tx: Option<mpsc::Sender<SocketAddr>>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if let Some(tx) = &addr_tx {
                if let Some(addr) = listening_addr(&line) {
                    let _ = tx.send(addr);
                }
            }
            logs.lock().unwrap().push(line);
        }
    });
}

fn listening_addr(line: &str) -> Option<SocketAddr> {
    let v: Value = serde_json::from_str(line).ok()?;
    let fields = v.get("fields")?;
    if fields.get("message")?.as_str()? != "listening" {
        return None;
    }
    fields.get("addr")?.as_str()?.parse().ok()
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// The admin API's address, from its `admin listening` log line.
    pub async fn admin_addr(&self) -> SocketAddr {
        self.logged_addr("admin listening").await
    }

    /// The gRPC listener's address, from its `grpc listening` log line.
    pub async fn grpc_addr(&self) -> SocketAddr {
        self.logged_addr("grpc listening").await
    }

    /// Waits (up to 30 s) until `count` log lines have the message `message`.
    pub async fn wait_for_logs(&self, message: &str, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let seen = self
                .logs
                .lock()
                .unwrap()
                .iter()
                .filter_map(|line| serde_json::from_str::<Value>(line).ok())
                .filter(|v| v["fields"]["message"].as_str() == Some(message))
                .count();
            if seen >= count {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "fewer than {count} `{message}` lines; logs:\n{}",
            self.logs()
        );
    }

    /// The `addr` field of the first log line whose message is `message`.
    async fn logged_addr(&self, message: &str) -> SocketAddr {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let found = self.logs.lock().unwrap().iter().find_map(|line| {
                let v: Value = serde_json::from_str(line).ok()?;
                let fields = v.get("fields")?;
                (fields.get("message")?.as_str()? == message)
                    .then(|| fields.get("addr")?.as_str()?.parse().ok())?
            });
            if let Some(addr) = found {
                return addr;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no `{message}` line; logs:\n{}", self.logs());
    }

    /// Calls the admin API: `GET` when `body` is `None`, else `POST` with the JSON body.
    pub async fn admin(
        &self,
        token: Option<&str>,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!("http://{}{path}", self.admin_addr().await);
        let mut request = match body {
            Some(body) => self.client.post(url).json(&body),
            None => self.client.get(url),
        };
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let r = request.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Exits the process at once (no drain), as a crash or a node loss would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "inferd exited with {status} before ready; logs:\n{}",
                    self.logs()
                );
            }
            if let Ok(r) = self.client.get(self.url("/readyz")).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("inferd not ready after 120 s; logs:\n{}", self.logs());
    }

    /// POSTs JSON to `/infer`; returns status and parsed body.
    pub async fn infer(&self, body: Value) -> (u16, Value) {
        self.post_json("/infer", body).await
    }

    pub async fn post_json(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let r = self.client.get(self.url(path)).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn metrics(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Sum of every sample of `name` whose labels contain all of `labels` (`k="v"` pairs).
    pub async fn metric(&self, name: &str, labels: &[&str]) -> f64 {
        metric_value(&self.metrics().await, name, labels)
    }

    pub fn sigterm(&self) {
        self.signal("TERM");
    }

    /// Sends the process a signal by name (`TERM`, `HUP`, ...).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Kills the process with SIGKILL: no shutdown code runs, as in a crash.
    pub fn sigkill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Waits for the process to exit; returns whether it exited successfully.
    pub async fn wait_exit(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "inferd did not exit within {within:?}; logs:\n{}",
            self.logs()
        );
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Status, `Retry-After` and JSON body of a response.
pub async fn status_retry_body(r: reqwest::Response) -> (u16, Option<String>, Value) {
    let retry_after = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let status = r.status().as_u16();
    (status, retry_after, r.json().await.unwrap_or(Value::Null))
}

/// Parses Prometheus text: sum of samples of `name` carrying every label pair in `labels`.
pub fn metric_value(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            (metric == name && labels.iter().all(|p| rest.contains(p)))
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .sum()
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

/// A JSON array of numbers as f32s.
pub fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("a JSON array of numbers")
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

pub fn vectors(body: &Value) -> Vec<Vec<f32>> {
    body["embeddings"]
        .as_array()
        .expect("embeddings array")
        .iter()
        .map(|v| {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect()
}

/// Runs `inferd serve` expecting it to refuse to start; returns its output.
pub fn refuses(model: &str, envs: &[(&str, &str)], args: &[&str]) -> String {
    let mut cmd = Command::new(inferd_bin());
    cmd.args(["serve", "--model", model, "--listen", "127.0.0.1:0"])
        .args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success(),
        "expected a refusal, got success:\n{text}"
    );
    text
}

/// The real all-MiniLM-L6-v2 directory fetched by `scripts/fetch-model.sh`.
pub fn real_model_dir() -> PathBuf {
    let dir = std::env::var_os("INFERD_TEST_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("models/all-MiniLM-L6-v2"));
    assert!(
        dir.join("model.safetensors").exists(),
        "real-model tests need {}: run scripts/fetch-model.sh first (scripts/test.sh does)",
        dir.display()
    );
    dir
}

/// `(id, text)` of every line of a JSON-lines catalog (gzipped when it ends in `.gz`).
pub fn catalog_items(path: &Path) -> Vec<(String, String)> {
    use std::io::Read;
    let file = std::fs::File::open(path).unwrap();
    let mut text = String::new();
    if path.extension().is_some_and(|e| e == "gz") {
        flate2::read::MultiGzDecoder::new(file)
            .read_to_string(&mut text)
            .unwrap();
    } else {
        BufReader::new(file).read_to_string(&mut text).unwrap();
    }
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["id"].as_str().unwrap().to_string(),
                v["text"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}
