//! `POST /v2/models/{name}/infer` and `/v2/models/{name}/versions/{version}/infer`.
//!
//! The unversioned route names the model like `/infer`'s `model` field does: it takes part in
//! canaries (sticky by `x-inferd-route-key`) and shadows. The versioned route pins that version.
//! Both go through [`embed`](crate::http::embed)'s routing and answer with the version that ran:
//! an embedding model embeds `text` (FP32 `embedding` `[n, dims]`); a reranker or classifier
//! scores each `text`, or each (`text`, `text_pair`) pair, with its head (FP32 `logits`
//! `[n, labels]`, raw: softmax or sigmoid is the caller's).

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
    InferenceRequest, InferenceResponse, KServeError, OutputTensor,
};
use crate::{
    deploy::{Target, TensorInputs},
    http::{
        embed::{self, f32_le_bytes},
        error::ApiError,
        extract::{ApiPath, RouteKey},
        state::AppState,
    },
    model::tokenizer::Truncation,
    serving::{bytes_tensor::Signature, ModelRef},
};

/// Embeds a BYTES tensor of texts (FP32 `embedding` `[n, dims]`), or scores texts and optional
/// `text_pair`s with a reranker or classifier (FP32 `logits` `[n, labels]`); JSON or binary.
/// Takes part in canaries and shadows like `/infer`, sticky by `x-inferd-route-key`.
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
    let signature = Signature::of(routed.handle.info.kind);
    let mut inputs = input_texts(&req, binary, &signature, state.limits.max_client_batch)?;
    let texts = inputs[0].take().expect("the texts are required");
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
    let truncation = Truncation::from_flag(flag("truncate", state.limits.auto_truncate)?);
    let binary_out = wants_binary(&req, &signature, flag("binary_data_output", false)?)?;
    let rows = routed
        .rows(TensorInputs {
            texts,
            pairs: inputs.get_mut(1).and_then(Option::take),
            truncation,
            normalize: flag("normalize", true)?,
            deadline: state.deadline(),
        })
        .await?;
    let model = &routed.handle;
    let width = model.info.dimensions;
    let flat: Vec<f32> = rows.into_iter().flatten().collect();
    let mut output = OutputTensor {
        name: signature.output,
        datatype: "FP32",
        shape: vec![n, width],
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
