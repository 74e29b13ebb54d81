//! The KServe Open Inference Protocol v2 (REST) dialect: server and model metadata, health, and
//! `infer` with one BYTES input tensor of texts → one FP32 output tensor `[n, dims]`.
//!
//! Infer goes through [`embed_texts`] like `/infer`. Both the JSON form and the binary tensor
//! data extension are understood (`Inference-Header-Content-Length`; `tritonclient.http` uses it
//! by default): BYTES elements are 4-byte little-endian lengths followed by the bytes, FP32 output
//! is little-endian. Errors are re-shaped to OIP's `{"error": "..."}` by [`error_shape`].

use axum::{
    body::Bytes,
    extract::{rejection::BytesRejection, Path, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use utoipa::ToSchema;

use crate::http::native::infer::{check_batch, embed_texts};
use crate::{
    http::error::{ApiError, ErrorParts},
    http::state::AppState,
    model::tokenizer::Truncation,
    serving::handle::ModelHandle,
};

const HEADER_LENGTH: &str = "inference-header-content-length";
const INPUT: &str = "text";
const OUTPUT: &str = "embedding";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2", get(server_metadata))
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(ready))
        .route("/v2/models/{name}", get(model_metadata))
        .route(
            "/v2/models/{name}/versions/{version}",
            get(version_metadata),
        )
        .route("/v2/models/{name}/ready", get(model_ready))
        .route(
            "/v2/models/{name}/versions/{version}/ready",
            get(version_ready),
        )
        .route("/v2/models/{name}/infer", post(infer))
        .route(
            "/v2/models/{name}/versions/{version}/infer",
            post(version_infer),
        )
}

/// Re-shapes an inferd error into OIP's `{"error": "..."}`; a `map_response` layer.
pub async fn error_shape(response: Response) -> Response {
    crate::http::error::reshape(
        response,
        |parts: &ErrorParts, _: StatusCode| json!({ "error": parts.message }),
    )
}

#[derive(Serialize, ToSchema)]
pub struct KServeError {
    pub error: String,
}

#[derive(Serialize, ToSchema)]
pub struct ServerMetadata {
    pub name: &'static str,
    pub version: &'static str,
    pub extensions: Vec<&'static str>,
}

/// Server metadata.
#[utoipa::path(get, path = "/v2", tag = "kserve",
    responses((status = 200, body = ServerMetadata), (status = "4XX", body = KServeError)))]
pub(crate) async fn server_metadata() -> Json<ServerMetadata> {
    Json(ServerMetadata {
        name: "inferd",
        version: env!("CARGO_PKG_VERSION"),
        extensions: vec!["binary_tensor_data"],
    })
}

#[derive(Serialize, ToSchema)]
pub struct Live {
    pub live: bool,
}

#[derive(Serialize, ToSchema)]
pub struct Ready {
    pub ready: bool,
}

/// Liveness: 200 while the process serves HTTP.
#[utoipa::path(get, path = "/v2/health/live", tag = "kserve",
    responses((status = 200, body = Live), (status = "4XX", body = KServeError)))]
pub(crate) async fn live() -> Json<Live> {
    Json(Live { live: true })
}

/// Readiness: 200 once a model is warm and the service is not draining, else 503.
#[utoipa::path(get, path = "/v2/health/ready", tag = "kserve",
    responses((status = 200, body = Ready),
        (status = "4XX", body = KServeError), (status = "5XX", body = KServeError)))]
pub(crate) async fn ready(State(state): State<AppState>) -> Result<Json<Ready>, ApiError> {
    if state.health.draining() {
        return Err(ApiError::ShuttingDown);
    }
    if !state.health.ready() {
        return Err(ApiError::NotReady);
    }
    Ok(Json(Ready { ready: true }))
}

