//! The batch jobs' series (names in [`crate::telemetry`]): jobs by status, requests answered,
//! webhook attempts and deliveries by outcome.

use std::collections::BTreeMap;

use metrics::{counter, gauge};

use crate::telemetry;

/// Registers every series at zero, so alerts and `rate()` work from the first scrape.
pub fn register(counts: &BTreeMap<&'static str, usize>) {
    jobs(counts);
    for outcome in ["completed", "failed"] {
        counter!(telemetry::BATCH_REQUESTS, "outcome" => outcome).absolute(0);
    }
    for outcome in ["delivered", "failed"] {
        counter!(telemetry::WEBHOOK_DELIVERIES, "outcome" => outcome).absolute(0);
    }
    for outcome in ["ok", "error"] {
        counter!(telemetry::WEBHOOK_ATTEMPTS, "outcome" => outcome).absolute(0);
    }
}

/// `inferd_batch_jobs{status}` from the state's counts.
pub fn jobs(counts: &BTreeMap<&'static str, usize>) {
    for (status, n) in counts {
        gauge!(telemetry::BATCH_JOBS, "status" => *status).set(*n as f64);
    }
}

/// Requests of a chunk this replica committed.
pub fn requests(completed: usize, failed: usize) {
    counter!(telemetry::BATCH_REQUESTS, "outcome" => "completed").increment(completed as u64);
    counter!(telemetry::BATCH_REQUESTS, "outcome" => "failed").increment(failed as u64);
}

pub fn webhook_attempt(ok: bool) {
    let outcome = if ok { "ok" } else { "error" };
    counter!(telemetry::WEBHOOK_ATTEMPTS, "outcome" => outcome).increment(1);
}

pub fn webhook_delivery(delivered: bool) {
    let outcome = if delivered { "delivered" } else { "failed" };
    counter!(telemetry::WEBHOOK_DELIVERIES, "outcome" => outcome).increment(1);
}
