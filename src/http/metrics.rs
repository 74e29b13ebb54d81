//! The HTTP layer's series: requests by matched route, in-flight requests, error responses by
//! code, rate-limit refusals and readiness (names in [`crate::telemetry`]).

use std::time::Duration;

use metrics::{counter, gauge, histogram};

use crate::telemetry;

/// Registers every error code's counter at zero; once per process, after the recorder.
pub fn register_error_codes() {
    for code in super::error::ApiError::CODES {
        counter!(telemetry::ERRORS, "code" => *code).absolute(0);
    }
}

pub fn record_error(code: &'static str) {
    counter!(telemetry::ERRORS, "code" => code).increment(1);
}

pub fn rate_limited(key: &str) {
    counter!(telemetry::RATE_LIMITED, "key" => key.to_string()).increment(1);
}

pub fn set_ready(ready: bool) {
    gauge!(telemetry::READY).set(if ready { 1.0 } else { 0.0 });
}

/// Records one finished HTTP request.
pub fn http_request(route: &str, method: &str, status: u16, elapsed: Duration) {
    let (route, method) = (route.to_string(), method.to_string());
    counter!(telemetry::HTTP_REQUESTS, "route" => route.clone(), "method" => method.clone(), "status" => status.to_string())
        .increment(1);
    histogram!(telemetry::HTTP_DURATION, "route" => route, "method" => method)
        .record(elapsed.as_secs_f64());
}

pub fn http_in_flight(delta: f64) {
    gauge!(telemetry::HTTP_IN_FLIGHT).increment(delta);
}