#[derive(Serialize, ToSchema)]
pub struct TensorMetadata {
    pub name: &'static str,
    pub datatype: &'static str,
    pub shape: Vec<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct ModelMetadata {
    pub name: String,
    pub versions: Vec<String>,
    pub platform: &'static str,
    pub inputs: Vec<TensorMetadata>,
    pub outputs: Vec<TensorMetadata>,
}

fn lookup(
    state: &AppState,
    name: &str,
    version: Option<&str>,
) -> Result<Arc<ModelHandle>, ApiError> {
    match version {
        Some(version) => state.registry.get(Some(&format!("{name}@{version}"))),
        None => state.registry.get(Some(name)),
    }
}

fn metadata(handle: &ModelHandle) -> ModelMetadata {
    ModelMetadata {
        name: handle.info.name.clone(),
        versions: vec![handle.info.version.clone()],
        platform: "inferd",
        inputs: vec![TensorMetadata {
            name: INPUT,
            datatype: "BYTES",
            shape: vec![-1],
        }],
        outputs: vec![TensorMetadata {
            name: OUTPUT,
            datatype: "FP32",
            shape: vec![-1, handle.info.dimensions as i64],
        }],
    }
}

/// Model metadata: one BYTES input `text` `[-1]`, one FP32 output `embedding` `[-1, dims]`.
#[utoipa::path(get, path = "/v2/models/{name}", tag = "kserve",
    params(("name" = String, Path, description = "model name")),
    responses((status = 200, body = ModelMetadata), (status = "4XX", body = KServeError)))]
pub(crate) async fn model_metadata(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<ModelMetadata>, ApiError> {
    let handle = lookup(&state, &name, None)?;
    Ok(Json(metadata(&handle)))
}

/// Metadata of one model version.
#[utoipa::path(get, path = "/v2/models/{name}/versions/{version}", tag = "kserve",
    params(("name" = String, Path, description = "model name"),
        ("version" = String, Path, description = "model version")),
    responses((status = 200, body = ModelMetadata), (status = "4XX", body = KServeError)))]
