//! Telemetry: every metric name, the Prometheus recorder, tracing initialisation (logs and the
//! OpenTelemetry trace export, [`traces`]), and the progress reports of long operator commands.
//!
//! Dashboards, alerts, the HPA and the canary analysis query these names, and a test checks that
//! every name they use is exported, so rename nothing here without updating `deploy/` and `k8s/`.
//! Every series is described here and registered at zero on start-up (by the layer that owns
//! it) so that rate() and absent() behave from the first scrape. HTTP series are labelled by the
//! matched route, never the raw path.
//!
//! A leaf: it imports nothing from the crate. The helpers that record a domain's series live
//! next to that domain (`batching/metrics.rs`, `serving/metrics.rs`, `deploy/metrics.rs`,
//! `index/metrics.rs`, `http/metrics.rs`) and use the names from here.

mod logs;
mod progress;
pub mod traces;

use std::time::Duration;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub use logs::{init_serve_tracing, init_stderr_tracing, init_tracing, LogFormat};
pub use progress::Progress;

pub const HTTP_REQUESTS: &str = "inferd_http_requests_total";
pub const HTTP_DURATION: &str = "inferd_http_request_duration_seconds";
pub const HTTP_IN_FLIGHT: &str = "inferd_http_requests_in_flight";
pub const GRPC_REQUESTS: &str = "inferd_grpc_requests_total";
pub const GRPC_DURATION: &str = "inferd_grpc_request_duration_seconds";
pub const QUEUE_DEPTH: &str = "inferd_queue_depth";
pub const QUEUE_CAPACITY: &str = "inferd_queue_capacity";
pub const QUEUE_WAIT: &str = "inferd_queue_wait_seconds";
pub const BATCH_SIZE: &str = "inferd_batch_size";
pub const BATCH_TOKENS: &str = "inferd_batch_tokens";
pub const COMPUTE: &str = "inferd_model_compute_seconds";
pub const TOKENS: &str = "inferd_tokens_total";
pub const EMBEDDINGS: &str = "inferd_embeddings_total";
pub const MODEL_LOAD: &str = "inferd_model_load_seconds";
pub const MODEL_INFO: &str = "inferd_model_info";
pub const READY: &str = "inferd_ready";
pub const REJECTED: &str = "inferd_requests_rejected_total";
pub const ERRORS: &str = "inferd_errors_total";
pub const WORKER_RESTARTS: &str = "inferd_worker_restarts_total";
pub const BUILD_INFO: &str = "inferd_build_info";
pub const RATE_LIMITED: &str = "inferd_rate_limited_total";
pub const CACHE_HITS: &str = "inferd_cache_hits_total";
pub const CACHE_MISSES: &str = "inferd_cache_misses_total";
pub const CACHE_ENTRIES: &str = "inferd_cache_entries";
pub const RECOMMEND_DURATION: &str = "inferd_recommend_duration_seconds";
pub const INDEX_ITEMS: &str = "inferd_index_items";
pub const INDEX_WRITES: &str = "inferd_index_writes_total";
pub const INDEX_WRITE_FAILURES: &str = "inferd_index_write_failures_total";
pub const INDEX_WRITABLE: &str = "inferd_index_writable";

pub const ROUTED: &str = "inferd_routed_requests_total";
pub const MODEL_ROLE: &str = "inferd_model_role";
pub const CANARY_WEIGHT: &str = "inferd_canary_weight";
pub const SHADOW_REQUESTS: &str = "inferd_shadow_requests_total";
pub const SHADOW_AGREEMENT: &str = "inferd_shadow_agreement";
pub const SHADOW_SAMPLES: &str = "inferd_shadow_samples";
pub const ROLLBACKS: &str = "inferd_canary_rollbacks_total";
pub const EVENTS: &str = "inferd_lifecycle_events_total";

pub const BATCH_JOBS: &str = "inferd_batch_jobs";
pub const BATCH_REQUESTS: &str = "inferd_batch_requests_total";
pub const WEBHOOK_ATTEMPTS: &str = "inferd_webhook_attempts_total";
pub const WEBHOOK_DELIVERIES: &str = "inferd_webhook_deliveries_total";

pub const DRIFT: &str = "inferd_drift";
pub const INPUTS_FLAGGED: &str = "inferd_inputs_flagged_total";
pub const TRACE_SPANS_EXPORTED: &str = "inferd_trace_spans_exported_total";
pub const TRACE_SPANS_DROPPED: &str = "inferd_trace_spans_dropped_total";

/// Why a finished span was not exported (`reason` label of [`TRACE_SPANS_DROPPED`]).
pub const TRACE_DROP_REASONS: &[&str] = &["queue_full", "export_failed", "shut_down"];

/// Reasons a request is dropped before compute (`reason` label of [`REJECTED`]).
pub const REJECT_REASONS: &[&str] = &["overloaded", "deadline_exceeded", "client_gone"];

const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
const SIZE_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];
const TOKEN_BUCKETS: &[f64] = &[
    16.0, 64.0, 256.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0, 32768.0,
];

/// Installs the global recorder and describes every metric. Call once per process.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full(BATCH_SIZE.into()), SIZE_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full(BATCH_TOKENS.into()), TOKEN_BUCKETS)?;
    let handle = builder.install_recorder()?;
    spawn_upkeep(handle.clone())?;
    describe_all();
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    gauge!(READY).set(0.0);
    gauge!(HTTP_IN_FLIGHT).set(0.0);
    counter!(TRACE_SPANS_EXPORTED).absolute(0);
    for reason in TRACE_DROP_REASONS {
        counter!(TRACE_SPANS_DROPPED, "reason" => *reason).absolute(0);
    }
    Ok(handle)
}

