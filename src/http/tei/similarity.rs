//! `POST /similarity` and `POST /rerank`: cosine similarities of normalised bi-encoder
//! embeddings (not a cross-encoder's scores), the query embedded in the same request.

use axum::{extract::State, Json};
use serde_json::Value;

use super::{truncation, Rank, RerankRequest, SimilarityRequest, TeiErrorResponse};
use crate::{
    http::{
        embed::{self, parse_texts},
        error::ApiError,
        extract::{ApiJson, RouteKey},
        state::AppState,
    },
    model::tokenizer::Truncation,
    serving::{EmbedRequest, Priority},
};

/// Cosine similarity of `source_sentence` to each of `sentences`, in their order.
#[utoipa::path(post, path = "/similarity", tag = "tei", request_body = SimilarityRequest,
    responses((status = 200, body = Vec<f32>),
        (status = "4XX", body = TeiErrorResponse), (status = "5XX", body = TeiErrorResponse)))]
pub(super) async fn similarity(
    State(state): State<AppState>,
    route_key: RouteKey,
    ApiJson(req): ApiJson<SimilarityRequest>,
) -> Result<Json<Vec<f32>>, ApiError> {
    let params = req.parameters.unwrap_or_default();
    let truncation = truncation(params.truncate, params.truncation_direction);
    let scores = scores(
        &state,
        route_key,
        req.inputs.source_sentence,
        req.inputs.sentences,
        "sentences",
        truncation,
        params.prompt_name,
    )
    .await?;
    Ok(Json(scores))
}

/// Scores `texts` against `query` (cosine of normalised embeddings), best first.
#[utoipa::path(post, path = "/rerank", tag = "tei", request_body = RerankRequest,
    responses((status = 200, body = Vec<Rank>),
        (status = "4XX", body = TeiErrorResponse), (status = "5XX", body = TeiErrorResponse)))]
pub(super) async fn rerank(
    State(state): State<AppState>,
    route_key: RouteKey,
    ApiJson(req): ApiJson<RerankRequest>,
) -> Result<Json<Vec<Rank>>, ApiError> {
    let truncation = truncation(req.truncate, req.truncation_direction);
    let texts = req.return_text.then(|| req.texts.clone());
    let scores = scores(
        &state, route_key, req.query, req.texts, "texts", truncation, None,
    )
    .await?;
    let mut ranks: Vec<Rank> = scores
        .into_iter()
        .enumerate()
        .map(|(index, score)| Rank {
            index,
            score,
            text: texts.as_ref().map(|t| t[index].clone()),
        })
        .collect();
    ranks.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.index.cmp(&b.index)));
    Ok(Json(ranks))
}

/// Embeds `query` with `others` in one request (with the prompt `prompt_name`, else the model's
/// default) and returns the cosine of each to the query.
async fn scores(
    state: &AppState,
    route_key: RouteKey,
    query: String,
    others: Vec<String>,
    field: &str,
    truncation: Truncation,
    prompt_name: Option<String>,
) -> Result<Vec<f32>, ApiError> {
    // The query rides in the same request, so the batch limit counts it too.
    let max = state.limits.max_client_batch.saturating_sub(1);
    let mut texts = parse_texts(field, Value::from(others), max)?;
    if query.is_empty() {
        return Err(ApiError::InvalidInput(
            "the query is an empty string".into(),
        ));
    }
    texts.insert(0, query);
    let request = EmbedRequest {
        texts,
        truncation,
        normalize: true,
        deadline: state.deadline(),
        prompt_name,
        dimensions: None,
        priority: Priority::Interactive,
    };
    let target = embed::target(None, route_key);
    let (_, embedded) = embed::embed(state, &target, request).await?;
    let (query, others) = embedded.vectors.split_first().expect("one vector per text");
    Ok(others
        .iter()
        .map(|v| v.iter().zip(query).map(|(a, b)| a * b).sum())
        .collect())
}
