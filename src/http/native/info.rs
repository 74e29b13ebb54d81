//! `GET /info`: what is being served and how, for operators and client libraries.
//!
//! One document for two audiences: inferd's own fields (the default model flattened, batching,
//! limits, every model) and, alongside them, the fields of text-embeddings-inference's `/info`
//! (`model_id`, `model_dtype`, `max_input_length`, ...) so TEI clients read it unchanged. TEI's
//! `version` (its router's version) is the one field that is not there: `version` is the model's
//! version here, and inferd's own is `inferd_version`.

use axum::{extract::State, Json};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    deploy::Role,
    http::{
        error::ApiError,
        schema::ErrorResponse,
        state::{AppState, RequestLimits},
    },
    model::{heads::ModelKind, ModelInfo},
    serving::{HandleConfig, ModelHandle},
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(info))
}

#[derive(Serialize, ToSchema)]
pub struct InfoResponse {
    /// The default model's description, flattened for single-model clients.
    #[serde(flatten)]
    default: ModelInfo,
    #[serde(flatten)]
    tei: TeiInfo,
    batching: Batching,
    limits: RequestLimits,
    /// Every loaded version and its role (promoted, canary, shadow, standby).
    models: Vec<VersionInfo>,
    inferd_version: &'static str,
}

/// text-embeddings-inference's `/info` fields, describing the default model.
#[derive(Serialize, ToSchema)]
struct TeiInfo {
    model_id: String,
    /// The pinned revision, when the model came from a hub with one.
    model_sha: Option<String>,
    model_dtype: String,
    /// `{"embedding": {"pooling": "mean"}}`, or `{"reranker" | "classifier": {"id2label",
    /// "label2id"}}`.
    #[schema(value_type = Object)]
    model_type: serde_json::Value,
    /// The queue capacity: requests beyond it get 503 at once.
    max_concurrent_requests: usize,
    max_input_length: usize,
    max_batch_tokens: usize,
    max_batch_requests: Option<usize>,
    max_client_batch_size: usize,
    /// `--auto-truncate`: over-long inputs are cut unless a request says `truncate: false`.
    auto_truncate: bool,
    tokenization_workers: usize,
}

impl TeiInfo {
    fn new(handle: &ModelHandle, limits: &RequestLimits) -> Self {
        let info = &handle.info;
        let config = &handle.config;
        Self {
            model_id: info.name.clone(),
            model_sha: info.revision.clone(),
            model_dtype: info.dtype.clone(),
            model_type: tei_model_type(info),
            max_concurrent_requests: config.queue_capacity,
            max_input_length: info.max_seq_length,
            max_batch_tokens: config.limits.max_tokens,
            max_batch_requests: Some(config.limits.max_sequences),
            max_client_batch_size: limits.max_client_batch,
            auto_truncate: limits.auto_truncate,
            tokenization_workers: config.tokenizer_workers,
        }
    }
}

/// TEI's `model_type` object for `info`'s kind.
fn tei_model_type(info: &ModelInfo) -> serde_json::Value {
    if info.kind == ModelKind::Embedding {
        return serde_json::json!({"embedding": {"pooling": info.pooling.join("+")}});
    }
    let labels = || info.labels.iter().enumerate();
    let id2label: serde_json::Map<String, serde_json::Value> = labels()
        .map(|(i, label)| (i.to_string(), label.clone().into()))
        .collect();
    let label2id: serde_json::Map<String, serde_json::Value> = labels()
        .map(|(i, label)| (label.clone(), i.into()))
        .collect();
    serde_json::json!({info.kind.as_str(): {"id2label": id2label, "label2id": label2id}})
}

#[derive(Serialize, ToSchema)]
struct VersionInfo {
    #[serde(flatten)]
    info: ModelInfo,
    /// `promoted`, `canary`, `shadow` or `standby`.
    #[schema(value_type = String)]
    role: Role,
    /// Share of `model`'s requests this version answers as a canary.
    #[serde(skip_serializing_if = "Option::is_none")]
    canary_weight: Option<f64>,
}

#[derive(Serialize, ToSchema)]
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

/// What is served and how (a superset of TEI's `/info`).
#[utoipa::path(get, path = "/info", tag = "inferd",
    responses((status = 200, body = InfoResponse),
        (status = "4XX", body = ErrorResponse), (status = "5XX", body = ErrorResponse)))]
async fn info(State(state): State<AppState>) -> Result<Json<InfoResponse>, ApiError> {
    let default = state.registry.get(None)?;
    Ok(Json(InfoResponse {
        default: default.info.clone(),
        tei: TeiInfo::new(&default, &state.limits),
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
    let role = role_of(state, handle);
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

/// `handle`'s role in its model's deployment (`standby` outside one).
pub(super) fn role_of(state: &AppState, handle: &ModelHandle) -> Role {
    state
        .registry
        .deployment(&handle.info.name)
        .map_or(Role::Standby, |d| d.table().role_of(&handle.info.version))
}
