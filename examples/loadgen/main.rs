//! Closed-loop load generator for `POST /infer` (HTTP) or `tei.v1.Embed` (gRPC, `--grpc unary`
//! or `--grpc stream`), used by `benches/compare/run.py` and `benches/compare/grpc_http.py`.
//!
//! Each of `--concurrency` clients sends one text per request (`{"inputs": "<text>"}`), taking
//! the next line of `--texts` in turn (cycling), and sends its next request as soon as the answer
//! arrives. A warm-up phase runs first and is not counted. It stops after `--requests` requests
//! or `--duration` seconds, whichever comes first (and never runs past `--max-seconds`), then
//! prints one JSON line:
//!
//! `{"requests":..,"errors":..,"rps":..,"p50_ms":..,"p99_ms":..,...}`
//!
//! With `--openai MODEL`, the body is OpenAI's embeddings request instead,
//! `{"model": "MODEL", "input": "<text>"}` (for `POST /embeddings` of other servers, e.g.
//! Infinity), and the first answer's check reads `data[0].embedding`.
//!
//! With `--grpc`, `--url` is the gRPC listener (`http://127.0.0.1:8081`) and the clients share
//! one HTTP/2 channel ([`grpc`]); `error_statuses` then holds gRPC codes instead of HTTP ones.
//!
//! It only talks to loopback addresses (127.0.0.0/8, localhost, [::1]).
//!
//! ```text
//! cargo run --release --example loadgen -- --url http://127.0.0.1:8080/infer \
//!     --texts benches/data/short.txt --concurrency 32 --duration 10
//! ```

