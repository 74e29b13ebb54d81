//! A real OTLP/gRPC trace receiver for the tests: `receiver.py` (grpcio and the
//! `opentelemetry-proto` collector stubs, in `.venv-otlp/`, which `scripts/test.sh` installs from
//! `requirements.txt`) on 127.0.0.1, an OS-chosen port. It prints one JSON object per received
//! span; the harness collects them. It stops when dropped (its stdin closes).

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{mpsc, Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::Value;

pub struct Collector {
    child: Child,
    pub port: u16,
    spans: Arc<Mutex<Vec<Value>>>,
}

/// The receiver venv's Python (or `INFERD_TEST_OTLP_PYTHON`).
fn python() -> PathBuf {
    if let Some(python) = std::env::var_os("INFERD_TEST_OTLP_PYTHON") {
        return python.into();
    }
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-otlp/bin/python");
    assert!(
        python.exists(),
        "trace tests need the OTLP receiver's venv (scripts/test.sh installs it: python3 -m venv \
         .venv-otlp && .venv-otlp/bin/pip install -r tests/traces/requirements.txt), or \
         INFERD_TEST_OTLP_PYTHON; no {}",
        python.display()
    );
    python
}

impl Collector {
    pub fn start() -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/traces/receiver.py");
        let mut child = Command::new(python())
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting the OTLP receiver");
        let spans = Arc::new(Mutex::new(Vec::new()));
        let (port_tx, port_rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let collected = Arc::clone(&spans);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) = line.strip_prefix("listening ") {
                    let _ = port_tx.send(port.trim().parse::<u16>().unwrap());
                } else if let Ok(span) = serde_json::from_str(&line) {
                    collected.lock().unwrap().push(span);
                }
            }
        });
        let port = port_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the OTLP receiver did not report its port");
        Self { child, port, spans }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The first span `matches` accepts, once it arrived (panics after a minute).
    pub async fn first(&self, matches: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(span) = self.spans.lock().unwrap().iter().find(|s| matches(s)) {
                return span.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no matching span after 60 s in {:#?}",
                self.spans.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The names of every span received so far.
    pub fn names(&self) -> Vec<String> {
        let spans = self.spans.lock().unwrap();
        spans
            .iter()
            .map(|s| s["name"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// The spans of trace `trace_id` once `done` says they are all there (panics with what
    /// arrived after a minute).
    pub async fn trace(&self, trace_id: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let spans: Vec<Value> = self
                .spans
                .lock()
                .unwrap()
                .iter()
                .filter(|s| s["trace_id"] == trace_id)
                .cloned()
                .collect();
            if done(&spans) {
                return spans;
            }
            assert!(
                Instant::now() < deadline,
                "trace {trace_id} incomplete after 60 s: {spans:#?}\nall spans: {:#?}",
                self.spans.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The span named `name` in `spans` (exactly one).
pub fn span<'a>(spans: &'a [Value], name: &str) -> &'a Value {
    let found: Vec<&Value> = spans.iter().filter(|s| s["name"] == name).collect();
    assert_eq!(found.len(), 1, "one `{name}` span expected in {spans:#?}");
    found[0]
}

/// Whether a span named `name` is in `spans`.
pub fn has(spans: &[Value], name: &str) -> bool {
    spans.iter().any(|s| s["name"] == name)
}
