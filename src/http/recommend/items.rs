//! Live item writes and index administration.
//!
//! `PUT /items/{id}` (`{"text", "metadata"}`: embedded on the way in) and `DELETE /items/{id}`
//! change data, so they take [`RequireKey`]: 403 without `--api-key-file`, 401 without a valid
//! key. They answer only after the write is in the index's write-ahead log and fsynced (for a
//! PostgreSQL index: committed); a write the log cannot make durable (disk full) is not applied
//! and answers 503 `storage_unavailable`, one PostgreSQL cannot take 503 `index_unavailable`.
//! `GET /items/{id}` reads one item; `GET /indexes` lists the loaded indexes;
//! `POST /indexes/{name}/compact` folds the log into a new generation. `?index=` picks the index
//! when several are loaded.

use axum::{extract::State, http::StatusCode, Json};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::embed_for;
use crate::{
    http::{
        error::ApiError,
        extract::{ApiJson, ApiPath, ApiQuery},
        middleware::auth::RequireKey,
        schema::ErrorResponse,
        state::AppState,
    },
    index::{self, wal::WalRecord, Search},
};

/// Longest item id accepted, in bytes.
const MAX_ID_BYTES: usize = 512;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_item, put_item, delete_item))
        .routes(routes!(list_indexes))
        .routes(routes!(compact))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IndexParam {
    /// Which index, needed only when several are loaded.
    pub index: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutItem {
    /// Embedded by the model that built the index.
    #[schema(min_length = 1)]
    pub text: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ItemBody {
    pub id: String,
    pub index: String,
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
}

/// `PUT /items/{id}`: the write is logged and fsynced.
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemWritten {
    pub id: String,
    pub index: String,
    /// False when an item with this id was replaced.
    pub created: bool,
}

/// `DELETE /items/{id}`: the delete is logged and fsynced.
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemDeleted {
    pub id: String,
    pub index: String,
    /// Always true.
    pub deleted: bool,
}

/// `GET /indexes`.
#[derive(Debug, Serialize, ToSchema)]
pub struct IndexList {
    pub indexes: Vec<IndexSummary>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IndexSummary {
    pub name: String,
    /// `directory` (served from this process) or `postgres` (shared by replicas).
    pub backend: &'static str,
    /// Live items (null while a PostgreSQL index cannot be reached).
    pub items: Option<usize>,
    /// The model that built it, and its version and weights' sha256.
    pub model: String,
    pub version: String,
    pub model_sha256: String,
    pub dimensions: usize,
    /// `exact` or `hnsw`: how it answers by default.
    #[schema(value_type = String)]
    pub search: Search,
    /// Whether the approximate graph is built (false while it builds, and for exact indexes).
    pub graph_ready: bool,
    /// Directory indexes with a graph: `mapped` (read from the generation at start), `building`
    /// or `built` (built in this process); null otherwise.
    pub graph: Option<&'static str>,
    /// False while a PostgreSQL index cannot be reached (always true for a directory).
    pub available: bool,
    /// False while the index's log is read-only after a failed repair: writes answer 503.
    pub writable: bool,
}

/// `POST /indexes/{name}/compact`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Compacted {
    pub index: String,
    /// The generation the log was folded into.
    pub generation: u64,
    pub items: usize,
}

#[utoipa::path(get, path = "/items/{id}", tag = "recommendations",
    params(("id" = String, Path, description = "item id"), IndexParam),
    responses((status = 200, body = ItemBody), (status = "4XX", body = ErrorResponse), (status = "5XX", body = ErrorResponse)))]
async fn get_item(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(param): ApiQuery<IndexParam>,
) -> Result<Json<ItemBody>, ApiError> {
    let index = state.indexes.get(param.index.as_deref())?;
    let (_, metadata) = index
        .item(&id)
        .await?
        .ok_or(ApiError::UnknownItem(id.clone()))?;
    Ok(Json(ItemBody {
        id,
        index: index.name().to_string(),
        metadata,
    }))
}

/// Adds or replaces an item; answers after the write is logged and fsynced. Needs an API key.
#[utoipa::path(put, path = "/items/{id}", tag = "recommendations",
    params(("id" = String, Path, description = "item id"), IndexParam),
    request_body = PutItem,
    responses((status = 200, description = "replaced", body = ItemWritten),
        (status = 201, description = "created", body = ItemWritten), (status = "4XX", body = ErrorResponse), (status = "5XX", body = ErrorResponse)))]
