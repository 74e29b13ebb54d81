//! `POST /infer`: embeddings for one text or a list of texts.
//!
//! Validation happens here, before admission, so a bad request never takes a queue slot:
//! `inputs` must be a non-empty string or a non-empty list of non-empty strings, at most
//! `--max-client-batch` of them.

use std::{sync::Arc, time::Instant};

use axum::{
    extract::State,
    http::{HeaderMap, HeaderName, HeaderValue},
    routing::post,
    Json, Router,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{
    openapi::{
        schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type},
        RefOr, Schema,
    },
    ToSchema,
};

use crate::http::{openapi::ErrorResponse, ApiJson};
use crate::{
    deploy::{routing::ROUTE_KEY_HEADER, Routed},
    http::error::ApiError,
    http::state::AppState,
    model::{tokenizer::Truncation, ModelInfo},
    serving::handle::{Embedded, ModelHandle},
};

/// Response header naming the version that answered (`name@version` is the request's business).
pub const MODEL_VERSION_HEADER: HeaderName = HeaderName::from_static("x-model-version");

pub fn routes() -> Router<AppState> {
    Router::new().route("/infer", post(infer))
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
    /// Cut inputs longer than the model's limit (default true); false makes them a 413.
    #[serde(default = "yes")]
    pub truncate: bool,
    /// `name` or `name@version`; the default model when absent.
    pub model: Option<String>,
}

/// The OpenAPI view of `inputs`: one non-empty text or a non-empty list of them. Requests keep
/// a `Value` so every wrong shape gets a precise message.
pub fn texts_schema() -> RefOr<Schema> {
    one_of_texts(
        Vec::new(),
        "One non-empty text or a non-empty list of them.",
    )
}

/// A `oneOf` of a non-empty string, a non-empty list of them, and `more`.
pub fn one_of_texts(more: Vec<RefOr<Schema>>, description: &str) -> RefOr<Schema> {
    let text = || {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
    };
    let mut schema = OneOfBuilder::new()
        .item(text())
        .item(ArrayBuilder::new().items(text()).min_items(Some(1)));
    for item in more {
        schema = schema.item(item);
    }
    schema.description(Some(description)).into()
}

fn yes() -> bool {
    true
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

/// The caller's route key (`x-inferd-route-key`), which keeps it on one version during a canary.
pub fn route_key(headers: &HeaderMap) -> Option<&str> {
    headers.get(ROUTE_KEY_HEADER)?.to_str().ok()
}

/// Embeds one text or a list of texts with the named (or default) model.
#[utoipa::path(post, path = "/infer", tag = "inferd", request_body = InferRequest,
    responses((status = 200, body = InferResponse),
        (status = "4XX", body = ErrorResponse), (status = "5XX", body = ErrorResponse)))]
pub(crate) async fn infer(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<InferRequest>,
) -> Result<([(HeaderName, HeaderValue); 1], Json<InferResponse>), ApiError> {
    let texts = parse_inputs(req.inputs, state.limits.max_client_batch)?;
    let truncation = Truncation::from_flag(req.truncate);
    let (routed, embedded) = embed_routed(
        &state,
        req.model.as_deref(),
        route_key(&headers),
        texts,
        truncation,
        req.normalize,
    )
    .await?;
    let version = HeaderValue::from_str(routed.version())
        .map_err(|_| ApiError::Internal("version label is not a valid header".into()))?;
    let model = &routed.handle;
    let body = Json(InferResponse {
        model: model.info.name.clone(),
        version: model.info.version.clone(),
        dimensions: model.info.dimensions,
        embeddings: embedded.vectors,
        usage: Usage {
            prompt_tokens: embedded.prompt_tokens,
        },
    });
    Ok(([(MODEL_VERSION_HEADER, version)], body))
}

/// The one embedding path every route and dialect takes: refuse while draining, route to a
/// version (promoted, or canary by weight), set the deadline, queue. Same queue, same limits,
/// same errors everywhere. Dialects route without a caller key (no canary stickiness).
pub async fn embed_texts(
    state: &AppState,
    model: Option<&str>,
    texts: Vec<String>,
    truncation: Truncation,
    normalize: bool,
) -> Result<(Arc<ModelHandle>, Embedded), ApiError> {
    let (routed, embedded) = embed_routed(state, model, None, texts, truncation, normalize).await?;
    Ok((routed.handle, embedded))
}

