//! Liveness, readiness and metrics: what Kubernetes and Prometheus poll.
//!
//! `/livez` answers as long as the process serves HTTP. `/readyz` (and its TEI-style alias
//! `/health`) is 200 only once a model is loaded and warmed and the service is not draining.

use axum::{extract::State, http::header, response::IntoResponse, routing::get, Json, Router};
use serde_json::json;

use crate::{error::ApiError, state::AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/health", get(readyz))
        .route("/metrics", get(render_metrics))
}

async fn livez() -> Json<serde_json::Value> {
    Json(json!({"status": "alive"}))
}

async fn readyz(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    if state.health.draining() {
        return Err(ApiError::ShuttingDown);
    }
    if !state.health.ready() {
        return Err(ApiError::NotReady);
    }
    Ok(Json(json!({"status": "ready"})))
}

async fn render_metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
