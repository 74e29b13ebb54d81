//! Counts and times every request by matched route (never the raw path), and turns a panic in a
//! handler into a generic JSON 500.

use std::time::Instant;

use axum::{
    extract::{MatchedPath, Request},
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::http::{error::ApiError, metrics};

/// Counts and times every request by matched route.
pub async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = request.method().to_string();
    metrics::http_in_flight(1.0);
    let response = next.run(request).await;
    metrics::http_in_flight(-1.0);
    metrics::http_request(
        &route,
        &method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// The body of a panicked handler's response (`CatchPanicLayer`): the detail is logged only.
pub fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::Internal("handler panicked".into()).into_response()
}