/// [`embed_texts`] with the caller's route key, returning the routing decision too.
pub async fn embed_routed(
    state: &AppState,
    model: Option<&str>,
    route_key: Option<&str>,
    texts: Vec<String>,
    truncation: Truncation,
    normalize: bool,
) -> Result<(Routed, Embedded), ApiError> {
    if state.health.draining() {
        return Err(ApiError::ShuttingDown);
    }
    let routed = state.registry.route(model, route_key)?;
    let timeout = state.limits.request_timeout;
    let deadline = Instant::now() + timeout;
    let embedded = routed
        .embed(texts, truncation, normalize, deadline, timeout)
        .await?;
    Ok((routed, embedded))
}

/// Turns `inputs` into a list of texts, or says precisely what is wrong with it.
pub fn parse_inputs(inputs: Value, max_client_batch: usize) -> Result<Vec<String>, ApiError> {
    parse_texts("inputs", inputs, max_client_batch)
}

/// [`parse_inputs`] for a field called `field` (OpenAI calls it `input`).
pub fn parse_texts(
    field: &str,
    inputs: Value,
    max_client_batch: usize,
) -> Result<Vec<String>, ApiError> {
    let invalid = |msg: String| Err(ApiError::InvalidInput(msg));
    let texts = match inputs {
        Value::String(text) => vec![text],
        Value::Array(items) => {
            check_batch(field, items.len(), max_client_batch)?;
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::String(text) => Ok(text),
                    other => Err(ApiError::InvalidInput(format!(
                        "`{field}[{i}]` must be a string, got {}",
                        json_type(&other)
                    ))),
                })
                .collect::<Result<_, _>>()?
        }
        other => {
            return invalid(format!(
                "`{field}` must be a string or a list of strings, got {}",
                json_type(&other)
            ))
        }
    };
    match texts.iter().position(|t| t.is_empty()) {
        Some(i) => invalid(format!("`{field}[{i}]` is an empty string")),
        None => Ok(texts),
    }
}

/// `dimensions` (OpenAI, TEI) may only ask for the model's own size: inferd's models are not
/// Matryoshka-trained, so a shortened vector would be meaningless.
pub fn check_dimensions(info: &ModelInfo, requested: Option<usize>) -> Result<(), ApiError> {
    match requested {
        Some(dims) if dims != info.dimensions => Err(ApiError::UnsupportedParameter {
            param: "dimensions",
            message: format!(
                "model {} only produces {}-dimensional embeddings (it is not Matryoshka-trained); \
                 omit `dimensions` or send {}",
                info.name, info.dimensions, info.dimensions
            ),
        }),
        _ => Ok(()),
    }
}

/// A list field must hold between 1 and `--max-client-batch` items.
pub fn check_batch(field: &str, len: usize, max_client_batch: usize) -> Result<(), ApiError> {
    if len == 0 {
        return Err(ApiError::InvalidInput(format!(
            "`{field}` must not be an empty list"
        )));
    }
    if len > max_client_batch {
        return Err(ApiError::InvalidInput(format!(
            "`{field}` has {len} items; at most {max_client_batch} are allowed per request"
        )));
    }
    Ok(())
}

pub fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(v: Value) -> String {
        match parse_inputs(v, 3) {
            Err(ApiError::InvalidInput(msg)) => msg,
            other => panic!("expected invalid input, got {other:?}"),
        }
    }

    #[test]
    fn accepts_string_and_list() {
        assert_eq!(parse_inputs(json!("a"), 3).unwrap(), vec!["a"]);
        assert_eq!(parse_inputs(json!(["a", " "]), 3).unwrap(), vec!["a", " "]);
    }

    #[test]
    fn explains_each_bad_shape() {
        assert!(err(json!([])).contains("empty list"));
        assert!(err(json!("")).contains("empty string"));
        assert!(err(json!(["a", ""])).contains("inputs[1]"));
        assert!(err(json!(["a", 3])).contains("inputs[1]` must be a string, got a number"));
        assert!(err(json!(["a", "b", "c", "d"])).contains("at most 3"));
        assert!(err(json!({"text": "a"})).contains("got an object"));
        assert!(err(json!(null)).contains("got null"));
    }
}