mod grpc;

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: loadgen --url http://127.0.0.1:PORT/infer --texts FILE \
[--concurrency N (1)] [--requests M] [--duration SECONDS] [--warmup SECONDS (2)] \
[--warmup-requests N] [--timeout SECONDS (30)] [--max-seconds SECONDS (600)] [--threads N (1)]
[--grpc unary|stream (--url is then the gRPC listener, http://127.0.0.1:PORT)]
[--openai MODEL (OpenAI-style body {\"model\": MODEL, \"input\": TEXT}, for POST /embeddings)]
At least one of --requests / --duration; with neither, --duration 10.";

struct Args {
    url: String,
    texts: String,
    concurrency: usize,
    requests: Option<u64>,
    duration: Option<f64>,
    warmup: f64,
    warmup_requests: Option<u64>,
    timeout: f64,
    max_seconds: f64,
    threads: usize,
    grpc: Option<grpc::Mode>,
    openai: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        url: String::new(),
        texts: String::new(),
        concurrency: 1,
        requests: None,
        duration: None,
        warmup: 2.0,
        warmup_requests: None,
        timeout: 30.0,
        max_seconds: 600.0,
        threads: 1,
        grpc: None,
        openai: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let val = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = |v: &str| {
            v.parse::<f64>()
                .map_err(|_| format!("{flag}: not a number: {v}"))
        };
        match flag.as_str() {
            "--url" => a.url = val,
            "--texts" => a.texts = val,
            "--concurrency" | "-c" => a.concurrency = num(&val)? as usize,
            "--requests" | "-n" => a.requests = Some(num(&val)? as u64),
            "--duration" | "-d" => a.duration = Some(num(&val)?),
            "--warmup" => a.warmup = num(&val)?,
            "--warmup-requests" => a.warmup_requests = Some(num(&val)? as u64),
            "--timeout" => a.timeout = num(&val)?,
            "--max-seconds" => a.max_seconds = num(&val)?,
            "--threads" => a.threads = num(&val)? as usize,
            "--grpc" => a.grpc = Some(grpc::Mode::parse(&val)?),
            "--openai" => a.openai = Some(val),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if a.url.is_empty() || a.texts.is_empty() {
        return Err("--url and --texts are required".into());
    }
    if a.concurrency == 0 || a.concurrency > 4096 {
        return Err("--concurrency must be 1..=4096".into());
    }
    if a.requests.is_none() && a.duration.is_none() {
        a.duration = Some(10.0);
    }
    a.threads = a.threads.max(1);
    Ok(a)
}

/// Accepts only http:// URLs whose host is a loopback address.
fn check_loopback(url: &str) -> Result<(), String> {
    let u = reqwest::Url::parse(url).map_err(|e| format!("bad --url {url}: {e}"))?;
    if u.scheme() != "http" {
        return Err(format!("--url must be http://, got {}", u.scheme()));
    }
    let host = u.host_str().unwrap_or("");
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let ok = host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "loadgen only targets loopback addresses, not {url}"
        ))
    }
}

struct Phase {
    /// Stop issuing when this many requests were started (u64::MAX: no limit).
    limit: u64,
    deadline: Instant,
}

#[derive(Default)]
struct WorkerResult {
    latencies_ms: Vec<f64>,
    errors: u64,
    statuses: Vec<u16>,
    first_error: Option<String>,
}

/// One client's way of sending text `i`: an HTTP `POST /infer`, or a gRPC call.
enum Conn {
    Http {
        client: reqwest::Client,
        url: Arc<str>,
        bodies: Arc<Vec<&'static str>>,
    },
    Grpc(Box<grpc::Conn>),
}

impl Conn {
    /// `Err((status, message))`: the HTTP status (0 when there was none) or gRPC code.
    async fn call(&mut self, i: u64) -> Result<(), (u16, String)> {
        match self {
            Conn::Http {
                client,
                url,
                bodies,
            } => {
                let body: &'static str = bodies[(i % bodies.len() as u64) as usize];
                http_call(client, url, body).await
            }
            Conn::Grpc(conn) => conn.call(i).await.map(|_| ()),
        }
    }
}

async fn http_call(
    client: &reqwest::Client,
    url: &str,
    body: &'static str,
) -> Result<(), (u16, String)> {
    let resp = client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| (0, format!("request: {e}")))?;
    let status = resp.status().as_u16();
    match resp.bytes().await {
        Ok(_) if status == 200 => Ok(()),
        Ok(b) => {
            let s = String::from_utf8_lossy(&b[..b.len().min(200)]).into_owned();
            Err((status, format!("HTTP {status}: {s}")))
        }
        Err(e) => Err((0, format!("reading body: {e}"))),
    }
}

async fn worker(
    mut conn: Conn,
    next: Arc<AtomicU64>,
    phase: Arc<Phase>,
    stop: Arc<AtomicBool>,
) -> WorkerResult {
    let mut r = WorkerResult::default();
    loop {
        if stop.load(Ordering::Relaxed) || Instant::now() >= phase.deadline {
            break;
        }
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= phase.limit {
            break;
        }
        let t0 = Instant::now();
        match conn.call(i).await {
            Ok(()) => r.latencies_ms.push(t0.elapsed().as_secs_f64() * 1e3),
            Err((status, message)) => {
                r.errors += 1;
                if status != 0 && !r.statuses.contains(&status) {
                    r.statuses.push(status);
                }
                r.first_error.get_or_insert(message);
            }
        }
    }
    r
}

struct PhaseResult {
    latencies_ms: Vec<f64>,
    errors: u64,
    statuses: Vec<u16>,
    first_error: Option<String>,
    seconds: f64,
}

async fn run_phase(
    conn: &dyn Fn() -> Conn,
    concurrency: usize,
    limit: Option<u64>,
    seconds: f64,
    stop: &Arc<AtomicBool>,
) -> PhaseResult {
    let t0 = Instant::now();
    let phase = Arc::new(Phase {
        limit: limit.unwrap_or(u64::MAX),
        deadline: t0 + Duration::from_secs_f64(seconds),
    });
    let next = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..concurrency)
        .map(|_| tokio::spawn(worker(conn(), next.clone(), phase.clone(), stop.clone())))
        .collect();
    let mut out = PhaseResult {
        latencies_ms: Vec::new(),
        errors: 0,
        statuses: Vec::new(),
        first_error: None,
        seconds: 0.0,
    };
    for h in handles {
        let r = h.await.expect("worker panicked");
        out.latencies_ms.extend(r.latencies_ms);
        out.errors += r.errors;
        for s in r.statuses {
            if !out.statuses.contains(&s) {
                out.statuses.push(s);
            }
        }
        if out.first_error.is_none() {
            out.first_error = r.first_error;
        }
    }
    out.seconds = t0.elapsed().as_secs_f64();
    out
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    // nearest rank
    let rank = ((q / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn json_num(x: f64) -> serde_json::Value {
    if x.is_finite() {
        serde_json::json!((x * 1000.0).round() / 1000.0)
    } else {
        serde_json::Value::Null
    }
}

async fn real_main(a: Args) -> Result<(), String> {
    check_loopback(&a.url)?;
    let raw = std::fs::read_to_string(&a.texts).map_err(|e| format!("reading {}: {e}", a.texts))?;
    let texts: Vec<&str> = raw.lines().filter(|l| !l.trim().is_empty()).collect();
    if texts.is_empty() {
        return Err(format!("{} has no non-empty lines", a.texts));
    }
    let (conn, dims) = match a.grpc {
        None => http_clients(&a, &texts).await?,
        Some(mode) => grpc_clients(&a, &texts, mode).await?,
    };

    let hard_deadline = Instant::now() + Duration::from_secs_f64(a.max_seconds.max(1.0));
    let stop = Arc::new(AtomicBool::new(false));
    {
        // Bounded in time whatever happens: flip `stop` at --max-seconds.
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(hard_deadline.into()).await;
            stop.store(true, Ordering::Relaxed);
        });
    }

    let warmup_seconds = match a.warmup_requests {
        Some(_) => a.max_seconds,
        None => a.warmup,
    };
    let warm = run_phase(
        &*conn,
        a.concurrency,
        a.warmup_requests,
        warmup_seconds,
        &stop,
    )
    .await;
    let measured_seconds = a.duration.unwrap_or(a.max_seconds);
    let measured = run_phase(&*conn, a.concurrency, a.requests, measured_seconds, &stop).await;

    let mut lat = measured.latencies_ms;
    lat.sort_by(|x, y| x.partial_cmp(y).unwrap());
    let ok = lat.len() as u64;
    let mean = if lat.is_empty() {
        f64::NAN
    } else {
        lat.iter().sum::<f64>() / lat.len() as f64
    };
    let out = serde_json::json!({
        "requests": ok + measured.errors,
        "errors": measured.errors,
        "ok": ok,
        "rps": json_num(ok as f64 / measured.seconds),
        "p50_ms": json_num(percentile(&lat, 50.0)),
        "p90_ms": json_num(percentile(&lat, 90.0)),
        "p99_ms": json_num(percentile(&lat, 99.0)),
        "mean_ms": json_num(mean),
        "max_ms": json_num(lat.last().copied().unwrap_or(f64::NAN)),
        "seconds": json_num(measured.seconds),
        "concurrency": a.concurrency,
        "texts": texts.len(),
        "dimensions": dims,
        "warmup_requests": warm.latencies_ms.len() as u64 + warm.errors,
        "warmup_errors": warm.errors,
        "error_statuses": measured.statuses,
        "first_error": measured.first_error.or(warm.first_error),
        "stopped_at_max_seconds": stop.load(Ordering::Relaxed),
    });
    println!("{out}");
    Ok(())
}

/// Makes one client's connection.
type Clients = Box<dyn Fn() -> Conn>;

/// The HTTP clients, after one checked request (its answer has one embedding), and the
/// embedding's length.
async fn http_clients(a: &Args, texts: &[&str]) -> Result<(Clients, usize), String> {
    let bodies: Arc<Vec<&'static str>> = Arc::new(
        texts
            .iter()
            .map(|t| {
                &*Box::leak(
                    request_body(a.openai.as_deref(), t)
                        .to_string()
                        .into_boxed_str(),
                )
            })
            .collect(),
    );
    let url: Arc<str> = a.url.as_str().into();
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(a.concurrency)
        .timeout(Duration::from_secs_f64(a.timeout))
        .tcp_nodelay(true)
        .build()
        .map_err(|e| format!("http client: {e}"))?;
    let resp = client
        .post(&*url)
        .header("content-type", "application/json")
        .body(bodies[0])
        .send()
        .await
        .map_err(|e| format!("first request to {}: {e}", a.url))?;
    let status = resp.status();
    let body = resp
        .bytes()
        .await
        .map_err(|e| format!("first response: {e}"))?;
    if !status.is_success() {
        return Err(format!(
            "first request: HTTP {status}: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| format!("first response is not JSON: {e}"))?;
    let dims = match single_embedding(&v) {
        Some(e) => e.as_array().map(|x| x.len()).unwrap_or(0),
        None => return Err(format!("first response has no single embedding: {v:.200}")),
    };
    let clients = move || Conn::Http {
        client: client.clone(),
        url: url.clone(),
        bodies: bodies.clone(),
    };
    Ok((Box::new(clients), dims))
}

/// One request's JSON: `{"inputs": text}` (inferd's `/infer`), or OpenAI's embeddings request
/// `{"model": model, "input": text}` with `--openai MODEL`.
fn request_body(openai_model: Option<&str>, text: &str) -> serde_json::Value {
    match openai_model {
        None => serde_json::json!({ "inputs": text }),
        Some(model) => serde_json::json!({ "model": model, "input": text }),
    }
}

/// The one embedding of an answer: `embeddings[0]` (inferd) or `data[0].embedding` (OpenAI).
fn single_embedding(v: &serde_json::Value) -> Option<&serde_json::Value> {
    if let Some(e) = v.get("embeddings").and_then(|e| e.as_array()) {
        return if e.len() == 1 { Some(&e[0]) } else { None };
    }
    match v.get("data").and_then(|d| d.as_array()) {
        Some(d) if d.len() == 1 => d[0].get("embedding"),
        _ => None,
    }
}

/// The gRPC clients on one channel, after one checked call, and the embedding's length.
async fn grpc_clients(
    a: &Args,
    texts: &[&str],
    mode: grpc::Mode,
) -> Result<(Clients, usize), String> {
    let channel = grpc::channel(&a.url).await?;
    let texts = Arc::new(texts.iter().map(|t| t.to_string()).collect::<Vec<_>>());
    let timeout = Duration::from_secs_f64(a.timeout);
    let mut first = grpc::Conn::new(channel.clone(), texts.clone(), grpc::Mode::Unary, timeout);
    let dims = first
        .call(0)
        .await
        .map_err(|(code, m)| format!("first call to {}: gRPC code {code}: {m}", a.url))?;
    let clients = move || {
        let conn = grpc::Conn::new(channel.clone(), texts.clone(), mode, timeout);
        Conn::Grpc(Box::new(conn))
    };
    Ok((Box::new(clients), dims))
}

fn main() {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("loadgen: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let rt = if a.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(a.threads)
            .enable_all()
            .build()
    }
    .expect("tokio runtime");
    if let Err(e) = rt.block_on(real_main(a)) {
        eprintln!("loadgen: {e}");
        std::process::exit(1);
    }
}
