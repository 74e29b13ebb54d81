//! Trace context across boundaries: from a caller's W3C `traceparent`/`tracestate` headers (HTTP
//! headers and gRPC metadata alike) into a server span, and from the requests a forward batch
//! serves into that batch's span. Every function is a no-op while export is off.

use opentelemetry::{propagation::Extractor, trace::TraceContextExt};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// `traceparent` and `tracestate` as the propagator reads them from a header map.
struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key)?.to_str().ok()
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Makes `span` a child of the caller's span when `headers` carry a valid `traceparent` (with
/// its `tracestate`); without one `span` stays the root of a new trace. Call it before the span
/// is first entered.
pub fn set_remote_parent(span: &tracing::Span, headers: &http::HeaderMap) {
    if !headers.contains_key("traceparent") {
        return;
    }
    let cx = opentelemetry::global::get_text_map_propagator(|p| p.extract(&Headers(headers)));
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

/// The span one forward batch runs in. Requests from many traces share a batch, so the batch is
/// a child of the first request it serves and *links* to every request it serves (the first
/// included): each request's trace reaches the batch, and the batch names all its requests.
pub fn batch_span(requests: &[&tracing::Span], sequences: usize, tokens: usize) -> tracing::Span {
    let span = tracing::info_span!(
        parent: None,
        "batch",
        batch.requests = requests.len() as i64,
        batch.sequences = sequences as i64,
        batch.tokens = tokens as i64,
    );
    if span.is_disabled() {
        return span;
    }
    for request in requests {
        let cx = request.context();
        let linked = cx.span().span_context().clone();
        if linked.is_valid() {
            span.add_link(linked);
        }
    }
    if let Some(first) = requests.first() {
        let _ = span.set_parent(first.context());
    }
    span
}

/// The trace and span id of `span` in lower-case hex (as `traceparent` writes them), when it
/// belongs to an exported trace.
pub fn ids_of(span: &tracing::Span) -> Option<(String, String)> {
    let cx = span.context();
    let ids = cx.span().span_context().clone();
    ids.is_valid()
        .then(|| (ids.trace_id().to_string(), ids.span_id().to_string()))
}
