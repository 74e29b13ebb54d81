//! The index layer's series: live items, acknowledged writes and search time per index (names in
//! [`crate::telemetry`]).

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
