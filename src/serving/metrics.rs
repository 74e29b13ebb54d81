//! The response cache's series (names in [`crate::telemetry`]).

use metrics::{counter, gauge};

use crate::telemetry;

/// Registers the cache series at zero (called when the cache is on).
pub fn cache_registered() {
    counter!(telemetry::CACHE_HITS).absolute(0);
    counter!(telemetry::CACHE_MISSES).absolute(0);
    gauge!(telemetry::CACHE_ENTRIES).set(0.0);
}

pub fn cache_lookups(hits: usize, misses: usize) {
    counter!(telemetry::CACHE_HITS).increment(hits as u64);
    counter!(telemetry::CACHE_MISSES).increment(misses as u64);
}

pub fn cache_entries(entries: usize) {
    gauge!(telemetry::CACHE_ENTRIES).set(entries as f64);
}
