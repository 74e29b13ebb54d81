//! `POST /v2/models/{name}/infer` and `/v2/models/{name}/versions/{version}/infer`.
//!
//! The unversioned route names the model like `/infer`'s `model` field does: it takes part in
//! canaries (sticky by `x-inferd-route-key`) and shadows. The versioned route pins that version.
//! Both go through [`embed`](crate::http::embed) and answer with the version that embedded.

use axum::{
    body::Bytes,
    extract::{rejection::BytesRejection, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde_json::{json, Value};

use super::{
    tensor::{binary_response, input_texts, split_body, wants_binary},
    InferenceRequest, InferenceResponse, KServeError, OutputTensor, OUTPUT,
};
use crate::{
    deploy::Target,
    http::{
        embed::{self, f32_le_bytes},
        error::ApiError,
        extract::{ApiPath, RouteKey},
        state::AppState,
    },
    model::tokenizer::Truncation,
    serving::{EmbedRequest, ModelRef},
};

/// Embeds a BYTES tensor of texts; answers an FP32 tensor `[n, dims]` (JSON or binary). Takes
/// part in canaries and shadows like `/infer`, sticky by `x-inferd-route-key`.
#[utoipa::path(post, path = "/v2/models/{name}/infer", tag = "kserve", operation_id = "kserve_infer",
    params(("name" = String, Path, description = "model name")),
    request_body = InferenceRequest,
    responses((status = 200, description = "JSON, or with binary outputs the JSON header then the tensor bytes",
            content((InferenceResponse = "application/json"), (Vec<u8> = "application/octet-stream"))),
        (status = "4XX", body = KServeError), (status = "5XX", body = KServeError)))]
pub(super) async fn infer(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    route_key: RouteKey,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let target = embed::target(Some(&name), route_key);
    run_infer(&state, &target, &headers, body).await
}

/// Infer on one model version, pinned: no canary split, no shadow copy.
#[utoipa::path(post, path = "/v2/models/{name}/versions/{version}/infer", tag = "kserve",
    params(("name" = String, Path, description = "model name"),
        ("version" = String, Path, description = "model version")),
    request_body = InferenceRequest,
    responses((status = 200, description = "JSON, or with binary outputs the JSON header then the tensor bytes",
            content((InferenceResponse = "application/json"), (Vec<u8> = "application/octet-stream"))),
        (status = "4XX", body = KServeError), (status = "5XX", body = KServeError)))]
pub(super) async fn version_infer(
    State(state): State<AppState>,
    ApiPath((name, version)): ApiPath<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let target = Target::pinned(ModelRef::pinned(&name, &version));
    run_infer(&state, &target, &headers, body).await
}

async fn run_infer(
    state: &AppState,
    target: &Target,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge {
            limit: state.limits.max_body_bytes,
        },
        _ => ApiError::InvalidJson(e.body_text()),
    })?;
    let routed = embed::route(state, target)?;
    let (req, binary) = split_body(headers, &body)?;
    let texts = input_texts(&req, binary, state.limits.max_client_batch)?;
    let n = texts.len();
    let flag = |key: &str, default: bool| -> Result<bool, ApiError> {
        match req.parameters.as_ref().and_then(|p| p.get(key)) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(ApiError::InvalidInput(format!(
                "parameter `{key}` must be a boolean"
            ))),
        }
    };
    let request = EmbedRequest {
        truncation: Truncation::from_flag(flag("truncate", state.limits.auto_truncate)?),
        normalize: flag("normalize", true)?,
        ..EmbedRequest::new(texts, state.deadline())
    };
    let binary_out = wants_binary(&req, flag("binary_data_output", false)?)?;
    let embedded = routed.embed(request).await?;
    let model = &routed.handle;
    let dims = model.info.dimensions;
    let flat: Vec<f32> = embedded.vectors.into_iter().flatten().collect();
    let mut output = OutputTensor {
        name: OUTPUT,
        datatype: "FP32",
        shape: vec![n, dims],
        parameters: None,
        data: None,
    };
    let tail = if binary_out {
        let bytes = f32_le_bytes(&flat);
        output.parameters = Some(json!({ "binary_data_size": bytes.len() }));
        Some(bytes)
    } else {
        output.data = Some(flat);
        None
    };
    let response = InferenceResponse {
        model_name: model.info.name.clone(),
        model_version: model.info.version.clone(),
        id: req.id.clone(),
        outputs: vec![output],
    };
    Ok(match tail {
        None => Json(response).into_response(),
        Some(bytes) => binary_response(&response, bytes),
    })
}
