//! The index layer's series: live items, acknowledged and refused writes, writability and search
//! time per index (names in [`crate::telemetry`]).

use std::time::Duration;

use metrics::{counter, gauge, histogram};

use crate::telemetry;

/// Records one similarity search of `/recommend` (`query`: text, item_id or history).
pub fn recommend(index: &str, query: &'static str, elapsed: Duration) {
    histogram!(telemetry::RECOMMEND_DURATION, "index" => index.to_string(), "query" => query)
        .record(elapsed.as_secs_f64());
}

pub fn index_items(index: &str, items: usize) {
    gauge!(telemetry::INDEX_ITEMS, "index" => index.to_string()).set(items as f64);
}

/// Counts one acknowledged item write (`op`: put or delete).
pub fn index_write(index: &str, op: &'static str) {
    counter!(telemetry::INDEX_WRITES, "index" => index.to_string(), "op" => op).increment(1);
}

/// Counts one item write the log refused; `read_only` when its partial record could not be removed.
pub fn index_write_failed(index: &str, read_only: bool) {
    let outcome = if read_only {
        "read_only"
    } else {
        "rolled_back"
    };
    counter!(telemetry::INDEX_WRITE_FAILURES, "index" => index.to_string(), "outcome" => outcome)
        .increment(1);
    index_writable(index, !read_only);
}

/// Whether `index` accepts writes.
pub fn index_writable(index: &str, writable: bool) {
    gauge!(telemetry::INDEX_WRITABLE, "index" => index.to_string()).set(if writable {
        1.0
    } else {
        0.0
    });
}
