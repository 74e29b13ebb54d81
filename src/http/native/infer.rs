//! `POST /infer`: embeddings for one text or a list of texts.
//!
//! `inputs` must be a non-empty string or a non-empty list of non-empty strings, at most
//! `--max-client-batch` of them; `model` names `name` or `name@version` (default: the default
//! model). The answering version is in the `x-model-version` header.

use axum::{
    extract::State,
    http::{HeaderName, HeaderValue},
    Json,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    http::{
        embed::{self, parse_inputs},
        error::ApiError,
        extract::{ApiJson, RouteKey},
        schema::{texts_schema, yes, ErrorResponse},
        state::AppState,
    },
    serving::{EmbedRequest, Priority},
};

/// Response header naming the version that answered (`name@version` is the request's business).
pub const MODEL_VERSION_HEADER: HeaderName = HeaderName::from_static("x-model-version");

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(infer))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InferRequest {
    /// A string or a list of strings; checked by [`parse_inputs`] for clear messages.
    #[schema(schema_with = texts_schema)]
    pub inputs: Value,
    /// L2-normalise the vectors (default true).
    #[serde(default = "yes")]
    pub normalize: bool,
    /// Cut inputs longer than the model's limit (absent: the server's `--auto-truncate`,
    /// default true); false makes them a 413.
    pub truncate: Option<bool>,
    /// `name` or `name@version`; the default model when absent.
    pub model: Option<String>,
    /// A sentence-transformers prompt of the model (see `/info` `prompts`), prepended to every
    /// input; absent: the model's `default_prompt_name`, if any. Unknown names are a 422.
    pub prompt_name: Option<String>,
    /// Matryoshka truncation: keep the first N values (renormalised when `normalize`);
    /// 1 to the model's dimensions, else 422.
    #[schema(minimum = 1)]
    pub dimensions: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InferResponse {
    pub model: String,
    pub version: String,
    pub dimensions: usize,
    pub embeddings: Vec<Vec<f32>>,
    pub usage: Usage,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Usage {
    pub prompt_tokens: usize,
}

/// Embeds one text or a list of texts with the named (or default) model.
#[utoipa::path(post, path = "/infer", tag = "inferd", request_body = InferRequest,
    responses((status = 200, body = InferResponse),
        (status = "4XX", body = ErrorResponse), (status = "5XX", body = ErrorResponse)))]
async fn infer(
    State(state): State<AppState>,
    route_key: RouteKey,
    ApiJson(req): ApiJson<InferRequest>,
) -> Result<([(HeaderName, HeaderValue); 1], Json<InferResponse>), ApiError> {
    let texts = parse_inputs(req.inputs, state.limits.max_client_batch)?;
    let target = embed::target(req.model.as_deref(), route_key);
    let request = EmbedRequest {
        texts,
        truncation: state.limits.truncation(req.truncate, false),
        normalize: req.normalize,
        deadline: state.deadline(),
        prompt_name: req.prompt_name,
        dimensions: req.dimensions,
        priority: Priority::Interactive,
    };
    let (routed, embedded) = embed::embed(&state, &target, request).await?;
    let version = HeaderValue::from_str(routed.version())
        .map_err(|_| ApiError::Internal("version label is not a valid header".into()))?;
    let info = &routed.handle.info;
    let body = Json(InferResponse {
        model: info.name.clone(),
        version: info.version.clone(),
        dimensions: req.dimensions.unwrap_or(info.dimensions),
        embeddings: embedded.vectors,
        usage: Usage {
            prompt_tokens: embedded.prompt_tokens,
        },
    });
    Ok(([(MODEL_VERSION_HEADER, version)], body))
}
