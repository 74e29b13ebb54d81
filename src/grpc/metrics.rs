//! The gRPC layer's series (names in [`crate::telemetry`]): calls by service, method and status
//! code, and their duration. A stream is one call, timed until its answers start. Also each
//! call's server span ([`call_span`]).

use std::{future::Future, time::Instant};

use metrics::{counter, histogram};
use tonic::{Code, Status};

use crate::telemetry;

/// The codes registered at zero for every method, so `rate()` works from the first scrape.
const CODES: &[Code] = &[
    Code::Ok,
    Code::InvalidArgument,
    Code::ResourceExhausted,
    Code::Unavailable,
    Code::Unauthenticated,
];

/// Registers every method's counters at zero.
pub fn register() {
    let kserve = (super::kserve::SERVICE, super::kserve::METHODS);
    for (service, methods) in super::tei::METHODS.iter().chain([&kserve]) {
        for method in *methods {
            for code in CODES {
                counter!(telemetry::GRPC_REQUESTS, "service" => *service, "method" => *method,
                    "code" => code_name(*code))
                .absolute(0);
            }
        }
    }
}

/// The server span of one call (tonic's `trace_fn`): named by its path, e.g.
/// `tei.v1.Embed/Embed`, and a child of the caller's span when the metadata (HTTP/2 headers)
/// carry a `traceparent`.
pub fn call_span(request: &http::Request<()>) -> tracing::Span {
    let path = request.uri().path();
    let span = tracing::info_span!(
        "grpc call",
        otel.name = path.trim_start_matches('/'),
        otel.kind = "server",
        rpc.system = "grpc",
    );
    telemetry::traces::set_remote_parent(&span, request.headers());
    span
}

/// Runs one call and records its outcome, inside a `grpc` tracing span.
pub async fn observe<T>(
    service: &'static str,
    method: &'static str,
    call: impl Future<Output = Result<T, Status>>,
) -> Result<T, Status> {
    let span = tracing::info_span!("grpc", service, method);
    let started = Instant::now();
    let result = tracing::Instrument::instrument(call, span).await;
    let code = match &result {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    };
    counter!(telemetry::GRPC_REQUESTS, "service" => service, "method" => method,
        "code" => code_name(code))
    .increment(1);
    histogram!(telemetry::GRPC_DURATION, "service" => service, "method" => method)
        .record(started.elapsed().as_secs_f64());
    result
}

/// The canonical upper-case name of a code (`OK`, `INVALID_ARGUMENT`, ...).
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}
