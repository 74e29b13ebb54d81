//! Liveness, readiness and metrics: what Kubernetes and Prometheus poll.
//!
//! `/livez` answers as long as the process serves HTTP. `/readyz` (and its TEI-style alias
//! `/health`) is 200 only once a model is loaded and warmed and the service is not draining,
//! and, with `--index-required`, while every PostgreSQL index is reachable.

use axum::{extract::State, http::header, response::IntoResponse, Json};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::http::{error::ApiError, schema::ErrorResponse, state::AppState};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(livez))
        .routes(routes!(readyz))
        .routes(routes!(health))
        .routes(routes!(render_metrics))
}

#[derive(Serialize, ToSchema)]
pub struct Status {
    /// `alive` or `ready`.
    pub status: String,
}

/// Liveness: 200 while the process serves HTTP.
#[utoipa::path(get, path = "/livez", tag = "probes", responses((status = 200, body = Status)))]
async fn livez() -> Json<serde_json::Value> {
    Json(json!({"status": "alive"}))
}

/// Alias of `/readyz` (TEI's health route).
#[utoipa::path(get, path = "/health", tag = "probes",
    responses((status = 200, body = Status), (status = 503, body = ErrorResponse)))]
async fn health(state: State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    readyz(state).await
}

/// Readiness: 200 once a model is loaded and warm and the service is not draining (and, with
/// `--index-required`, every PostgreSQL index answers), else 503.
#[utoipa::path(get, path = "/readyz", tag = "probes",
    responses((status = 200, body = Status), (status = 503, body = ErrorResponse)))]
async fn readyz(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    state.health.check_ready()?;
    if state.index_required {
        let down = state.indexes.unavailable();
        if !down.is_empty() {
            return Err(ApiError::IndexUnavailable(format!(
                "--index-required and unreachable: {}",
                down.join(", ")
            )));
        }
    }
    Ok(Json(json!({"status": "ready"})))
}

/// Prometheus metrics, text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "probes",
    responses((status = 200, content_type = "text/plain", body = String)))]
async fn render_metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
