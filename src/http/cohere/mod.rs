//! The Cohere rerank dialect (also what Jina's and many gateways' rerank clients speak):
//! `POST /v1/rerank` and `POST /v2/rerank`, `{model, query, documents, top_n}` →
//! `{id, results: [{index, relevance_score, document?}], meta}`, so the `cohere` SDK's
//! `ClientV2(base_url=...).rerank(...)` (and LangChain's / LlamaIndex's Cohere rerankers) work
//! unchanged.
//!
//! `model` routes like the OpenAI dialect's (`name`, `name@version`, canary split and sticky
//! `x-inferd-route-key`); scoring is [`crate::http::scoring`]'s: a reranker's `sigmoid(logit)`
//! per (query, document) pair, or an embedding model's cosine. Documents longer than the model's
//! limit are cut (the longer of query and document first), as Cohere does; `max_tokens_per_doc`
//! cuts each document further. Errors are Cohere's `{"message"}` (with inferd's `code`), status
//! unchanged.

mod types;

use axum::{extract::State, http::StatusCode, response::Response, Json};
use serde_json::{json, Value};
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    http::{
        embed::{self, json_type},
        error::{reshape, ApiError, ErrorParts},
        extract::{ApiJson, RouteKey},
        scoring::{self, check_texts, check_top_n, Relevance},
        state::AppState,
    },
    model::tokenizer::Truncation,
};
pub use types::*;

#[derive(OpenApi)]
#[openapi(tags((name = "cohere", description = "Cohere-style rerank API")))]
struct CohereApi;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(CohereApi::openapi())
        .routes(routes!(rerank_v1))
        .routes(routes!(rerank_v2))
}

/// Re-shapes an inferd error into Cohere's `{"message"}`.
pub fn error_shape(response: Response) -> Response {
    reshape(
        response,
        |parts: &ErrorParts, _: StatusCode| json!({"message": parts.message, "code": parts.code}),
    )
}

/// Documents ranked by relevance to the query (Cohere v1: strings or `{text}` objects).
#[utoipa::path(post, path = "/v1/rerank", tag = "cohere", request_body = CohereRerankRequest,
    responses((status = 200, body = CohereRerankResponse),
        (status = "4XX", body = CohereErrorResponse), (status = "5XX", body = CohereErrorResponse)))]
async fn rerank_v1(
    State(state): State<AppState>,
    route_key: RouteKey,
    ApiJson(req): ApiJson<CohereRerankRequest>,
) -> Result<Json<CohereRerankResponse>, ApiError> {
    rerank(state, route_key, req, "1", true).await
}

/// Documents ranked by relevance to the query (Cohere v2: strings).
#[utoipa::path(post, path = "/v2/rerank", tag = "cohere", request_body = CohereRerankRequest,
    responses((status = 200, body = CohereRerankResponse),
        (status = "4XX", body = CohereErrorResponse), (status = "5XX", body = CohereErrorResponse)))]
async fn rerank_v2(
    State(state): State<AppState>,
    route_key: RouteKey,
    ApiJson(req): ApiJson<CohereRerankRequest>,
) -> Result<Json<CohereRerankResponse>, ApiError> {
    rerank(state, route_key, req, "2", false).await
}

async fn rerank(
    state: AppState,
    route_key: RouteKey,
    req: CohereRerankRequest,
    version: &str,
    objects: bool,
) -> Result<Json<CohereRerankResponse>, ApiError> {
    let documents = parse_documents(&state, req.documents, objects)?;
    let top_n = check_top_n(req.top_n, documents.len())?;
    let routed = embed::route(&state, &embed::target(Some(&req.model), route_key))?;
    let texts = match req.max_tokens_per_doc {
        None => documents.clone(),
        Some(n) if n >= 1 => cut_documents(&routed, documents.clone(), n as usize).await?,
        Some(n) => {
            return Err(ApiError::InvalidParameter {
                param: "max_tokens_per_doc",
                message: format!("`max_tokens_per_doc` must be at least 1, got {n}"),
            })
        }
    };
    let relevance = Relevance {
        query: req.query,
        texts,
        field: "documents",
        truncation: Truncation::Right,
        raw_scores: false,
    };
    let scores = scoring::relevance(&state, &routed, relevance).await?;
    let results = scoring::ranked(&scores, top_n)
        .into_iter()
        .map(|index| CohereRerankResult {
            index,
            relevance_score: scores[index],
            document: req.return_documents.then(|| CohereDocumentText {
                text: documents[index].clone(),
            }),
        })
        .collect();
    Ok(Json(CohereRerankResponse {
        id: request_id(),
        results,
        meta: CohereMeta {
            api_version: CohereApiVersion {
                version: version.to_string(),
            },
            billed_units: CohereBilledUnits { search_units: 1 },
        },
    }))
}

/// The documents as texts: strings, or (v1) `{"text": ...}` objects.
fn parse_documents(
    state: &AppState,
    documents: Value,
    objects: bool,
) -> Result<Vec<String>, ApiError> {
    let items = match documents {
        Value::Array(items) => items,
        other => {
            return Err(ApiError::InvalidInput(format!(
                "`documents` must be a list, got {}",
                json_type(&other)
            )))
        }
    };
    check_texts(state, "documents", items.len())?;
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let text = match item {
                Value::String(text) => Some(text),
                Value::Object(mut o) if objects => match o.remove("text") {
                    Some(Value::String(text)) => Some(text),
                    _ => None,
                },
                _ => None,
            };
            let shape = match objects {
                true => "a string or an object with a string `text`",
                false => "a string",
            };
            match text {
                Some(text) if !text.is_empty() => Ok(text),
                Some(_) => Err(ApiError::InvalidInput(format!(
                    "`documents[{i}]` is an empty string"
                ))),
                None => Err(ApiError::InvalidInput(format!(
                    "`documents[{i}]` must be {shape}"
                ))),
            }
        })
        .collect()
}

/// Each document cut to its first `max_tokens` tokens (special tokens not counted), decoded
/// back to text with the answering version's tokenizer.
async fn cut_documents(
    routed: &crate::deploy::Routed,
    documents: Vec<String>,
    max_tokens: usize,
) -> Result<Vec<String>, ApiError> {
    let cut = routed
        .handle
        .with_tokenizer(move |tokenizer| {
            documents
                .into_iter()
                .map(|doc| tokenizer.cut_to_tokens(&doc, max_tokens))
                .collect::<Result<Vec<_>, _>>()
        })
        .await?;
    cut.map_err(|err| ApiError::InvalidInput(format!("a document could not be tokenized: {err}")))
}

/// A fresh id for the response (Cohere's are UUIDs).
fn request_id() -> String {
    let (a, b) = (fastrand::u64(..), fastrand::u64(..));
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        ((b >> 48) & 0x3fff) | 0x8000,
        b & 0xffff_ffff_ffff
    )
}
