//! `POST /similarity`: cosine similarities of normalised bi-encoder embeddings, the source
//! sentence embedded in the same request (an embedding model only).

use axum::{extract::State, Json};
use serde_json::Value;

use super::{truncation, SimilarityRequest, TeiErrorResponse};
use crate::http::{
    embed,
    error::ApiError,
    extract::{ApiJson, RouteKey},
    scoring::cosine_scores,
    state::AppState,
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
    let truncation = truncation(&state.limits, params.truncate, params.truncation_direction);
    let routed = embed::route(&state, &embed::target(None, route_key))?;
    let scores = cosine_scores(
        &state,
        &routed,
        req.inputs.source_sentence,
        Value::from(req.inputs.sentences),
        "sentences",
        truncation,
        params.prompt_name,
    )
    .await?;
    Ok(Json(scores))
}
