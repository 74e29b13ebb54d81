//! `POST /infer`: embeddings for one text or a list of texts.
//!
//! Validation happens here, before admission, so a bad request never takes a queue slot:
//! `inputs` must be a non-empty string or a non-empty list of non-empty strings, at most
//! `--max-client-batch` of them.

use std::time::Instant;

use axum::{
    extract::State,
    http::{HeaderMap, HeaderName, HeaderValue},
    routing::post,
    Json, Router,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ApiJson;
use crate::{error::ApiError, lifecycle::routing::ROUTE_KEY_HEADER, state::AppState};

/// Response header naming the version that answered (`name@version` is the request's business).
pub const MODEL_VERSION_HEADER: HeaderName = HeaderName::from_static("x-model-version");

pub fn routes() -> Router<AppState> {
    Router::new().route("/infer", post(infer))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InferRequest {
    /// A string or a list of strings; checked by [`parse_inputs`] for clear messages.
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

fn yes() -> bool {
    true
}

#[derive(Debug, Serialize)]
pub struct InferResponse {
    pub model: String,
    pub version: String,
    pub dimensions: usize,
    pub embeddings: Vec<Vec<f32>>,
    pub usage: Usage,
}

#[derive(Debug, Serialize)]
pub struct Usage {
    pub prompt_tokens: usize,
}

/// The caller's route key (`x-inferd-route-key`), which keeps it on one version during a canary.
pub fn route_key(headers: &HeaderMap) -> Option<&str> {
    headers.get(ROUTE_KEY_HEADER)?.to_str().ok()
}

async fn infer(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<InferRequest>,
) -> Result<([(HeaderName, HeaderValue); 1], Json<InferResponse>), ApiError> {
    if state.health.draining() {
        return Err(ApiError::ShuttingDown);
    }
    let texts = parse_inputs(req.inputs, state.limits.max_client_batch)?;
    let routed = state
        .registry
        .route(req.model.as_deref(), route_key(&headers))?;
    let model = &routed.handle;
    let timeout = state.limits.request_timeout;
    let deadline = Instant::now() + timeout;
    let embedded = routed
        .embed(texts, req.truncate, req.normalize, deadline, timeout)
        .await?;
    let version = HeaderValue::from_str(routed.version())
        .map_err(|_| ApiError::Internal("version label is not a valid header".into()))?;
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

/// Turns `inputs` into a list of texts, or says precisely what is wrong with it.
pub fn parse_inputs(inputs: Value, max_client_batch: usize) -> Result<Vec<String>, ApiError> {
    let invalid = |msg: String| Err(ApiError::InvalidInput(msg));
    let texts = match inputs {
        Value::String(text) => vec![text],
        Value::Array(items) => {
            if items.is_empty() {
                return invalid("`inputs` must not be an empty list".into());
            }
            if items.len() > max_client_batch {
                return invalid(format!(
                    "`inputs` has {} items; at most {max_client_batch} are allowed per request",
                    items.len()
                ));
            }
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::String(text) => Ok(text),
                    other => Err(ApiError::InvalidInput(format!(
                        "`inputs[{i}]` must be a string, got {}",
                        json_type(&other)
                    ))),
                })
                .collect::<Result<_, _>>()?
        }
        other => {
            return invalid(format!(
                "`inputs` must be a string or a list of strings, got {}",
                json_type(&other)
            ))
        }
    };
    match texts.iter().position(|t| t.is_empty()) {
        Some(i) => invalid(format!("`inputs[{i}]` is an empty string")),
        None => Ok(texts),
    }
}

fn json_type(value: &Value) -> &'static str {
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
