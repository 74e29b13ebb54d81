//! The OpenAI dialect: `POST /v1/embeddings`, `GET /v1/models`, `GET /v1/models/{model}`.
//!
//! Requests take the same path as `/infer` ([`embed`](crate::http::embed)): same queue, limits,
//! statuses, canary split and sticky `x-inferd-route-key`. Only the shapes differ, and errors on
//! these routes are re-shaped to OpenAI's `{"error": {"message", "type", "param", "code"}}` by
//! [`error_shape`], with `code` the stable inferd code. Token-id inputs are decoded to text with
//! the answering version's tokenizer and embedded like text, so truncation and special tokens
//! behave exactly as for a string (the ids must be the served model's vocabulary, not
//! tiktoken's).

mod batch_lines;
mod batches;
mod files;
mod types;

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::Response,
    Json,
};
use base64::Engine;
use serde_json::{json, Value};
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    deploy::Routed,
    http::{
        embed::{self, check_batch, f32_le_bytes, json_type, parse_texts},
        error::{reshape, ApiError, ErrorParts},
        extract::{ApiJson, RouteKey},
        state::AppState,
    },
    model::tokenizer::Truncation,
    serving::{Deadline, EmbedRequest, ModelHandle, ModelRef, Priority},
};
pub use types::*;

#[derive(OpenApi)]
#[openapi(tags((name = "openai", description = "OpenAI embeddings API")))]
struct OpenAiApi;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(OpenAiApi::openapi())
        .routes(routes!(embeddings))
        .routes(routes!(list_models))
        .routes(routes!(get_model))
        .merge(files::routes())
        .merge(batches::routes())
}

pub use batch_lines::EmbeddingsLines;

/// Re-shapes an inferd error into OpenAI's error object.
pub fn error_shape(response: Response) -> Response {
    reshape(response, error_body)
}

/// OpenAI's error object for an inferd error: `{"error": {"message", "type", "param", "code"}}`.
fn error_body(parts: &ErrorParts, status: StatusCode) -> Value {
    let kind = if status.is_server_error() {
        "server_error"
    } else {
        "invalid_request_error"
    };
    json!({"error": {
        "message": parts.message,
        "type": kind,
        "param": parts.param,
        "code": parts.code,
    }})
}

/// Creates embeddings (OpenAI's `embeddings.create`).
#[utoipa::path(post, path = "/v1/embeddings", tag = "openai", request_body = EmbeddingsRequest,
    responses((status = 200, body = EmbeddingsResponse),
        (status = "4XX", body = OpenAiErrorResponse), (status = "5XX", body = OpenAiErrorResponse)))]
async fn embeddings(
    State(state): State<AppState>,
    route_key: RouteKey,
    ApiJson(req): ApiJson<EmbeddingsRequest>,
) -> Result<Json<EmbeddingsResponse>, ApiError> {
    // Routed first: the answering version decodes token ids.
    let routed = embed::route(&state, &embed::target(Some(&req.model), route_key))?;
    let max = state.limits.max_client_batch;
    let response = create(&routed, req, max, state.deadline(), Priority::Interactive).await?;
    Ok(Json(response))
}

/// The embeddings of `req` on the version `routed` chose: what `POST /v1/embeddings` answers,
/// and what each line of an embeddings batch gets (at background priority).
async fn create(
    routed: &Routed,
    req: EmbeddingsRequest,
    max_client_batch: usize,
    deadline: Deadline,
    priority: Priority,
) -> Result<EmbeddingsResponse, ApiError> {
    let max = max_client_batch;
    let texts = match token_lists(&req.input, max)? {
        Some(lists) => decode_all(&routed.handle, lists).await?,
        None => parse_texts("input", req.input, max)?,
    };
    // OpenAI refuses over-long inputs rather than cutting them; so does this route.
    let request = EmbedRequest {
        texts,
        truncation: Truncation::Refuse,
        normalize: true,
        deadline,
        prompt_name: req.prompt_name,
        dimensions: req.dimensions,
        priority,
    };
    let embedded = routed.embed(request).await?;
    let data = embedded
        .vectors
        .into_iter()
        .enumerate()
        .map(|(index, vector)| EmbeddingData {
            object: "embedding",
            index,
            embedding: encode(vector, req.encoding_format),
        })
        .collect();
    Ok(EmbeddingsResponse {
        object: "list",
        data,
        model: routed.handle.info.name.clone(),
        usage: OpenAiUsage {
            prompt_tokens: embedded.prompt_tokens,
            total_tokens: embedded.prompt_tokens,
        },
    })
}

fn encode(vector: Vec<f32>, format: EncodingFormat) -> EmbeddingVector {
    match format {
        EncodingFormat::Float => EmbeddingVector::Float(vector),
        EncodingFormat::Base64 => EmbeddingVector::Base64(
            base64::engine::general_purpose::STANDARD.encode(f32_le_bytes(&vector)),
        ),
    }
}

