//! The OpenAI dialect: `POST /v1/embeddings`, `GET /v1/models`, `GET /v1/models/{model}`, and
//! the Batch API (`/v1/files`, `/v1/batches`).
//!
//! Requests take the same path as `/infer` ([`embed`](crate::http::embed)): same queue, limits,
//! statuses, canary split and sticky `x-inferd-route-key`. Only the shapes differ, and errors on
//! these routes are re-shaped to OpenAI's `{"error": {"message", "type", "param", "code"}}` by
//! [`error_shape`], with `code` the stable inferd code. Token-id inputs are OpenAI's (tiktoken
//! `cl100k_base`) unless `--openai-token-ids` says otherwise, and are decoded to text
//! ([`tokens`]). Over-long inputs are cut unless the request (`truncate`) or the server
//! (`--auto-truncate false`) says not to; `model` may be any name the model answers to
//! ([`models`]).

mod batch_lines;
mod batches;
mod files;
mod models;
mod tokens;
mod types;

use axum::{extract::State, http::StatusCode, response::Response, Json};
use base64::Engine;
use serde_json::{json, Value};
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    deploy::Routed,
    http::{
        embed::{self, f32_le_bytes, parse_texts},
        error::{reshape, ApiError, ErrorParts},
        extract::{ApiJson, RouteKey},
        state::{AppState, RequestLimits},
        tei::TruncationDirection,
    },
    model::tokenizer::Truncation,
    serving::{Deadline, EmbedRequest, Priority},
};
pub use tokens::{decode_cl100k, TokenIds};
pub use types::*;

/// What `/v1/embeddings` takes from the server's flags, synchronously and in batches.
#[derive(Debug, Clone, Copy)]
pub struct OpenAiOptions {
    /// `--max-client-batch`.
    pub max_client_batch: usize,
    /// `--auto-truncate`: what a request that does not say `truncate` gets.
    pub auto_truncate: bool,
    /// `--openai-token-ids`.
    pub token_ids: TokenIds,
}

impl OpenAiOptions {
    pub fn from_limits(limits: &RequestLimits) -> Self {
        Self {
            max_client_batch: limits.max_client_batch,
            auto_truncate: limits.auto_truncate,
            token_ids: limits.openai_token_ids,
        }
    }
}

#[derive(OpenApi)]
#[openapi(tags((name = "openai", description = "OpenAI embeddings API")))]
struct OpenAiApi;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(OpenAiApi::openapi())
        .routes(routes!(embeddings))
        .routes(routes!(models::list_models))
        .routes(routes!(models::get_model))
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
#[utoipa::path(post, path = "/v1/embeddings", tag = "openai", operation_id = "openai_create_embeddings",
    request_body = EmbeddingsRequest,
    responses((status = 200, body = EmbeddingsResponse),
        (status = "4XX", body = OpenAiErrorResponse), (status = "5XX", body = OpenAiErrorResponse)))]
async fn embeddings(
    State(state): State<AppState>,
    route_key: RouteKey,
    ApiJson(req): ApiJson<EmbeddingsRequest>,
) -> Result<Json<EmbeddingsResponse>, ApiError> {
    // Routed first: the answering version decodes token ids.
    let routed = embed::route(&state, &embed::target(Some(&req.model), route_key))?;
    let options = OpenAiOptions::from_limits(&state.limits);
    let response = create(
        &routed,
        req,
        options,
        state.deadline(),
        Priority::Interactive,
    )
    .await?;
    Ok(Json(response))
}

/// The embeddings of `req` on the version `routed` chose: what `POST /v1/embeddings` answers,
/// and what each line of an embeddings batch gets (at background priority).
async fn create(
    routed: &Routed,
    req: EmbeddingsRequest,
    options: OpenAiOptions,
    deadline: Deadline,
    priority: Priority,
) -> Result<EmbeddingsResponse, ApiError> {
    let max = options.max_client_batch;
    let texts = match tokens::token_lists(&req.input, max)? {
        Some(lists) => tokens::decode_all(options.token_ids, &routed.handle, lists).await?,
        None => parse_texts("input", req.input, max)?,
    };
    // OpenAI refuses over-long inputs; RAG clients send chunks longer than small models take,
    // so (as TEI's --auto-truncate) they are cut unless the request or the server says not to.
    let truncation = match (
        req.truncate.unwrap_or(options.auto_truncate),
        req.truncation_direction,
    ) {
        (false, _) => Truncation::Refuse,
        (true, TruncationDirection::Right) => Truncation::Right,
        (true, TruncationDirection::Left) => Truncation::Left,
    };
    let request = EmbedRequest {
        texts,
        truncation,
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

#[cfg(test)]
mod tests {
    use super::*;

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
