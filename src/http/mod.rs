//! The HTTP surface: routes, the JSON extractor, and the middleware every route shares.
//!
//! Each route group lives in its own file with a `routes()` function. Unknown routes and wrong
//! methods answer JSON like every other error; a panic in a handler becomes a generic JSON 500.
//! Request metrics are labelled by the matched route, never the raw path.

pub mod admin;
pub mod error;
mod extract;
mod kserve;
pub mod middleware;
mod native;
mod openai;
pub mod openapi;
mod recommend;
pub mod state;
mod tei;

use std::time::Instant;

use axum::{
    extract::{DefaultBodyLimit, MatchedPath, Request},
    http::Uri,
    middleware::{from_fn, from_fn_with_state, map_response, Next},
    response::{IntoResponse, Response},
    Router,
};
use tower_http::catch_panic::CatchPanicLayer;

pub(crate) use extract::map_rejection;
pub use extract::ApiJson;

use crate::{
    http::{
        error::ApiError,
        middleware::{auth, rate_limit},
        state::AppState,
    },
    telemetry,
};
use native::{infer, info, probes};
use recommend::items;

pub fn router(state: AppState) -> Router {
    let body_limit = state.limits.max_body_bytes;
    // Routes that serve models need a key when `--api-key-file` is set; probes, /metrics and
    // the API description stay open for the orchestrator, the scraper and readers. The last
    // layer added runs first: the key is checked, then the key's rate limit.
    let keyed = |routes: Router<AppState>| {
        routes
            .route_layer(from_fn_with_state(state.clone(), rate_limit::enforce))
            .route_layer(from_fn_with_state(state.clone(), auth::require_api_key))
    };
    // Each dialect re-shapes errors (its handlers' and the key check's) outside the key check.
    let api = Router::new()
        .merge(keyed(
            infer::routes()
                .merge(info::routes())
                .merge(recommend::routes())
                .merge(items::routes()),
        ))
        .merge(keyed(tei::routes()).layer(map_response(tei::error_shape)))
        .merge(keyed(openai::routes()).layer(map_response(openai::error_shape)))
        .merge(keyed(kserve::routes()).layer(map_response(kserve::error_shape)));
    Router::new()
        .merge(api)
        .merge(probes::routes())
        .merge(openapi::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(from_fn(track))
        .layer(CatchPanicLayer::custom(panic_response))
        .with_state(state)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(uri.path().to_string())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::Internal("handler panicked".into()).into_response()
}

/// Counts and times every request by matched route.
async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = request.method().to_string();
    telemetry::http_in_flight(1.0);
    let response = next.run(request).await;
    telemetry::http_in_flight(-1.0);
    telemetry::http_request(
        &route,
        &method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}
