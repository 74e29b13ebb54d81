//! `GET /info`: what is being served and how, for operators and client libraries.

use axum::{extract::State, routing::get, Json, Router};
use serde::Serialize;

use crate::{
    error::ApiError,
    lifecycle::Role,
    model::ModelInfo,
    registry::{HandleConfig, ModelHandle},
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
    /// Every loaded version and its role (promoted, canary, shadow, standby).
    models: Vec<VersionInfo>,
    inferd_version: &'static str,
}

#[derive(Serialize)]
struct VersionInfo {
    #[serde(flatten)]
    info: ModelInfo,
    role: Role,
    /// Share of `model`'s requests this version answers as a canary.
    #[serde(skip_serializing_if = "Option::is_none")]
    canary_weight: Option<f64>,
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
            .map(|h| version_info(&state, h))
            .collect(),
        inferd_version: env!("CARGO_PKG_VERSION"),
    }))
}

fn version_info(state: &AppState, handle: &ModelHandle) -> VersionInfo {
    let table = state
        .registry
        .deployment(&handle.info.name)
        .map(|d| d.table());
    let role = table
        .as_ref()
        .map_or(Role::Standby, |t| t.role_of(&handle.info.version));
    let canary_weight = table
        .as_ref()
        .and_then(|t| t.canary.as_ref())
        .filter(|c| c.handle.info.version == handle.info.version)
        .map(|c| c.weight);
    VersionInfo {
        info: handle.info.clone(),
        role,
        canary_weight,
    }
}
