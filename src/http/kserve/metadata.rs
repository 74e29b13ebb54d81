//! Server and model metadata and health: `GET /v2`, `/v2/health/{live,ready}`,
//! `/v2/models/{name}[/versions/{version}][/ready]`. Metadata describes what `name` means now
//! (its promoted version); it never carries traffic.

use std::sync::Arc;

use axum::{extract::State, Json};

use super::{KServeError, Live, ModelMetadata, ModelReady, Ready, ServerMetadata, TensorMetadata};
use crate::{
    http::{error::ApiError, extract::ApiPath, state::AppState},
    serving::{bytes_tensor::Signature, ModelHandle, ModelRef},
};

/// Server metadata.
#[utoipa::path(get, path = "/v2", tag = "kserve",
    responses((status = 200, body = ServerMetadata), (status = "4XX", body = KServeError)))]
pub(super) async fn server_metadata() -> Json<ServerMetadata> {
    Json(ServerMetadata {
        name: "inferd",
        version: env!("CARGO_PKG_VERSION"),
        extensions: vec!["binary_tensor_data"],
    })
}

/// Liveness: 200 while the process serves HTTP.
#[utoipa::path(get, path = "/v2/health/live", tag = "kserve",
    responses((status = 200, body = Live), (status = "4XX", body = KServeError)))]
pub(super) async fn live() -> Json<Live> {
    Json(Live { live: true })
}

/// Readiness: 200 once a model is warm and the service is not draining, else 503.
#[utoipa::path(get, path = "/v2/health/ready", tag = "kserve",
    responses((status = 200, body = Ready),
        (status = "4XX", body = KServeError), (status = "5XX", body = KServeError)))]
pub(super) async fn ready(State(state): State<AppState>) -> Result<Json<Ready>, ApiError> {
    state.health.check_ready()?;
    Ok(Json(Ready { ready: true }))
}

fn lookup(
    state: &AppState,
    name: &str,
    version: Option<&str>,
) -> Result<Arc<ModelHandle>, ApiError> {
    let model = ModelRef::named(name).or_version(version);
    Ok(state.registry.get(Some(&model))?)
}

fn metadata(handle: &ModelHandle) -> ModelMetadata {
    let signature = Signature::of(handle.info.kind);
    ModelMetadata {
        name: handle.info.name.clone(),
        versions: vec![handle.info.version.clone()],
        platform: "inferd",
        inputs: signature
            .inputs
            .iter()
            .map(|&name| TensorMetadata {
                name,
                datatype: "BYTES",
                shape: vec![-1],
            })
            .collect(),
        outputs: vec![TensorMetadata {
            name: signature.output,
            datatype: "FP32",
            shape: vec![-1, handle.info.dimensions as i64],
        }],
    }
}

/// Model metadata: BYTES input `text` `[-1]` and FP32 output `embedding` `[-1, dims]`; for a
/// reranker or classifier BYTES inputs `text` and (optional) `text_pair`, FP32 output `logits`
/// `[-1, labels]`.
#[utoipa::path(get, path = "/v2/models/{name}", tag = "kserve",
    params(("name" = String, Path, description = "model name")),
    responses((status = 200, body = ModelMetadata), (status = "4XX", body = KServeError)))]
pub(super) async fn model_metadata(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<ModelMetadata>, ApiError> {
    let handle = lookup(&state, &name, None)?;
    Ok(Json(metadata(&handle)))
}

/// Metadata of one model version.
#[utoipa::path(get, path = "/v2/models/{name}/versions/{version}", tag = "kserve",
    params(("name" = String, Path, description = "model name"),
        ("version" = String, Path, description = "model version")),
    responses((status = 200, body = ModelMetadata), (status = "4XX", body = KServeError)))]
pub(super) async fn version_metadata(
    State(state): State<AppState>,
    ApiPath((name, version)): ApiPath<(String, String)>,
) -> Result<Json<ModelMetadata>, ApiError> {
    let handle = lookup(&state, &name, Some(&version))?;
    Ok(Json(metadata(&handle)))
}

async fn ready_for(
    state: &AppState,
    name: &str,
    version: Option<&str>,
) -> Result<Json<ModelReady>, ApiError> {
    let handle = lookup(state, name, version)?;
    if !state.health.ready() {
        return Err(ApiError::NotReady);
    }
    Ok(Json(ModelReady {
        name: handle.info.name.clone(),
        ready: true,
    }))
}

/// Model readiness: 200 when it can serve, 404 for an unknown model, 503 otherwise.
#[utoipa::path(get, path = "/v2/models/{name}/ready", tag = "kserve",
    params(("name" = String, Path, description = "model name")),
    responses((status = 200, body = ModelReady),
        (status = "4XX", body = KServeError), (status = "5XX", body = KServeError)))]
pub(super) async fn model_ready(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<ModelReady>, ApiError> {
    ready_for(&state, &name, None).await
}

/// Readiness of one model version.
#[utoipa::path(get, path = "/v2/models/{name}/versions/{version}/ready", tag = "kserve",
    params(("name" = String, Path, description = "model name"),
        ("version" = String, Path, description = "model version")),
    responses((status = 200, body = ModelReady),
        (status = "4XX", body = KServeError), (status = "5XX", body = KServeError)))]
pub(super) async fn version_ready(
    State(state): State<AppState>,
    ApiPath((name, version)): ApiPath<(String, String)>,
) -> Result<Json<ModelReady>, ApiError> {
    ready_for(&state, &name, Some(&version)).await
}
