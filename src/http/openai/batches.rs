//! OpenAI's Batch API: `POST /v1/batches`, `GET /v1/batches`, `GET /v1/batches/{batch_id}`,
//! `POST /v1/batches/{batch_id}/cancel`. The work runs in `crate::jobs`; these routes only
//! check the request and answer with the batch as the journal has it.

use std::collections::BTreeMap;

use axum::extract::{rejection::QueryRejection, Query, State};
use axum::Json;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    files::{jobs, ListQuery, Page},
    OpenAiErrorResponse,
};
use crate::{
    http::{
        error::ApiError,
        extract::{ApiJson, ApiPath},
        state::AppState,
    },
    jobs::{Batch, NewBatch},
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_batch, list_batches))
        .routes(routes!(get_batch))
        .routes(routes!(cancel_batch))
}

/// `batches.create`'s body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBatch {
    /// A file uploaded with purpose `batch`.
    pub input_file_id: String,
    /// The URL every request line names: `/v1/embeddings`.
    pub endpoint: String,
    /// `24h`, or any duration from `1s` to `7d` (`s`, `m`, `h`, `d`).
    pub completion_window: String,
    /// Up to 16 pairs (keys ≤ 64 characters, values ≤ 512), returned with the batch.
    pub metadata: Option<BTreeMap<String, String>>,
    /// Accepted for compatibility; outputs are kept until deleted.
    #[allow(dead_code)]
    #[schema(value_type = Option<Object>)]
    pub output_expires_after: Option<serde_json::Value>,
}

/// Creates a batch over an uploaded file.
#[utoipa::path(post, path = "/v1/batches", tag = "openai", request_body = CreateBatch,
    responses((status = 200, body = Batch),
        (status = "4XX", body = OpenAiErrorResponse), (status = "5XX", body = OpenAiErrorResponse)))]
async fn create_batch(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<CreateBatch>,
) -> Result<Json<Batch>, ApiError> {
    let jobs = jobs(&state)?;
    state.health.accepting()?;
    let batch = jobs
        .create_batch(NewBatch {
            input_file_id: req.input_file_id,
            endpoint: req.endpoint,
            completion_window: req.completion_window,
            metadata: req.metadata,
        })
        .await?;
    Ok(Json(batch))
}

/// Lists batches, newest first.
#[utoipa::path(get, path = "/v1/batches", tag = "openai", params(ListQuery),
    responses((status = 200, body = Page<Batch>),
        (status = "4XX", body = OpenAiErrorResponse), (status = "5XX", body = OpenAiErrorResponse)))]
async fn list_batches(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Page<Batch>>, ApiError> {
    let (after, limit) = ListQuery::parse(query)?;
    let (batches, more) = jobs(&state)?.list_batches(after.as_deref(), limit).await?;
    Ok(Json(Page::new(batches, more, |b| b.id.clone())))
}

/// Describes one batch: status, request counts, timestamps, output and error files.
#[utoipa::path(get, path = "/v1/batches/{batch_id}", tag = "openai",
    params(("batch_id" = String, Path)),
    responses((status = 200, body = Batch),
        (status = "4XX", body = OpenAiErrorResponse), (status = "5XX", body = OpenAiErrorResponse)))]
async fn get_batch(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Batch>, ApiError> {
    Ok(Json(jobs(&state)?.batch(&id).await?))
}

/// Cancels a batch: it turns `cancelling`, then `cancelled` with the results it has (409 once
/// it has ended).
#[utoipa::path(post, path = "/v1/batches/{batch_id}/cancel", tag = "openai",
    params(("batch_id" = String, Path)),
    responses((status = 200, body = Batch),
        (status = "4XX", body = OpenAiErrorResponse), (status = "5XX", body = OpenAiErrorResponse)))]
async fn cancel_batch(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Batch>, ApiError> {
    Ok(Json(jobs(&state)?.cancel(&id).await?))
}