async fn put_item(
    State(state): State<AppState>,
    RequireKey(caller): RequireKey,
    ApiPath(id): ApiPath<String>,
    ApiQuery(param): ApiQuery<IndexParam>,
    ApiJson(body): ApiJson<PutItem>,
) -> Result<(StatusCode, Json<ItemWritten>), ApiError> {
    state.health.accepting()?;
    check_id(&id)?;
    if body.text.trim().is_empty() {
        return Err(ApiError::InvalidInput("`text` must not be empty".into()));
    }
    let index = state.indexes.get(param.index.as_deref())?;
    let record = WalRecord::Upsert {
        id: id.clone(),
        metadata: body.metadata,
        vector: embed_for(&state, &index, body.text).await?,
    };
    let existed = index.write(record).await?;
    index::metrics::index_write(index.name(), "put");
    tracing::info!(index = %index.name(), id, caller = %caller, existed, "item written");
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let written = ItemWritten {
        id,
        index: index.name().to_string(),
        created: !existed,
    };
    Ok((status, Json(written)))
}

/// Deletes an item; answers after the write is logged and fsynced. Needs an API key.
#[utoipa::path(delete, path = "/items/{id}", tag = "recommendations",
    params(("id" = String, Path, description = "item id"), IndexParam),
    responses((status = 200, body = ItemDeleted), (status = "4XX", body = ErrorResponse), (status = "5XX", body = ErrorResponse)))]
async fn delete_item(
    State(state): State<AppState>,
    RequireKey(caller): RequireKey,
    ApiPath(id): ApiPath<String>,
    ApiQuery(param): ApiQuery<IndexParam>,
) -> Result<Json<ItemDeleted>, ApiError> {
    state.health.accepting()?;
    let index = state.indexes.get(param.index.as_deref())?;
    let existed = index.write(WalRecord::Delete { id: id.clone() }).await?;
    if !existed {
        // A concurrent delete won; the outcome is the same.
        return Err(ApiError::UnknownItem(id));
    }
    index::metrics::index_write(index.name(), "delete");
    tracing::info!(index = %index.name(), id, caller = %caller, "item deleted");
    Ok(Json(ItemDeleted {
        id,
        index: index.name().to_string(),
        deleted: true,
    }))
}

fn check_id(id: &str) -> Result<(), ApiError> {
    if id.trim().is_empty() || id.len() > MAX_ID_BYTES {
        return Err(ApiError::InvalidInput(format!(
            "item ids must be 1 to {MAX_ID_BYTES} bytes and not blank"
        )));
    }
    Ok(())
}

/// The loaded indexes: backend, size, the model that built them, search kind.
#[utoipa::path(get, path = "/indexes", tag = "recommendations",
    responses((status = 200, body = IndexList), (status = "4XX", body = ErrorResponse), (status = "5XX", body = ErrorResponse)))]
async fn list_indexes(State(state): State<AppState>) -> Json<IndexList> {
    let mut indexes = Vec::new();
    for name in state.indexes.names() {
        let Ok(index) = state.indexes.get(Some(&name)) else {
            continue;
        };
        let h = index.header().clone();
        let d = index.describe().await;
        indexes.push(IndexSummary {
            name,
            backend: d.backend,
            items: d.items,
            model: h.model,
            version: h.model_version,
            model_sha256: h.model_sha256,
            dimensions: h.dimensions,
            search: h.search,
            graph_ready: d.graph_ready,
            graph: d.graph,
            available: d.available,
            writable: d.writable,
        });
    }
    Json(IndexList { indexes })
}

/// Folds the write-ahead log into a new generation. Needs an API key.
#[utoipa::path(post, path = "/indexes/{name}/compact", tag = "recommendations",
    params(("name" = String, Path, description = "index name")),
    responses((status = 200, body = Compacted), (status = "4XX", body = ErrorResponse), (status = "5XX", body = ErrorResponse)))]
async fn compact(
    State(state): State<AppState>,
    RequireKey(_caller): RequireKey,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Compacted>, ApiError> {
    let index = state.indexes.get(Some(&name))?;
    let generation = index.compact().await?;
    Ok(Json(Compacted {
        index: index.name().to_string(),
        generation,
        items: index.count().await?,
    }))
}
