//! Metric names and the Prometheus recorder, in one place.
//!
//! Dashboards, alerts, the HPA and the canary analysis query these names, and a test checks that
//! every name they use is exported, so rename nothing here without updating `deploy/` and `k8s/`.
//! Every series is registered at zero on start-up so that rate() and absent() behave from the
//! first scrape. HTTP series are labelled by the matched route, never the raw path.

use std::time::Duration;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const HTTP_REQUESTS: &str = "inferd_http_requests_total";
pub const HTTP_DURATION: &str = "inferd_http_request_duration_seconds";
pub const HTTP_IN_FLIGHT: &str = "inferd_http_requests_in_flight";
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
    describe_all();
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    gauge!(READY).set(0.0);
    gauge!(HTTP_IN_FLIGHT).set(0.0);
    for code in crate::http::error::ApiError::CODES {
        counter!(ERRORS, "code" => *code).absolute(0);
    }
    Ok(handle)
}

fn describe_all() {
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests by matched route, method and status."
    );
    describe_histogram!(HTTP_DURATION, "HTTP request latency by matched route.");
    describe_gauge!(HTTP_IN_FLIGHT, "HTTP requests being served now.");
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
    lifecycle::describe();
    describe_histogram!(
        RECOMMEND_DURATION,
        "Similarity search time per /recommend query (embedding excluded), by index and query kind."
    );
    describe_gauge!(INDEX_ITEMS, "Live items in each loaded index.");
    describe_counter!(INDEX_WRITES, "Acknowledged item writes, by index and op.");
}

/// Labels that identify one loaded model version.
#[derive(Debug, Clone)]
pub struct ModelLabels {
    pub model: String,
    pub version: String,
}

impl ModelLabels {
    fn pairs(&self) -> [(&'static str, String); 2] {
        [
            ("model", self.model.clone()),
            ("version", self.version.clone()),
        ]
    }

    /// Registers the model's series at zero so they exist before the first request.
    pub fn register(&self, capacity: usize) {
        gauge!(QUEUE_CAPACITY, &self.pairs()).set(capacity as f64);
        gauge!(QUEUE_DEPTH, &self.pairs()).set(0.0);
        counter!(TOKENS, &self.pairs()).absolute(0);
        counter!(EMBEDDINGS, &self.pairs()).absolute(0);
        counter!(WORKER_RESTARTS, &self.pairs()).absolute(0);
        for reason in REJECT_REASONS {
            self.rejected(reason, 0);
        }
        // Histograms only render once observed; make the families visible with no samples
        // counted by describing them (done in describe_all) and touching the handles.
        let _ = histogram!(QUEUE_WAIT, &self.pairs());
        let _ = histogram!(BATCH_SIZE, &self.pairs());
        let _ = histogram!(BATCH_TOKENS, &self.pairs());
        let _ = histogram!(COMPUTE, &self.pairs());
    }

    pub fn loaded(&self, device: &str, dtype: &str, load: Duration) {
        gauge!(MODEL_LOAD, &self.pairs()).set(load.as_secs_f64());
        let mut labels = self.pairs().to_vec();
        labels.push(("device", device.to_string()));
        labels.push(("dtype", dtype.to_string()));
        gauge!(MODEL_INFO, &labels).set(1.0);
    }

    pub fn queue_depth(&self, depth: usize) {
        gauge!(QUEUE_DEPTH, &self.pairs()).set(depth as f64);
    }

    pub fn queue_wait(&self, wait: Duration) {
        histogram!(QUEUE_WAIT, &self.pairs()).record(wait.as_secs_f64());
    }

    pub fn batch(&self, sequences: usize, tokens: usize, compute: Duration) {
        let pairs = self.pairs();
        histogram!(BATCH_SIZE, &pairs).record(sequences as f64);
        histogram!(BATCH_TOKENS, &pairs).record(tokens as f64);
        histogram!(COMPUTE, &pairs).record(compute.as_secs_f64());
        counter!(TOKENS, &pairs).increment(tokens as u64);
        counter!(EMBEDDINGS, &pairs).increment(sequences as u64);
    }

    pub fn rejected(&self, reason: &'static str, n: u64) {
        let mut labels = self.pairs().to_vec();
        labels.push(("reason", reason.to_string()));
        counter!(REJECTED, &labels).increment(n);
    }

    pub fn worker_restarted(&self) {
        counter!(WORKER_RESTARTS, &self.pairs()).increment(1);
    }
}

pub fn record_error(code: &'static str) {
    counter!(ERRORS, "code" => code).increment(1);
}

pub fn rate_limited(key: &str) {
    counter!(RATE_LIMITED, "key" => key.to_string()).increment(1);
}

/// Registers the cache series at zero (called when the cache is on).
pub fn cache_registered() {
    counter!(CACHE_HITS).absolute(0);
    counter!(CACHE_MISSES).absolute(0);
    gauge!(CACHE_ENTRIES).set(0.0);
}

pub fn cache_lookups(hits: usize, misses: usize) {
    counter!(CACHE_HITS).increment(hits as u64);
    counter!(CACHE_MISSES).increment(misses as u64);
}

pub fn cache_entries(entries: usize) {
    gauge!(CACHE_ENTRIES).set(entries as f64);
}

pub fn set_ready(ready: bool) {
    gauge!(READY).set(if ready { 1.0 } else { 0.0 });
}

/// Records one finished HTTP request.
pub fn http_request(route: &str, method: &str, status: u16, elapsed: Duration) {
    let (route, method) = (route.to_string(), method.to_string());
    counter!(HTTP_REQUESTS, "route" => route.clone(), "method" => method.clone(), "status" => status.to_string())
        .increment(1);
    histogram!(HTTP_DURATION, "route" => route, "method" => method).record(elapsed.as_secs_f64());
}

pub fn http_in_flight(delta: f64) {
    gauge!(HTTP_IN_FLIGHT).increment(delta);
}

/// Records one similarity search of `/recommend` (`query`: text, item_id or history).
pub fn recommend(index: &str, query: &'static str, elapsed: Duration) {
    histogram!(RECOMMEND_DURATION, "index" => index.to_string(), "query" => query)
        .record(elapsed.as_secs_f64());
}

pub fn index_items(index: &str, items: usize) {
    gauge!(INDEX_ITEMS, "index" => index.to_string()).set(items as f64);
}

/// Counts one acknowledged item write (`op`: put or delete).
pub fn index_write(index: &str, op: &'static str) {
    counter!(INDEX_WRITES, "index" => index.to_string(), "op" => op).increment(1);
}

/// Model lifecycle series: roles, canary weights and routing, shadow agreement, rollbacks.
pub mod lifecycle {
    use metrics::{counter, describe_counter, describe_gauge, gauge};

