//! Request ids and request spans of the serving API.
//!
//! [`request_id`] runs first: it keeps the caller's `x-request-id` (visible ASCII, at most
//! [`MAX_REQUEST_ID`] bytes), or makes one, puts it on the request for everything after, and
//! returns it on the response (errors and panics included). [`layer`] is tower-http's
//! `TraceLayer` with one `http` span per request, named `METHOD /matched/route` (never the raw
//! path), carrying the request id and the status, and a child of the caller's span when a W3C
//! `traceparent` header names one. Every span of the request (routing, admission, tokenize,
//! queue, and the batch through its link) hangs below it. Probes and `/metrics` are not traced
//! unless the caller asks with a `traceparent`.

use std::time::Duration;

use axum::{
    body::Body,
    extract::{MatchedPath, Request},
    http::{HeaderName, HeaderValue},
    middleware::Next,
    response::Response,
};
use tower_http::{
    classify::{ServerErrorsAsFailures, SharedClassifier},
    trace::TraceLayer,
};
use tracing::{field::Empty, Span};

use crate::{http::native::OPEN_PATHS, telemetry::traces};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest caller-chosen request id kept; a longer one is replaced.
pub const MAX_REQUEST_ID: usize = 128;

/// The `TraceLayer` of the serving API: [`request_span`] and [`record_status`]; one `debug` log
/// line per answer, nothing else.
pub type HttpTrace = TraceLayer<
    SharedClassifier<ServerErrorsAsFailures>,
    fn(&Request) -> Span,
    (),
    fn(&Response, Duration, &Span),
    (),
    (),
    (),
>;

/// The request span layer; layer it inside [`request_id`], so the span carries the id.
pub fn layer() -> HttpTrace {
    TraceLayer::new_for_http()
        .make_span_with(request_span as fn(&Request) -> Span)
        .on_request(())
        .on_response(record_status as fn(&Response, Duration, &Span))
        .on_body_chunk(())
        .on_eos(())
        .on_failure(())
}

/// One `http` span per request, labelled by matched route, child of the caller's trace. Probes
/// and `/metrics` get none unless the caller sends a `traceparent`: kubelets and scrapers would
/// otherwise start a trace every few seconds.
fn request_span(request: &Request) -> Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str());
    if OPEN_PATHS.contains(&route) && !request.headers().contains_key("traceparent") {
        return Span::none();
    }
    let method = request.method();
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let span = tracing::info_span!(
        "http",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = %method,
        http.route = route,
        http.response.status_code = Empty,
        request_id,
    );
    traces::set_remote_parent(&span, request.headers());
    span
}

/// The response status on the request span (a 5xx marks the span as an error), and a `debug`
/// line inside it, which JSON logs stamp with the trace and span id.
fn record_status(response: &Response, latency: Duration, span: &Span) {
    let status = response.status();
    span.record("http.response.status_code", i64::from(status.as_u16()));
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    tracing::debug!(
        status = status.as_u16(),
        latency_ms = latency.as_secs_f64() * 1e3,
        "request answered"
    );
}

/// Keeps or makes the request id, and returns it as `x-request-id`.
pub async fn request_id(mut request: Request<Body>, next: Next) -> Response {
    let id = request
        .headers()
        .get(REQUEST_ID)
        .filter(|v| acceptable(v))
        .cloned()
        .unwrap_or_else(new_request_id);
    request.headers_mut().insert(REQUEST_ID, id.clone());
    let mut response = next.run(request).await;
    response.headers_mut().insert(REQUEST_ID, id);
    response
}

/// A caller's id is kept when it is 1 to [`MAX_REQUEST_ID`] visible ASCII characters.
fn acceptable(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty() && bytes.len() <= MAX_REQUEST_ID && bytes.iter().all(u8::is_ascii_graphic)
}

/// 128 random bits in hex, like a W3C trace id.
fn new_request_id() -> HeaderValue {
    HeaderValue::from_str(&format!("{:032x}", fastrand::u128(..))).expect("hex is a header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_sane_caller_ids_and_replaces_the_rest() {
        assert!(acceptable(&HeaderValue::from_static("req-42_a.b")));
        assert!(!acceptable(&HeaderValue::from_static("")));
        assert!(!acceptable(&HeaderValue::from_static("has space")));
        let long = "x".repeat(MAX_REQUEST_ID + 1);
        assert!(!acceptable(&HeaderValue::from_str(&long).unwrap()));
        let made = new_request_id();
        assert_eq!(made.len(), 32);
        assert!(acceptable(&made));
    }
}
