//! The batching layer's series, labelled by model version: queue depth and capacity, queue
//! wait, batch sizes, compute time, rejections and worker restarts (names in
//! [`crate::telemetry`]).

use std::time::Duration;

use metrics::{counter, gauge, histogram};

use crate::telemetry;

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
        gauge!(telemetry::QUEUE_CAPACITY, &self.pairs()).set(capacity as f64);
        gauge!(telemetry::QUEUE_DEPTH, &self.pairs()).set(0.0);
        counter!(telemetry::TOKENS, &self.pairs()).absolute(0);
        counter!(telemetry::EMBEDDINGS, &self.pairs()).absolute(0);
        counter!(telemetry::WORKER_RESTARTS, &self.pairs()).absolute(0);
        for reason in telemetry::REJECT_REASONS {
            self.rejected(reason, 0);
        }
        // Histograms only render once observed; make the families visible with no samples
        // counted by describing them (done in describe_all) and touching the handles.
        let _ = histogram!(telemetry::QUEUE_WAIT, &self.pairs());
        let _ = histogram!(telemetry::BATCH_SIZE, &self.pairs());
        let _ = histogram!(telemetry::BATCH_TOKENS, &self.pairs());
        let _ = histogram!(telemetry::COMPUTE, &self.pairs());
    }

    pub fn loaded(&self, device: &str, dtype: &str, load: Duration) {
        gauge!(telemetry::MODEL_LOAD, &self.pairs()).set(load.as_secs_f64());
        let mut labels = self.pairs().to_vec();
        labels.push(("device", device.to_string()));
        labels.push(("dtype", dtype.to_string()));
        gauge!(telemetry::MODEL_INFO, &labels).set(1.0);
    }

    pub fn queue_depth(&self, depth: usize) {
        gauge!(telemetry::QUEUE_DEPTH, &self.pairs()).set(depth as f64);
    }

    pub fn queue_wait(&self, wait: Duration) {
        histogram!(telemetry::QUEUE_WAIT, &self.pairs()).record(wait.as_secs_f64());
    }

    pub fn batch(&self, sequences: usize, tokens: usize, compute: Duration) {
        let pairs = self.pairs();
        histogram!(telemetry::BATCH_SIZE, &pairs).record(sequences as f64);
        histogram!(telemetry::BATCH_TOKENS, &pairs).record(tokens as f64);
        histogram!(telemetry::COMPUTE, &pairs).record(compute.as_secs_f64());
        counter!(telemetry::TOKENS, &pairs).increment(tokens as u64);
        counter!(telemetry::EMBEDDINGS, &pairs).increment(sequences as u64);
    }

    pub fn rejected(&self, reason: &'static str, n: u64) {
        let mut labels = self.pairs().to_vec();
        labels.push(("reason", reason.to_string()));
        counter!(telemetry::REJECTED, &labels).increment(n);
    }

    pub fn worker_restarted(&self) {
        counter!(telemetry::WORKER_RESTARTS, &self.pairs()).increment(1);
    }
}
