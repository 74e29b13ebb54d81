//! Liveness, readiness and metrics: what Kubernetes and Prometheus poll.
//!
//! `/livez` answers as long as the process serves HTTP. `/readyz` (and its TEI-style alias
//! `/health`) is 200 only once a model is loaded and warmed and the service is not draining.

use axum::{extract::State, http::header, response::IntoResponse, routing::get, Json, Router};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::http::openapi::ErrorResponse;
use crate::{http::error::ApiError, http::state::AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/health", get(health))
        .route("/metrics", get(render_metrics))
}

#[derive(Serialize, ToSchema)]
pub struct Status {
    /// `alive` or `ready`.
    pub status: String,
}

/// Liveness: 200 while the process serves HTTP.
#[utoipa::path(get, path = "/livez", tag = "probes", responses((status = 200, body = Status)))]
pub(crate) async fn livez() -> Json<serde_json::Value> {
    Json(json!({"status": "alive"}))
}

/// Alias of `/readyz` (TEI's health route).
#[utoipa::path(get, path = "/health", tag = "probes",
    responses((status = 200, body = Status), (status = 503, body = ErrorResponse)))]
pub(crate) async fn health(state: State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    readyz(state).await
}

/// Readiness: 200 once a model is loaded and warm and the service is not draining, else 503.
#[utoipa::path(get, path = "/readyz", tag = "probes",
    responses((status = 200, body = Status), (status = 503, body = ErrorResponse)))]
pub(crate) async fn readyz(
    State(state): State<AppState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if state.health.draining() {
        return Err(ApiError::ShuttingDown);
    }
    if !state.health.ready() {
        return Err(ApiError::NotReady);
    }
    Ok(Json(json!({"status": "ready"})))
}

/// Prometheus metrics, text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "probes",
    responses((status = 200, content_type = "text/plain", body = String)))]
pub(crate) async fn render_metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