pub(crate) async fn version_metadata(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<ModelMetadata>, ApiError> {
    let handle = lookup(&state, &name, Some(&version))?;
    Ok(Json(metadata(&handle)))
}

#[derive(Serialize, ToSchema)]
pub struct ModelReady {
    pub name: String,
    pub ready: bool,
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
pub(crate) async fn model_ready(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<ModelReady>, ApiError> {
    ready_for(&state, &name, None).await
}

/// Readiness of one model version.
#[utoipa::path(get, path = "/v2/models/{name}/versions/{version}/ready", tag = "kserve",
    params(("name" = String, Path, description = "model name"),
        ("version" = String, Path, description = "model version")),
    responses((status = 200, body = ModelReady),
        (status = "4XX", body = KServeError), (status = "5XX", body = KServeError)))]
pub(crate) async fn version_ready(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<ModelReady>, ApiError> {
    ready_for(&state, &name, Some(&version)).await
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct InferRequest {
    pub id: Option<String>,
    /// `binary_data_output` (bool), and inferd's `normalize` / `truncate` (bools, default true).
    #[schema(value_type = Object)]
    pub parameters: Option<Map<String, Value>>,
    #[schema(min_items = 1, max_items = 1)]
    pub inputs: Vec<InputTensor>,
    pub outputs: Option<Vec<RequestedOutput>>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct InputTensor {
    /// Must be `text`.
    pub name: String,
    pub shape: Vec<u64>,
    /// Must be `BYTES`.
    pub datatype: String,
    /// `binary_data_size` when the data follows the JSON header in binary.
    #[schema(value_type = Object)]
    pub parameters: Option<Map<String, Value>>,
    /// Strings, flat or nested to the tensor's shape.
    #[schema(value_type = Vec<String>)]
    pub data: Option<Value>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RequestedOutput {
    /// Must be `embedding`.
    pub name: String,
    /// `binary_data` (bool) asks for the tensor in binary after the JSON header.
    #[schema(value_type = Object)]
    pub parameters: Option<Map<String, Value>>,
}

#[derive(Serialize, ToSchema)]
pub struct InferResponse {
    pub model_name: String,
    pub model_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub outputs: Vec<OutputTensor>,
}

#[derive(Serialize, ToSchema)]
pub struct OutputTensor {
    pub name: &'static str,
    pub datatype: &'static str,
    pub shape: Vec<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub parameters: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Vec<f32>>,
}

/// Embeds a BYTES tensor of texts; answers an FP32 tensor `[n, dims]` (JSON or binary).
#[utoipa::path(post, path = "/v2/models/{name}/infer", tag = "kserve",
    params(("name" = String, Path, description = "model name")),
    request_body = InferRequest,
    responses((status = 200, description = "JSON, or with binary outputs the JSON header then the tensor bytes",
            content((InferResponse = "application/json"), (Vec<u8> = "application/octet-stream"))),
        (status = "4XX", body = KServeError), (status = "5XX", body = KServeError)))]
pub(crate) async fn infer(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    run_infer(&state, &name, None, &headers, body).await
}

/// Infer on one model version.
#[utoipa::path(post, path = "/v2/models/{name}/versions/{version}/infer", tag = "kserve",
    params(("name" = String, Path, description = "model name"),
        ("version" = String, Path, description = "model version")),
    request_body = InferRequest,
    responses((status = 200, description = "JSON, or with binary outputs the JSON header then the tensor bytes",
            content((InferResponse = "application/json"), (Vec<u8> = "application/octet-stream"))),
        (status = "4XX", body = KServeError), (status = "5XX", body = KServeError)))]
pub(crate) async fn version_infer(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    run_infer(&state, &name, Some(&version), &headers, body).await
}

async fn run_infer(
    state: &AppState,
    name: &str,
    version: Option<&str>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge {
            limit: state.limits.max_body_bytes,
        },
        _ => ApiError::InvalidJson(e.body_text()),
    })?;
    let handle = lookup(state, name, version)?;
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
    let normalize = flag("normalize", true)?;
    let truncation = Truncation::from_flag(flag("truncate", true)?);
    let binary_out = wants_binary(&req, flag("binary_data_output", false)?)?;
    let key = format!("{}@{}", handle.info.name, handle.info.version);
    let (model, embedded) = embed_texts(state, Some(&key), texts, truncation, normalize).await?;
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
        let bytes: Vec<u8> = flat.iter().flat_map(|x| x.to_le_bytes()).collect();
        output.parameters = Some(json!({ "binary_data_size": bytes.len() }));
        Some(bytes)
    } else {
        output.data = Some(flat);
        None
    };
    let response = InferResponse {
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

/// Splits a request into its JSON header and the binary data after it, if any.
fn split_body<'a>(
    headers: &HeaderMap,
    body: &'a [u8],
) -> Result<(InferRequest, &'a [u8]), ApiError> {
    let json_len = match headers.get(HEADER_LENGTH) {
        None => body.len(),
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|&n| n <= body.len())
            .ok_or_else(|| {
                ApiError::InvalidInput(format!(
                    "`Inference-Header-Content-Length` must be a byte count within the body's {} bytes",
                    body.len()
                ))
            })?,
    };
    let (head, binary) = body.split_at(json_len);
    let req = serde_json::from_slice::<InferRequest>(head).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::InvalidInput(e.to_string()),
        _ => ApiError::InvalidJson(e.to_string()),
    })?;
    Ok((req, binary))
}

/// The texts of the one BYTES input, from JSON `data` or the binary tail.
fn input_texts(req: &InferRequest, binary: &[u8], max: usize) -> Result<Vec<String>, ApiError> {
    let invalid = |msg: String| ApiError::InvalidInput(msg);
    let [input] = req.inputs.as_slice() else {
        return Err(invalid(format!(
            "expected exactly one input tensor `{INPUT}`, got {}",
            req.inputs.len()
        )));
    };
    if input.name != INPUT {
        return Err(invalid(format!(
            "unknown input {:?}; the model's input is `{INPUT}`",
            input.name
        )));
    }
    if input.datatype != "BYTES" {
        return Err(invalid(format!(
            "input `{INPUT}` must have datatype BYTES, got {:?}",
            input.datatype
        )));
    }
    let binary_size = input
        .parameters
        .as_ref()
        .and_then(|p| p.get("binary_data_size"))
        .map(|v| v.as_u64().map(|n| n as usize));
    let texts = match (binary_size, &input.data) {
        (Some(Some(size)), None) if size == binary.len() => decode_bytes_tensor(&binary[..size])?,
        (Some(Some(size)), None) => {
            return Err(invalid(format!(
                "input `{INPUT}` says {size} bytes of binary data but {} follow the header",
                binary.len()
            )))
        }
        (None, Some(data)) if binary.is_empty() => flatten_strings(data)?,
        _ => {
            return Err(invalid(format!(
                "input `{INPUT}` needs either `data` or a `binary_data_size` parameter matching the binary tail"
            )))
        }
    };
    let elements = input
        .shape
        .iter()
        .try_fold(1u64, |product, &dim| product.checked_mul(dim));
    if input.shape.is_empty() || elements != Some(texts.len() as u64) {
        return Err(invalid(format!(
            "input `{INPUT}` has shape {:?} but {} elements",
            input.shape,
            texts.len()
        )));
    }
    check_batch(INPUT, texts.len(), max)?;
    match texts.iter().position(String::is_empty) {
        Some(i) => Err(invalid(format!(
            "element {i} of `{INPUT}` is an empty string"
        ))),
        None => Ok(texts),
    }
}