/// `Some(lists)` when `input` is token ids (`[1, 2]` or `[[1, 2], [3]]`), `None` for text.
fn token_lists(input: &Value, max_client_batch: usize) -> Result<Option<Vec<Vec<u32>>>, ApiError> {
    let Value::Array(items) = input else {
        return Ok(None);
    };
    let ids = |value: &Value, at: String| -> Result<Vec<u32>, ApiError> {
        let Value::Array(ids) = value else {
            return Err(ApiError::InvalidInput(format!(
                "`{at}` must be a list of token ids, got {}",
                json_type(value)
            )));
        };
        if ids.is_empty() {
            return Err(ApiError::InvalidInput(format!("`{at}` is an empty list")));
        }
        ids.iter()
            .enumerate()
            .map(|(j, id)| {
                id.as_u64()
                    .and_then(|id| u32::try_from(id).ok())
                    .ok_or_else(|| {
                        ApiError::InvalidInput(format!(
                            "`{at}[{j}]` must be a token id (a non-negative integer)"
                        ))
                    })
            })
            .collect()
    };
    match items.first() {
        Some(Value::Number(_)) => Ok(Some(vec![ids(input, "input".into())?])),
        Some(Value::Array(_)) => {
            check_batch("input", items.len(), max_client_batch)?;
            let lists = items
                .iter()
                .enumerate()
                .map(|(i, item)| ids(item, format!("input[{i}]")))
                .collect::<Result<_, _>>()?;
            Ok(Some(lists))
        }
        _ => Ok(None),
    }
}

/// Token ids → text with the model's tokenizer, on the tokenizer pool.
async fn decode_all(handle: &ModelHandle, lists: Vec<Vec<u32>>) -> Result<Vec<String>, ApiError> {
    let decoded = handle
        .decode(lists, true)
        .await?
        .map_err(|(i, e)| ApiError::InvalidInput(format!("`input[{i}]`: {e}")))?;
    match decoded.iter().position(|t| t.is_empty()) {
        Some(i) => Err(ApiError::InvalidInput(format!(
            "`input[{i}]` decodes to empty text (only special tokens?)"
        ))),
        None => Ok(decoded),
    }
}

/// Lists the served models.
#[utoipa::path(get, path = "/v1/models", tag = "openai",
    responses((status = 200, body = ModelList),
        (status = "4XX", body = OpenAiErrorResponse), (status = "5XX", body = OpenAiErrorResponse)))]
async fn list_models(State(state): State<AppState>) -> Json<ModelList> {
    let data = state
        .registry
        .all()
        .iter()
        .map(|h| model_object(h))
        .collect();
    Json(ModelList {
        object: "list",
        data,
    })
}

/// Describes one served model.
#[utoipa::path(get, path = "/v1/models/{model}", tag = "openai",
    params(("model" = String, Path, description = "`name` or `name@version`")),
    responses((status = 200, body = ModelObject),
        (status = "4XX", body = OpenAiErrorResponse), (status = "5XX", body = OpenAiErrorResponse)))]
async fn get_model(
    State(state): State<AppState>,
    Path(model): Path<String>,
) -> Result<Json<ModelObject>, ApiError> {
    let handle = state.registry.get(Some(&ModelRef::parse(&model)))?;
    Ok(Json(model_object(&handle)))
}

fn model_object(handle: &ModelHandle) -> ModelObject {
    ModelObject {
        id: handle.info.name.clone(),
        object: "model",
        created: 0,
        owned_by: "inferd",
        architecture: handle.info.architecture.clone(),
        pooling: handle.info.pooling.clone(),
        dimensions: handle.info.dimensions,
        prompts: handle.info.prompts.prompts.clone(),
        default_prompt_name: handle.info.prompts.default_prompt_name.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_inputs_are_told_apart_from_text() {
        assert_eq!(token_lists(&json!("a"), 4).unwrap(), None);
        assert_eq!(token_lists(&json!(["a"]), 4).unwrap(), None);
        assert_eq!(
            token_lists(&json!([1, 2]), 4).unwrap(),
            Some(vec![vec![1, 2]])
        );
        assert_eq!(
            token_lists(&json!([[1], [2, 3]]), 4).unwrap(),
            Some(vec![vec![1], vec![2, 3]])
        );
        assert!(token_lists(&json!([[1], []]), 4).is_err());
        assert!(token_lists(&json!([1, -2]), 4).is_err());
        assert!(token_lists(&json!([[1], "a"]), 4).is_err());
        assert!(token_lists(&json!([[1], [2], [3]]), 2).is_err());
    }

    #[test]
    fn base64_is_little_endian_f32() {
        let EmbeddingVector::Base64(text) = encode(vec![1.0, -2.5], EncodingFormat::Base64) else {
            panic!("expected base64");
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap();
        assert_eq!(&bytes[..4], &1.0f32.to_le_bytes());
        assert_eq!(&bytes[4..], &(-2.5f32).to_le_bytes());
    }
}
