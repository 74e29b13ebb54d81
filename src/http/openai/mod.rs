//! The OpenAI dialect: `POST /v1/embeddings`, `GET /v1/models`, `GET /v1/models/{model}`.
//!
//! Requests take the same path as `/infer` ([`embed_texts`]): same queue, limits and statuses.
//! Only the shapes differ, and errors on these routes are re-shaped to OpenAI's
//! `{"error": {"message", "type", "param", "code"}}` by [`error_shape`], with `code` the stable
//! inferd code. Token-id inputs are decoded to text with the model's tokenizer and embedded like
//! text, so truncation and special tokens behave exactly as for a string (the ids must be the
//! served model's vocabulary, not tiktoken's).

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::Response,
    routing::{get, post},
    Json, Router,
};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{
    openapi::{
        schema::{ArrayBuilder, ObjectBuilder, Type},
        RefOr, Schema,
    },
    ToSchema,
};

use crate::http::{
    native::infer::{
        check_batch, check_dimensions, embed_texts, json_type, one_of_texts, parse_texts,
    },
    ApiJson,
};
use crate::{
    http::error::{ApiError, ErrorParts},
    http::state::AppState,
    model::tokenizer::Truncation,
    serving::handle::ModelHandle,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(list_models))
        .route("/v1/models/{model}", get(get_model))
}

/// Re-shapes an inferd error into OpenAI's error object; a `map_response` layer.
pub async fn error_shape(response: Response) -> Response {
    crate::http::error::reshape(response, |parts: &ErrorParts, status: StatusCode| {
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
    })
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct EmbeddingsRequest {
    /// A string, a list of strings, a list of token ids, or a list of token-id lists.
    #[schema(schema_with = input_schema)]
    pub input: Value,
    /// A served model's `name` or `name@version` (see `GET /v1/models`).
    pub model: String,
    #[serde(default)]
    pub encoding_format: EncodingFormat,
    /// Must equal the model's native dimensions: inferd's models are not Matryoshka-trained.
    #[schema(minimum = 1)]
    pub dimensions: Option<usize>,
    /// Accepted and ignored (OpenAI uses it for abuse monitoring).
    #[allow(dead_code)] // parsed so a wrong type is still a clear 422
    pub user: Option<String>,
}

/// The OpenAPI view of `input` (the request keeps a `Value` for precise messages).
fn input_schema() -> RefOr<Schema> {
    let ids = || {
        ArrayBuilder::new()
            .items(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0)),
            )
            .min_items(Some(1))
    };
    let lists = ArrayBuilder::new().items(ids()).min_items(Some(1));
    one_of_texts(
        vec![ids().into(), lists.into()],
        "A non-empty text, a non-empty list of them, a list of token ids, or a list of such lists.",
    )
}

#[derive(Debug, Default, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EncodingFormat {
    #[default]
    Float,
    /// Little-endian f32 bytes, base64-encoded (what the `openai` SDK asks for by default).
    Base64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EmbeddingsResponse {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<EmbeddingData>,
    pub model: String,
    pub usage: OpenAiUsage,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EmbeddingData {
    /// Always `embedding`.
    pub object: &'static str,
    pub index: usize,
    pub embedding: EmbeddingVector,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum EmbeddingVector {
    Float(Vec<f32>),
    Base64(String),
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OpenAiUsage {
    pub prompt_tokens: usize,
    pub total_tokens: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelList {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<ModelObject>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelObject {
    pub id: String,
    /// Always `model`.
    pub object: &'static str,
    /// Always 0: inferd does not track creation times.
    pub created: u64,
    /// Always `inferd`.
    pub owned_by: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct OpenAiErrorResponse {
    pub error: OpenAiErrorBody,
}

#[derive(Serialize, ToSchema)]
pub struct OpenAiErrorBody {
    pub message: String,
    /// `invalid_request_error` for 4xx, `server_error` for 5xx.
    #[serde(rename = "type")]
    pub kind: String,
    pub param: Option<String>,
    /// inferd's stable error code.
    pub code: String,
}

/// Creates embeddings (OpenAI's `embeddings.create`).
#[utoipa::path(post, path = "/v1/embeddings", tag = "openai", request_body = EmbeddingsRequest,
    responses((status = 200, body = EmbeddingsResponse),
        (status = "4XX", body = OpenAiErrorResponse), (status = "5XX", body = OpenAiErrorResponse)))]
pub(crate) async fn embeddings(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<EmbeddingsRequest>,
) -> Result<Json<EmbeddingsResponse>, ApiError> {
    let handle = state.registry.get(Some(&req.model))?;
    check_dimensions(&handle.info, req.dimensions)?;
    let max = state.limits.max_client_batch;
    let texts = match token_lists(&req.input, max)? {
        Some(lists) => decode_all(&handle, lists).await?,
        None => parse_texts("input", req.input, max)?,
    };
    // OpenAI refuses over-long inputs rather than cutting them; so does this route.
    let (model, embedded) =
        embed_texts(&state, Some(&req.model), texts, Truncation::Refuse, true).await?;
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
    Ok(Json(EmbeddingsResponse {
        object: "list",
        data,
        model: model.info.name.clone(),
        usage: OpenAiUsage {
            prompt_tokens: embedded.prompt_tokens,
            total_tokens: embedded.prompt_tokens,
        },
    }))
}

fn encode(vector: Vec<f32>, format: EncodingFormat) -> EmbeddingVector {
    match format {
        EncodingFormat::Float => EmbeddingVector::Float(vector),
        EncodingFormat::Base64 => {
            let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
            EmbeddingVector::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
        }
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
        .with_tokenizer(move |tokenizer| {
            lists
                .iter()
                .enumerate()
                .map(|(i, ids)| {
                    tokenizer
                        .decode(ids, true)
                        .map_err(|e| ApiError::InvalidInput(format!("`input[{i}]`: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .await??;
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
pub(crate) async fn list_models(State(state): State<AppState>) -> Json<ModelList> {
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
pub(crate) async fn get_model(
    State(state): State<AppState>,
    Path(model): Path<String>,
) -> Result<Json<ModelObject>, ApiError> {
    let handle = state.registry.get(Some(&model))?;
    Ok(Json(model_object(&handle)))
}

fn model_object(handle: &ModelHandle) -> ModelObject {
    ModelObject {
        id: handle.info.name.clone(),
        object: "model",
        created: 0,
        owned_by: "inferd",
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
