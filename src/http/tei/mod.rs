//! The Hugging Face text-embeddings-inference (TEI) dialect: `POST /embed`, `/tokenize`,
//! `/decode`, `/similarity`, `/rerank`, `/predict` (`POST /`, the Inference API's task shapes, is
//! [`hub`](crate::http::hub)). TEI's `GET /info` fields are served by `/info` itself (see
//! `native/info.rs`).
//!
//! Embedding goes through [`embed`](crate::http::embed) like `/infer` (canary split and sticky
//! `x-inferd-route-key` included); `/tokenize` and `/decode` run on the model's tokenizer pool.
//! These routes always use the default model, as TEI serves one. Errors are re-shaped by
//! [`error_shape`] to TEI's `{"error", "error_type"}`, keeping inferd's status and adding its
//! `code`. `/similarity` is the cosine of normalised embeddings; `/rerank` runs a reranker's
//! cross-encoder on each pair, or that cosine on an embedding model (`rerank`); `/predict` runs
//! a classifier's or reranker's head (`predict`). A route that does not fit the loaded model's
//! kind answers 400 `wrong_model_kind`.

mod predict;
mod rerank;
mod similarity;
mod tokens;
mod types;

use axum::{extract::State, http::StatusCode, response::Response, Json};
use serde_json::json;
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    http::{
        embed::{self, parse_inputs},
        error::{reshape, ApiError, ErrorParts},
        extract::{ApiJson, RouteKey},
        state::{AppState, RequestLimits},
    },
    model::tokenizer::Truncation,
    serving,
};
pub use types::*;

#[derive(OpenApi)]
#[openapi(tags((name = "tei", description = "Hugging Face text-embeddings-inference API")))]
struct TeiApi;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(TeiApi::openapi())
        .routes(routes!(embed))
        .routes(routes!(tokens::tokenize))
        .routes(routes!(tokens::decode))
        .routes(routes!(similarity::similarity))
        .routes(routes!(rerank::rerank))
        .routes(routes!(predict::predict))
}

/// Re-shapes an inferd error into TEI's error object.
pub fn error_shape(response: Response) -> Response {
    reshape(
        response,
        |parts: &ErrorParts, status: StatusCode| json!({"error": parts.message, "error_type": error_type(parts.code, status), "code": parts.code}),
    )
}

/// TEI's `error_type` for an inferd code.
fn error_type(code: &str, status: StatusCode) -> &'static str {
    match code {
        "overloaded" => "Overloaded",
        "not_ready" | "shutting_down" => "Unhealthy",
        "invalid_input" if status == StatusCode::UNPROCESSABLE_ENTITY => "Validation",
        _ if status.is_server_error() => "Backend",
        _ => "Validation",
    }
}

/// TEI's `truncate` (absent: `--auto-truncate`, default true, as TEI since 1.9) and
/// `truncation_direction`.
fn truncation(
    limits: &RequestLimits,
    truncate: Option<bool>,
    direction: TruncationDirection,
) -> Truncation {
    limits.truncation(truncate, matches!(direction, TruncationDirection::Left))
}

/// Embeds texts, TEI style: a list of vectors, one per input.
#[utoipa::path(post, path = "/embed", tag = "tei", request_body = EmbedRequest,
    responses((status = 200, body = Vec<Vec<f32>>),
        (status = "4XX", body = TeiErrorResponse), (status = "5XX", body = TeiErrorResponse)))]
async fn embed(
    State(state): State<AppState>,
    route_key: RouteKey,
    ApiJson(req): ApiJson<EmbedRequest>,
) -> Result<Json<Vec<Vec<f32>>>, ApiError> {
    if req.encoding_format.as_deref().is_some_and(|f| f != "float") {
        return Err(ApiError::UnsupportedParameter {
            param: "encoding_format",
            message: "`/embed` answers floats only; use `/v1/embeddings` for base64".into(),
        });
    }
    let texts = parse_inputs(req.inputs, state.limits.max_client_batch)?;
    let request = serving::EmbedRequest {
        texts,
        truncation: truncation(&state.limits, req.truncate, req.truncation_direction),
        normalize: req.normalize,
        deadline: state.deadline(),
        prompt_name: req.prompt_name,
        dimensions: req.dimensions,
        priority: serving::Priority::Interactive,
    };
    let target = embed::target(None, route_key);
    Ok(Json(
        embed::embed(&state, &target, request).await?.1.vectors,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_follows_the_server_unless_the_request_says() {
        let mut limits = RequestLimits {
            max_client_batch: 1,
            max_client_tokens: 1,
            max_body_bytes: 1,
            max_response_bytes: 1,
            auto_truncate: true,
            openai_token_ids: crate::http::openai::TokenIds::Tiktoken,
            request_timeout: std::time::Duration::from_secs(1),
        };
        let left = TruncationDirection::Left;
        assert_eq!(truncation(&limits, None, left), Truncation::Left);
        assert_eq!(truncation(&limits, Some(false), left), Truncation::Refuse);
        limits.auto_truncate = false;
        assert_eq!(truncation(&limits, None, left), Truncation::Refuse);
        assert_eq!(
            truncation(&limits, Some(true), TruncationDirection::Right),
            Truncation::Right
        );
    }
}