/// How often recorded histogram samples are folded into their buckets. The recorder keeps every
/// sample until then (or until a scrape), about 20 bytes per request, so a server nobody scrapes
/// would grow without bound.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

fn spawn_upkeep(handle: PrometheusHandle) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("inferd-metrics-upkeep".into())
        .spawn(move || loop {
            std::thread::sleep(UPKEEP_EVERY);
            handle.run_upkeep();
        })
        .map(drop)
}

fn describe_all() {
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests by matched route, method and status."
    );
    describe_histogram!(HTTP_DURATION, "HTTP request latency by matched route.");
    describe_gauge!(HTTP_IN_FLIGHT, "HTTP requests being served now.");
    describe_counter!(
        GRPC_REQUESTS,
        "gRPC calls by service, method and status code."
    );
    describe_histogram!(GRPC_DURATION, "gRPC call latency by service and method.");
    describe_gauge!(
        QUEUE_DEPTH,
        "Requests admitted and not yet answered, per model."
    );
    describe_gauge!(
        QUEUE_CAPACITY,
        "Admission limit of the model's queue (--max-queue-requests)."
    );
    describe_histogram!(
        QUEUE_WAIT,
        "Time from a request's hand-off to the worker until its first batch starts."
    );
    describe_histogram!(BATCH_SIZE, "Inputs (sequences) per forward batch.");
    describe_histogram!(BATCH_TOKENS, "Real (unpadded) tokens per forward batch.");
    describe_histogram!(COMPUTE, "Model forward + pooling time per batch.");
    describe_counter!(TOKENS, "Tokens embedded.");
    describe_counter!(EMBEDDINGS, "Embeddings produced.");
    describe_gauge!(MODEL_LOAD, "Seconds it took to load and warm the model.");
    describe_gauge!(
        MODEL_INFO,
        "1 for each loaded model, labelled with its device and dtype."
    );
    describe_gauge!(READY, "1 when the service is ready to take traffic.");
    describe_counter!(REJECTED, "Requests dropped before compute, by reason.");
    describe_counter!(ERRORS, "JSON error responses by stable error code.");
    describe_counter!(WORKER_RESTARTS, "Model worker restarts after a panic.");
    describe_gauge!(BUILD_INFO, "Build information.");
    describe_counter!(
        RATE_LIMITED,
        "Requests refused with 429 by the per-key rate limit, by key name."
    );
    describe_counter!(CACHE_HITS, "Inputs answered from the response cache.");
    describe_counter!(
        CACHE_MISSES,
        "Inputs looked up in the response cache and not found."
    );
    describe_gauge!(CACHE_ENTRIES, "Embeddings held by the response cache.");

    describe_counter!(
        ROUTED,
        "Requests answered per model version and the role it answered in."
    );
    describe_gauge!(
        MODEL_ROLE,
        "1 for the role each loaded version has (promoted, canary, shadow, standby)."
    );
    describe_gauge!(
        CANARY_WEIGHT,
        "Share of requests routed to the canary, 0..1."
    );
    describe_counter!(
        SHADOW_REQUESTS,
        "Shadow copies sent to a candidate, by outcome (ok, failed, dropped)."
    );
    describe_gauge!(
        SHADOW_AGREEMENT,
        "Agreement of a shadow candidate with the promoted version, by metric \
             (mean_cosine, rank_correlation, topk_overlap)."
    );
    describe_gauge!(
        SHADOW_SAMPLES,
        "Distinct texts in the shadow agreement window."
    );
    describe_counter!(
        ROLLBACKS,
        "Automatic canary rollbacks, by the limit breached."
    );
    describe_counter!(EVENTS, "Lifecycle actions, by action.");
    describe_histogram!(
        RECOMMEND_DURATION,
        "Similarity search time per /recommend query (embedding excluded), by index and query kind."
    );
    describe_gauge!(INDEX_ITEMS, "Live items in each loaded index.");
    describe_counter!(INDEX_WRITES, "Acknowledged item writes, by index and op.");
    describe_counter!(
        INDEX_WRITE_FAILURES,
        "Item writes refused because the log could not make them durable, by index and outcome \
         (rolled_back: the partial record was removed; read_only: it could not be)."
    );
    describe_gauge!(
        INDEX_WRITABLE,
        "1 while an index accepts writes, 0 while its log is read-only after a failed repair."
    );
    describe_gauge!(
        BATCH_JOBS,
        "Batch jobs by status (on --jobs-redis, every replica reports the shared total)."
    );
    describe_counter!(
        BATCH_REQUESTS,
        "Batch requests answered by this replica, by outcome (completed, failed)."
    );
    describe_counter!(
        WEBHOOK_ATTEMPTS,
        "Webhook delivery attempts, by outcome (ok: a 2xx answer; error: anything else)."
    );
    describe_counter!(
        TRACE_SPANS_EXPORTED,
        "Spans the OTLP collector accepted (--otlp-endpoint)."
    );
    describe_counter!(
        TRACE_SPANS_DROPPED,
        "Finished spans not exported, by reason (queue_full: the bounded export queue was full; \
         export_failed: the collector did not accept them; shut_down: ended after the export stopped)."
    );
    describe_gauge!(
        DRIFT,
        "How far recent inputs of a model version are from its reference, per signal \
         (token_length: PSI; unknown_tokens, truncation, script: rate differences; embedding: \
         1 - cosine to the reference centroid; embedding_norm: relative mean-norm change); 0 = alike."
    );
    describe_counter!(
        INPUTS_FLAGGED,
        "Inputs the input policy flagged, by reason (--input-policy; refused under enforce)."
    );
    describe_counter!(
        WEBHOOK_DELIVERIES,
        "Webhook deliveries ended, by outcome (delivered; failed: the retry budget ran out)."
    );
}
