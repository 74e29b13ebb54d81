//! `POST /rerank`: texts ranked by relevance to a query, best first. A reranker (cross-encoder)
//! scores each (query, text) pair, `sigmoid(logit)` unless `raw_scores`; an embedding model
//! scores by cosine (a bi-encoder); see [`crate::http::scoring`].

use axum::{extract::State, Json};

use super::{truncation, Rank, RerankRequest, TeiErrorResponse};
use crate::http::{
    embed,
    error::ApiError,
    extract::{ApiJson, RouteKey},
    scoring::{self, Relevance},
    state::AppState,
};

/// Scores `texts` against `query`, best first.
#[utoipa::path(post, path = "/rerank", tag = "tei", request_body = RerankRequest,
    responses((status = 200, body = Vec<Rank>),
        (status = "4XX", body = TeiErrorResponse), (status = "5XX", body = TeiErrorResponse)))]
pub(super) async fn rerank(
    State(state): State<AppState>,
    route_key: RouteKey,
    ApiJson(req): ApiJson<RerankRequest>,
) -> Result<Json<Vec<Rank>>, ApiError> {
    let routed = embed::route(&state, &embed::target(None, route_key))?;
    let texts = req.return_text.then(|| req.texts.clone());
    let relevance = Relevance {
        query: req.query,
        texts: req.texts,
        field: "texts",
        truncation: truncation(&state.limits, req.truncate, req.truncation_direction),
        raw_scores: req.raw_scores,
    };
    let scores = scoring::relevance(&state, &routed, relevance).await?;
    let ranks = scoring::ranked(&scores, None)
        .into_iter()
        .map(|index| Rank {
            index,
            score: scores[index],
            text: texts.as_ref().map(|t| t[index].clone()),
        })
        .collect();
    Ok(Json(ranks))
}
