//! Live item writes and index administration.
//!
//! `PUT /items/{id}` (`{"text", "metadata"}`: embedded on the way in) and `DELETE /items/{id}`
//! change data, so they take [`RequireKey`]: 403 without `--api-key-file`, 401 without a valid
//! key. They answer only after the write is in the index's write-ahead log and fsynced.
//! `GET /items/{id}` reads one item; `GET /indexes` lists the loaded indexes;
//! `POST /indexes/{name}/compact` folds the log into a new generation. `?index=` picks the index
//! when several are loaded.

use std::{sync::Arc, time::Instant};

use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    routing::{get, post},
    Json, Router,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::http::{openapi::ErrorResponse, ApiJson};
use crate::{
    auth::RequireKey,
    http::error::ApiError,
    http::state::AppState,
    index::{wal::WalRecord, LiveIndex},
    telemetry,
};

/// Longest item id accepted, in bytes.
const MAX_ID_BYTES: usize = 512;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/items/{id}",
            get(get_item).put(put_item).delete(delete_item),
        )
        .route("/indexes", get(list_indexes))
        .route("/indexes/{name}/compact", post(compact))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IndexParam {
    /// Which index, needed only when several are loaded.
    pub index: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutItem {
    /// Embedded by the model that built the index.
    #[schema(min_length = 1)]
    pub text: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ItemBody {
    pub id: String,
    pub index: String,
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
}

#[utoipa::path(get, path = "/items/{id}", tag = "recommendations",
    params(("id" = String, Path, description = "item id"), IndexParam),
    responses((status = 200, body = ItemBody), (status = "4XX", body = ErrorResponse), (status = "5XX", body = ErrorResponse)))]
pub(crate) async fn get_item(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(param): Query<IndexParam>,
) -> Result<Json<ItemBody>, ApiError> {
    let index = state.indexes.get(param.index.as_deref())?;
    let (_, metadata) = index.item(&id).ok_or(ApiError::UnknownItem(id.clone()))?;
    Ok(Json(ItemBody {
        id,
        index: index.name.clone(),
        metadata: (*metadata).clone(),
    }))
}

/// Adds or replaces an item; answers after the write is logged and fsynced. Needs an API key.
#[utoipa::path(put, path = "/items/{id}", tag = "recommendations",
    params(("id" = String, Path, description = "item id"), IndexParam),
    request_body = PutItem,
    responses((status = 200, description = "replaced", body = Object),
        (status = 201, description = "created", body = Object), (status = "4XX", body = ErrorResponse), (status = "5XX", body = ErrorResponse)))]
pub(crate) async fn put_item(
    State(state): State<AppState>,
    RequireKey(caller): RequireKey,
    Path(id): Path<String>,
    Query(param): Query<IndexParam>,
    ApiJson(body): ApiJson<PutItem>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if state.health.draining() {
        return Err(ApiError::ShuttingDown);
    }
    check_id(&id)?;
    if body.text.trim().is_empty() {
        return Err(ApiError::InvalidInput("`text` must not be empty".into()));
    }
    let index = state.indexes.get(param.index.as_deref())?;
    let model = super::index_model(&state, &index)?;
    let timeout = state.limits.request_timeout;
    let mut embedded = model
        .embed(
            vec![body.text],
            true,
            true,
            Instant::now() + timeout,
            timeout,
        )
        .await?;
    let record = WalRecord::Upsert {
        id: id.clone(),
        metadata: body.metadata,
        vector: embedded.vectors.pop().expect("one text, one vector"),
    };
    let existed = write(&index, record).await?;
    telemetry::index_write(&index.name, "put");
    tracing::info!(index = %index.name, id, caller = %caller, existed, "item written");
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(json!({"id": id, "index": index.name, "created": !existed})),
    ))
}

/// Deletes an item; answers after the write is logged and fsynced. Needs an API key.
#[utoipa::path(delete, path = "/items/{id}", tag = "recommendations",
    params(("id" = String, Path, description = "item id"), IndexParam),
    responses((status = 200, body = Object), (status = "4XX", body = ErrorResponse), (status = "5XX", body = ErrorResponse)))]
pub(crate) async fn delete_item(
    State(state): State<AppState>,
    RequireKey(caller): RequireKey,
    Path(id): Path<String>,
    Query(param): Query<IndexParam>,
) -> Result<Json<Value>, ApiError> {
    if state.health.draining() {
        return Err(ApiError::ShuttingDown);
    }
    let index = state.indexes.get(param.index.as_deref())?;
    if index.item(&id).is_none() {
        return Err(ApiError::UnknownItem(id));
    }
    let existed = write(&index, WalRecord::Delete { id: id.clone() }).await?;
    if !existed {
        // A concurrent delete won; the outcome is the same.
        return Err(ApiError::UnknownItem(id));
    }
    telemetry::index_write(&index.name, "delete");
    tracing::info!(index = %index.name, id, caller = %caller, "item deleted");
    Ok(Json(
        json!({"id": id, "index": index.name, "deleted": true}),
    ))
}

/// Logs (with fsync) and applies a write off the async runtime.
async fn write(index: &Arc<LiveIndex>, record: WalRecord) -> Result<bool, ApiError> {
    let index = Arc::clone(index);
    tokio::task::spawn_blocking(move || index.write(record))
        .await
        .map_err(|e| ApiError::Internal(format!("write task failed: {e}")))?
        .map_err(|e| ApiError::Internal(format!("{e:#}")))
}

fn check_id(id: &str) -> Result<(), ApiError> {
    if id.trim().is_empty() || id.len() > MAX_ID_BYTES {
        return Err(ApiError::InvalidInput(format!(
            "item ids must be 1 to {MAX_ID_BYTES} bytes and not blank"
        )));
    }
    Ok(())
}

#[utoipa::path(get, path = "/indexes", tag = "recommendations",
    responses((status = 200, body = Object), (status = "4XX", body = ErrorResponse), (status = "5XX", body = ErrorResponse)))]
pub(crate) async fn list_indexes(State(state): State<AppState>) -> Json<Value> {
    let indexes: Vec<Value> = state
        .indexes
        .names()
        .iter()
        .filter_map(|name| state.indexes.get(Some(name)).ok())
        .map(|index| {
            let h = &index.header;
            json!({
                "name": index.name, "items": index.len(), "model": h.model,
                "version": h.model_version, "model_sha256": h.model_sha256,
                "dimensions": h.dimensions, "search": h.search,
                "graph_ready": index.graph_ready(),
            })
        })
        .collect();
    Json(json!({ "indexes": indexes }))
}

/// Folds the write-ahead log into a new generation. Needs an API key.
#[utoipa::path(post, path = "/indexes/{name}/compact", tag = "recommendations",
    params(("name" = String, Path, description = "index name")),
    responses((status = 200, body = Object), (status = "4XX", body = ErrorResponse), (status = "5XX", body = ErrorResponse)))]
pub(crate) async fn compact(
    State(state): State<AppState>,
    RequireKey(_caller): RequireKey,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let index = state.indexes.get(Some(&name))?;
    let compacting = Arc::clone(&index);
    let generation = tokio::task::spawn_blocking(move || compacting.compact())
        .await
        .map_err(|e| ApiError::Internal(format!("compaction task failed: {e}")))?
        .map_err(|e| ApiError::Internal(format!("{e:#}")))?;
    Ok(Json(
        json!({"index": index.name, "generation": generation, "items": index.len()}),
    ))
}