/// BYTES in binary: each element is a u32 little-endian length, then that many bytes.
fn decode_bytes_tensor(mut data: &[u8]) -> Result<Vec<String>, ApiError> {
    let mut texts = Vec::new();
    while !data.is_empty() {
        let bad = || ApiError::InvalidInput("malformed BYTES tensor data".into());
        let len_bytes: [u8; 4] = data
            .get(..4)
            .ok_or_else(bad)?
            .try_into()
            .map_err(|_| bad())?;
        let len = u32::from_le_bytes(len_bytes) as usize;
        let text = data.get(4..4 + len).ok_or_else(bad)?;
        let text = std::str::from_utf8(text).map_err(|_| {
            ApiError::InvalidInput(format!("element {} of `{INPUT}` is not UTF-8", texts.len()))
        })?;
        texts.push(text.to_string());
        data = &data[4 + len..];
    }
    Ok(texts)
}

/// JSON `data`: strings, flat or nested in lists.
fn flatten_strings(data: &Value) -> Result<Vec<String>, ApiError> {
    let mut out = Vec::new();
    let mut stack = vec![data];
    while let Some(value) = stack.pop() {
        match value {
            Value::String(s) => out.push(s.clone()),
            Value::Array(items) => stack.extend(items.iter().rev()),
            _ => {
                return Err(ApiError::InvalidInput(format!(
                    "`{INPUT}` data must be strings (BYTES)"
                )))
            }
        }
    }
    Ok(out)
}

/// Whether the output goes back in binary; unknown requested outputs are an error.
fn wants_binary(req: &InferRequest, default: bool) -> Result<bool, ApiError> {
    let Some(outputs) = &req.outputs else {
        return Ok(default);
    };
    let mut binary = default;
    for output in outputs {
        if output.name != OUTPUT {
            return Err(ApiError::InvalidInput(format!(
                "unknown output {:?}; the model's output is `{OUTPUT}`",
                output.name
            )));
        }
        if let Some(flag) = output
            .parameters
            .as_ref()
            .and_then(|p| p.get("binary_data"))
        {
            binary = flag.as_bool().ok_or_else(|| {
                ApiError::InvalidInput("output parameter `binary_data` must be a boolean".into())
            })?;
        }
    }
    Ok(binary)
}

fn binary_response(response: &InferResponse, tail: Vec<u8>) -> Response {
    let mut body = serde_json::to_vec(response).expect("response serialises");
    let json_len = body.len();
    body.extend_from_slice(&tail);
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(HEADER_LENGTH, HeaderValue::from(json_len));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_tensor_round_trip() {
        let mut data = Vec::new();
        for text in ["héllo", "a b"] {
            data.extend_from_slice(&(text.len() as u32).to_le_bytes());
            data.extend_from_slice(text.as_bytes());
        }
        assert_eq!(decode_bytes_tensor(&data).unwrap(), vec!["héllo", "a b"]);
        assert!(decode_bytes_tensor(&data[..data.len() - 1]).is_err());
        assert!(decode_bytes_tensor(&[1, 0]).is_err());
    }

    #[test]
    fn json_data_may_be_nested() {
        assert_eq!(
            flatten_strings(&json!([["a"], ["b"]])).unwrap(),
            vec!["a", "b"]
        );
        assert!(flatten_strings(&json!([1])).is_err());
    }
}
