//! `GET /info`: what is being served and how, for operators and client libraries.

use axum::{extract::State, routing::get, Json, Router};
use serde::Serialize;

use crate::{
    error::ApiError,
    model::ModelInfo,
    registry::HandleConfig,
    state::{AppState, RequestLimits},
};

pub fn routes() -> Router<AppState> {
    Router::new().route("/info", get(info))
}

#[derive(Serialize)]
struct InfoResponse {
    /// The default model's description, flattened for single-model clients.
    #[serde(flatten)]
    default: ModelInfo,
    batching: Batching,
    limits: RequestLimits,
    models: Vec<ModelInfo>,
    inferd_version: &'static str,
}

#[derive(Serialize)]
struct Batching {
    max_queue_requests: usize,
    max_batch_tokens: usize,
    max_batch_requests: usize,
    /// Whether the forward pass packs sequences without padding (CPU) or pads (CUDA).
    packed: bool,
    tokenizer_workers: usize,
    queue_depth: usize,
}

impl Batching {
    fn new(config: &HandleConfig, queue_depth: usize) -> Self {
        Self {
            max_queue_requests: config.queue_capacity,
            max_batch_tokens: config.limits.max_tokens,
            max_batch_requests: config.limits.max_sequences,
            packed: config.limits.packed,
            tokenizer_workers: config.tokenizer_workers,
            queue_depth,
        }
    }
}

async fn info(State(state): State<AppState>) -> Result<Json<InfoResponse>, ApiError> {
    let default = state.registry.get(None)?;
    Ok(Json(InfoResponse {
        default: default.info.clone(),
        batching: Batching::new(&default.config, default.queue_depth()),
        limits: (*state.limits).clone(),
        models: state
            .registry
            .all()
            .iter()
            .map(|h| h.info.clone())
            .collect(),
        inferd_version: env!("CARGO_PKG_VERSION"),
    }))
}
