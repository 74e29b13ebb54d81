//! `POST /recommend`: the `k` items most similar to a text, to an item, or to a history.
//!
//! Exactly one query: `text` (embedded by the served model), `item_id` (that item's vector;
//! the item itself is excluded), or `history` (ids, optionally `{"id", "weight"}`; the
//! weighted mean of their vectors; the history is excluded). Options: `k` (default 10, at most
//! `--recommend-max-k`), `filter` (metadata field → value or list of allowed values), `exclude`
//! (ids), `index` (needed when several are loaded), `exact` (skip the approximate graph) and
//! `ef_search` (candidates the approximate graph keeps, 1 to 2048; more is slower and finds more
//! of the true neighbours).
//! Shapes are checked before any work: a bad one is 422, an unknown id 404 `unknown_item`.

mod items;

use std::{collections::HashSet, sync::Arc, time::Instant};

use axum::{extract::State, Json};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    deploy::Target,
    http::{embed, error::ApiError, extract::ApiJson, schema::ErrorResponse, state::AppState},
    index::{self, graph::EF_SEARCH_MAX, Backend, Filter, SearchRequest},
    serving::{EmbedRequest, ModelHandle},
};

/// History entries one query may carry, at most.
const MAX_HISTORY: usize = 1000;
const DEFAULT_K: usize = 10;

#[derive(OpenApi)]
#[openapi(tags((name = "recommendations", description = "top-k similar items from item indexes")))]
struct RecommendApi;

/// `/recommend`, `/items/{id}` and `/indexes`, with their OpenAPI fragment.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(RecommendApi::openapi())
        .routes(routes!(recommend))
        .merge(items::routes())
}

/// Exactly one of `text`, `item_id` or `history`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecommendRequest {
    pub text: Option<String>,
    pub item_id: Option<String>,
    pub history: Option<Vec<HistoryEntry>>,
    /// Results wanted: 1 to `--recommend-max-k` (default 10).
    #[schema(minimum = 1)]
    pub k: Option<usize>,
    /// Metadata field → value, or list of allowed values; every field must match.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub filter: Map<String, Value>,
    #[serde(default)]
    pub exclude: Vec<String>,
    pub index: Option<String>,
    #[serde(default)]
    pub exact: bool,
    /// Candidates the HNSW graph search keeps (default 256; at least `k` are used): larger is
    /// slower and finds more of the true neighbours. Ignored by exact search.
    #[schema(minimum = 1, maximum = 2048)]
    pub ef_search: Option<usize>,
}

/// A history item: an id, or an id with a positive weight (default 1).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum HistoryEntry {
    Id(String),
    Weighted {
        id: String,
        #[serde(default = "one")]
        weight: f32,
    },
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RecommendResponse {
    pub items: Vec<Item>,
    pub model: String,
    pub version: String,
    pub index: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Item {
    pub id: String,
    /// Cosine similarity to the query.
    pub score: f32,
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
}

/// The query, validated.
enum Query {
    Text(String),
    Item(String),
    History(Vec<(String, f32)>),
}

impl Query {
    fn kind(&self) -> &'static str {
        match self {
            Self::Text(_) => "text",
            Self::Item(_) => "item_id",
            Self::History(_) => "history",
        }
    }
}

#[utoipa::path(post, path = "/recommend", tag = "recommendations",
    request_body = RecommendRequest,
    responses((status = 200, body = RecommendResponse),
        (status = "4XX", body = ErrorResponse), (status = "5XX", body = ErrorResponse)))]
async fn recommend(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<RecommendRequest>,
) -> Result<Json<RecommendResponse>, ApiError> {
    state.health.accepting()?;
    let k = req.k.unwrap_or(DEFAULT_K);
    if k == 0 || k > state.recommend_max_k {
        return Err(invalid(format!(
            "`k` must be between 1 and {}, got {k}",
            state.recommend_max_k
        )));
    }
    if let Some(ef) = req.ef_search {
        if ef == 0 || ef > EF_SEARCH_MAX {
            return Err(invalid(format!(
                "`ef_search` must be between 1 and {EF_SEARCH_MAX}, got {ef}"
            )));
        }
    }
    let filter = parse_filter(req.filter)?;
    let query = parse_query(req.text, req.item_id, req.history)?;
    let index = state.indexes.get(req.index.as_deref())?;
    let mut exclude: HashSet<String> = req.exclude.into_iter().collect();
    let vector = match &query {
        Query::Text(text) => embed_for(&state, &index, text.clone()).await?,
        Query::Item(id) => {
            exclude.insert(id.clone());
            index
                .item(id)
                .await?
                .ok_or_else(|| ApiError::UnknownItem(id.clone()))?
                .0
        }
        Query::History(entries) => {
            exclude.extend(entries.iter().map(|(id, _)| id.clone()));
            history_vector(&index, entries).await?
        }
    };
    let started = Instant::now();
    let found = index
        .search(SearchRequest {
            vector,
            k,
            filter,
            exclude,
            exact: req.exact,
            ef_search: req.ef_search,
        })
        .await?;
    index::metrics::recommend(index.name(), query.kind(), started.elapsed());
    let header = index.header();
    Ok(Json(RecommendResponse {
        items: found
            .into_iter()
            .map(|f| Item {
                id: f.id,
                score: f.score,
                metadata: f.metadata,
            })
            .collect(),
        model: header.model.clone(),
        version: header.model_version.clone(),
        index: index.name().to_string(),
    }))
}

fn one() -> f32 {
    1.0
}