    use crate::deploy::{agreement::Agreement, audit::Action, Role};

    pub const ROUTED: &str = "inferd_routed_requests_total";
    pub const MODEL_ROLE: &str = "inferd_model_role";
    pub const CANARY_WEIGHT: &str = "inferd_canary_weight";
    pub const SHADOW_REQUESTS: &str = "inferd_shadow_requests_total";
    pub const SHADOW_AGREEMENT: &str = "inferd_shadow_agreement";
    pub const SHADOW_SAMPLES: &str = "inferd_shadow_samples";
    pub const ROLLBACKS: &str = "inferd_canary_rollbacks_total";
    pub const EVENTS: &str = "inferd_lifecycle_events_total";

    pub(super) fn describe() {
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
    }

    fn pair(model: &str, version: &str) -> [(&'static str, String); 2] {
        [
            ("model", model.to_string()),
            ("version", version.to_string()),
        ]
    }

    pub fn routed(model: &str, version: &str, role: Role) {
        let mut labels = pair(model, version).to_vec();
        labels.push(("role", role.as_str().to_string()));
        counter!(ROUTED, &labels).increment(1);
    }

    /// Sets the version's role gauge to 1 for `role` and 0 for the others.
    pub fn role(model: &str, version: &str, role: Role) {
        for r in Role::ALL {
            let mut labels = pair(model, version).to_vec();
            labels.push(("role", r.as_str().to_string()));
            gauge!(MODEL_ROLE, &labels).set(if r == role { 1.0 } else { 0.0 });
        }
    }

    /// Zeroes every role of an unloaded version.
    pub fn unloaded(model: &str, version: &str) {
        for r in Role::ALL {
            let mut labels = pair(model, version).to_vec();
            labels.push(("role", r.as_str().to_string()));
            gauge!(MODEL_ROLE, &labels).set(0.0);
        }
        canary_weight(model, version, 0.0);
    }

    pub fn canary_weight(model: &str, version: &str, weight: f64) {
        gauge!(CANARY_WEIGHT, &pair(model, version)).set(weight);
    }

    pub fn shadow_request(model: &str, version: &str, outcome: &'static str) {
        let mut labels = pair(model, version).to_vec();
        labels.push(("outcome", outcome.to_string()));
        counter!(SHADOW_REQUESTS, &labels).increment(1);
    }

    pub fn shadow_agreement(model: &str, version: &str, a: &Agreement) {
        gauge!(SHADOW_SAMPLES, &pair(model, version)).set(a.samples as f64);
        let metrics = [
            ("mean_cosine", a.mean_cosine),
            ("rank_correlation", a.rank_correlation),
            ("topk_overlap", a.topk_overlap),
        ];
        for (name, value) in metrics {
            if let Some(value) = value {
                let mut labels = pair(model, version).to_vec();
                labels.push(("metric", name.to_string()));
                gauge!(SHADOW_AGREEMENT, &labels).set(value);
            }
        }
    }

    pub fn rollback(model: &str, version: &str, reason: &'static str) {
        let mut labels = pair(model, version).to_vec();
        labels.push(("reason", reason.to_string()));
        counter!(ROLLBACKS, &labels).increment(1);
    }

    pub fn lifecycle_event(action: Action) {
        let action = serde_json::to_value(action)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        counter!(EVENTS, "action" => action).increment(1);
    }
}