fn invalid(msg: String) -> ApiError {
    ApiError::InvalidInput(msg)
}

fn parse_query(
    text: Option<String>,
    item_id: Option<String>,
    history: Option<Vec<HistoryEntry>>,
) -> Result<Query, ApiError> {
    let query = match (text, item_id, history) {
        (Some(text), None, None) if text.trim().is_empty() => {
            return Err(invalid("`text` must not be empty".into()))
        }
        (Some(text), None, None) => Query::Text(text),
        (None, Some(id), None) => Query::Item(id),
        (None, None, Some(history)) => {
            if history.is_empty() || history.len() > MAX_HISTORY {
                return Err(invalid(format!(
                    "`history` must have 1 to {MAX_HISTORY} entries, got {}",
                    history.len()
                )));
            }
            let entries = history
                .into_iter()
                .enumerate()
                .map(|(i, entry)| match entry {
                    HistoryEntry::Id(id) => Ok((id, 1.0)),
                    HistoryEntry::Weighted { id, weight } if weight.is_finite() && weight > 0.0 => {
                        Ok((id, weight))
                    }
                    HistoryEntry::Weighted { weight, .. } => Err(invalid(format!(
                        "`history[{i}].weight` must be a positive number, got {weight}"
                    ))),
                })
                .collect::<Result<_, _>>()?;
            Query::History(entries)
        }
        _ => {
            return Err(invalid(
                "send exactly one of `text`, `item_id` or `history`".into(),
            ))
        }
    };
    Ok(query)
}

/// `{"section": "games"}` or `{"section": ["games", "web"]}`: scalars only.
fn parse_filter(filter: Map<String, Value>) -> Result<Filter, ApiError> {
    let scalar = |v: &Value| !(v.is_object() || v.is_array() || v.is_null());
    filter
        .into_iter()
        .map(|(field, value)| {
            let allowed = match value {
                Value::Array(values) if !values.is_empty() && values.iter().all(scalar) => values,
                v if scalar(&v) => vec![v],
                _ => {
                    return Err(invalid(format!(
                        "`filter.{field}` must be a string, number or boolean, or a non-empty list of them"
                    )))
                }
            };
            Ok((field, allowed))
        })
        .collect::<Result<_, _>>()
        .map(Filter)
}

/// The normalised weighted mean of the history's vectors; every id must exist.
async fn history_vector(index: &Backend, entries: &[(String, f32)]) -> Result<Vec<f32>, ApiError> {
    let mut sum = vec![0f32; index.header().dimensions];
    let mut unknown = Vec::new();
    for (id, weight) in entries {
        match index.item(id).await? {
            Some((vector, _)) => sum
                .iter_mut()
                .zip(vector)
                .for_each(|(s, x)| *s += weight * x),
            None => unknown.push(id.as_str()),
        }
    }
    if !unknown.is_empty() {
        return Err(ApiError::UnknownItem(unknown.join(", ")));
    }
    let norm = sum.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm <= f32::EPSILON {
        return Err(invalid(
            "the history's vectors cancel out; nothing is similar to it".into(),
        ));
    }
    sum.iter_mut().for_each(|x| *x /= norm);
    Ok(sum)
}

/// Embeds `text` with the version that built `index`, pinned (its vectors are comparable only
/// with that model's, whichever version is promoted now), through the one embedding path.
async fn embed_for(state: &AppState, index: &Backend, text: String) -> Result<Vec<f32>, ApiError> {
    let target = Target::pinned(index_model(state, index)?.model_ref());
    let request = EmbedRequest::new(vec![text], state.deadline());
    let (_, mut embedded) = embed::embed(state, &target, request).await?;
    Ok(embedded.vectors.pop().expect("one text, one vector"))
}

/// The loaded model version that built `index`.
fn index_model(state: &AppState, index: &Backend) -> Result<Arc<ModelHandle>, ApiError> {
    let header = index.header();
    state
        .registry
        .by_weights(&header.model_sha256)
        .ok_or_else(|| {
            ApiError::Conflict(format!(
                "index {:?} was built by model {} version {}, which is not loaded; load that \
                 version or rebuild the index with the promoted one",
                index.name(),
                header.model,
                header.model_version
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn exactly_one_query_is_accepted() {
        assert!(parse_query(Some("x".into()), None, None).is_ok());
        assert!(parse_query(None, Some("a".into()), None).is_ok());
        assert!(parse_query(None, None, None).is_err());
        assert!(parse_query(Some("x".into()), Some("a".into()), None).is_err());
        assert!(parse_query(Some("  ".into()), None, None).is_err());
        assert!(parse_query(None, None, Some(vec![])).is_err());
        let weighted = |w| {
            Some(vec![HistoryEntry::Weighted {
                id: "a".into(),
                weight: w,
            }])
        };
        assert!(parse_query(None, None, weighted(2.0)).is_ok());
        assert!(parse_query(None, None, weighted(-1.0)).is_err());
        assert!(parse_query(None, None, weighted(f32::NAN)).is_err());
    }

    #[test]
    fn filters_take_scalars_or_lists_of_scalars() {
        let ok = json!({"section": "games", "tier": [1, 2]});
        let filter = parse_filter(ok.as_object().unwrap().clone()).unwrap();
        assert_eq!(filter.0.len(), 2);
        for bad in [
            json!({"a": {}}),
            json!({"a": []}),
            json!({"a": null}),
            json!({"a": [[1]]}),
        ] {
            assert!(
                parse_filter(bad.as_object().unwrap().clone()).is_err(),
                "{bad}"
            );
        }
    }
}
