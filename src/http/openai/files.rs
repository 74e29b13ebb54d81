//! OpenAI's Files API, for the Batch API's inputs and outputs: `POST /v1/files` (multipart
//! `file` + `purpose`; only `batch`), `GET /v1/files`, `GET /v1/files/{file_id}`,
//! `GET /v1/files/{file_id}/content`, `DELETE /v1/files/{file_id}`.
//!
//! An upload is streamed to disk (never held in memory), refused with 413 past
//! `--batch-max-file-bytes`, checked, fsynced, and acknowledged only once durable.

use std::path::Path as FsPath;

use axum::{
    body::Body,
    extract::{
        multipart::{Field, MultipartError, MultipartRejection},
        rejection::QueryRejection,
        DefaultBodyLimit, Multipart, Query, State,
    },
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::OpenAiErrorResponse;
use crate::{
    http::{error::ApiError, extract::ApiPath, state::AppState},
    jobs::{FileObject, Jobs},
};

/// Longest `purpose` (or other text field) accepted.
const MAX_FIELD_BYTES: u64 = 1024;

/// The upload route counts the bytes it streams itself (`--batch-max-file-bytes` for the file,
/// [`MAX_FIELD_BYTES`] for other fields), so the router's `--max-body-bytes` does not apply.
pub fn routes() -> OpenApiRouter<AppState> {
    let (schemas, paths, upload) = routes!(create_file);
    OpenApiRouter::new()
        .routes((schemas, paths, upload.layer(DefaultBodyLimit::disable())))
        .routes(routes!(list_files))
        .routes(routes!(get_file, delete_file))
        .routes(routes!(file_content))
}

/// The Batch API's store, or 503 `batch_api_disabled` without `--state-dir`.
pub fn jobs(state: &AppState) -> Result<&Jobs, ApiError> {
    state
        .jobs
        .as_deref()
        .ok_or_else(|| crate::jobs::JobsError::Disabled.into())
}

/// The form `files.create` sends.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the multipart body, which is read field by field
struct UploadForm {
    /// JSON lines, one request per line.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// Must be `batch`.
    purpose: String,
}

/// Uploads a batch input file (OpenAI's `files.create`).
#[utoipa::path(post, path = "/v1/files", tag = "openai",
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses((status = 200, body = FileObject),
        (status = "4XX", body = OpenAiErrorResponse), (status = "5XX", body = OpenAiErrorResponse)))]
async fn create_file(
    State(state): State<AppState>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Json<FileObject>, ApiError> {
    let jobs = jobs(&state)?;
    state.health.accepting()?;
    let mut multipart = multipart.map_err(|e| {
        ApiError::InvalidInput(format!(
            "expected a multipart/form-data body with `file` and `purpose` fields: {}",
            e.body_text()
        ))
    })?;
    let temp = jobs.upload_path();
    let limit = jobs.config().max_file_bytes;
    let read = read_form(&mut multipart, &temp, limit).await;
    let (filename, purpose) = match read {
        Ok(form) => form,
        Err(err) => {
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(err);
        }
    };
    Ok(Json(jobs.create_file(temp, filename, &purpose).await?))
}

/// Streams the `file` field to `temp`; returns its name and the `purpose`.
async fn read_form(
    multipart: &mut Multipart,
    temp: &FsPath,
    limit: u64,
) -> Result<(String, String), ApiError> {
    let (mut filename, mut purpose) = (None, None);
    while let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(|e| form_error(e, limit))?
    {
        match field.name() {
            Some("file") => {
                filename = Some(field.file_name().unwrap_or("input.jsonl").to_string());
                save(&mut field, temp, limit).await?;
            }
            Some("purpose") => purpose = Some(text(&mut field).await?),
            _ => drop(text(&mut field).await?), // e.g. `expires_after[...]`: ignored
        }
    }
    match (filename, purpose) {
        (Some(filename), Some(purpose)) => Ok((filename, purpose)),
        (None, _) => Err(ApiError::InvalidInput(
            "the form has no `file` field".into(),
        )),
        (_, None) => Err(ApiError::InvalidInput(
            "the form has no `purpose` field (it must be \"batch\")".into(),
        )),
    }
}

async fn save(field: &mut Field<'_>, temp: &FsPath, limit: u64) -> Result<(), ApiError> {
    let storage = |e: std::io::Error| ApiError::Internal(format!("writing an upload: {e}"));
    let mut file = tokio::fs::File::create(temp).await.map_err(storage)?;
    let mut written = 0u64;
    while let Some(chunk) = field.chunk().await.map_err(|e| form_error(e, limit))? {
        written += chunk.len() as u64;
        if written > limit {
            return Err(crate::jobs::JobsError::TooLarge { limit }.into());
        }
        file.write_all(&chunk).await.map_err(storage)?;
    }
    file.flush().await.map_err(storage)
}

/// A short text field.
async fn text(field: &mut Field<'_>) -> Result<String, ApiError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field
        .chunk()
        .await
        .map_err(|e| form_error(e, MAX_FIELD_BYTES))?
    {
        bytes.extend_from_slice(&chunk);
        if bytes.len() as u64 > MAX_FIELD_BYTES {
            return Err(ApiError::InvalidInput(format!(
                "form field `{}` is longer than {MAX_FIELD_BYTES} bytes",
                field.name().unwrap_or("")
            )));
        }
    }
    String::from_utf8(bytes).map_err(|_| ApiError::InvalidInput("a form field is not UTF-8".into()))
}

fn form_error(err: MultipartError, limit: u64) -> ApiError {
    match err.status() {
        StatusCode::PAYLOAD_TOO_LARGE => crate::jobs::JobsError::TooLarge { limit }.into(),
        _ => ApiError::InvalidInput(format!(
            "the multipart body is malformed: {}",
            err.body_text()
        )),
    }
}

/// `?after=&limit=` of the list routes.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Id of the last object of the previous page.
    pub after: Option<String>,
    /// Objects per page, 1 to 100 (default 20).
    pub limit: Option<usize>,
}

impl ListQuery {
    /// The query, or a 422 naming what is wrong with it.
    pub fn parse(
        query: Result<Query<Self>, QueryRejection>,
    ) -> Result<(Option<String>, usize), ApiError> {
        let Query(q) = query.map_err(|e| ApiError::InvalidInput(e.body_text()))?;
        match q.limit.unwrap_or(20) {
            limit @ 1..=100 => Ok((q.after, limit)),
            other => Err(ApiError::InvalidInput(format!(
                "`limit` must be between 1 and 100, got {other}"
            ))),
        }
    }
}

/// A page of objects, OpenAI's list shape.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<T>,
    pub first_id: Option<String>,
    pub last_id: Option<String>,
    pub has_more: bool,
}

impl<T> Page<T> {
    pub fn new(data: Vec<T>, has_more: bool, id: impl Fn(&T) -> String) -> Self {
        Self {
            object: "list",
            first_id: data.first().map(&id),
            last_id: data.last().map(&id),
            data,
            has_more,
        }
    }
}

/// Lists files, newest first.
#[utoipa::path(get, path = "/v1/files", tag = "openai", params(ListQuery),
    responses((status = 200, body = Page<FileObject>),
        (status = "4XX", body = OpenAiErrorResponse), (status = "5XX", body = OpenAiErrorResponse)))]
async fn list_files(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Page<FileObject>>, ApiError> {
    let (after, limit) = ListQuery::parse(query)?;
    let (files, more) = jobs(&state)?.list_files(after.as_deref(), limit).await?;
    Ok(Json(Page::new(files, more, |f| f.id.clone())))
}

/// Describes one file.
#[utoipa::path(get, path = "/v1/files/{file_id}", tag = "openai",
    params(("file_id" = String, Path)),
    responses((status = 200, body = FileObject),
        (status = "4XX", body = OpenAiErrorResponse), (status = "5XX", body = OpenAiErrorResponse)))]
async fn get_file(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<FileObject>, ApiError> {
    Ok(Json(jobs(&state)?.file(&id).await?))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FileDeleted {
    pub id: String,
    /// Always `file`.
    pub object: &'static str,
    pub deleted: bool,
}

/// Deletes a file (refused while a batch that has not ended reads it).
#[utoipa::path(delete, path = "/v1/files/{file_id}", tag = "openai",
    params(("file_id" = String, Path)),
    responses((status = 200, body = FileDeleted),
        (status = "4XX", body = OpenAiErrorResponse), (status = "5XX", body = OpenAiErrorResponse)))]
async fn delete_file(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<FileDeleted>, ApiError> {
    jobs(&state)?.delete_file(&id).await?;
    Ok(Json(FileDeleted {
        id,
        object: "file",
        deleted: true,
    }))
}

/// A file's content: an input as uploaded, or a batch's output or error lines.
#[utoipa::path(get, path = "/v1/files/{file_id}/content", tag = "openai",
    params(("file_id" = String, Path)),
    responses((status = 200, content_type = "application/jsonl", body = String),
        (status = "4XX", body = OpenAiErrorResponse), (status = "5XX", body = OpenAiErrorResponse)))]
async fn file_content(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let path = jobs(&state)?.file_content(&id).await?;
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| ApiError::Internal(format!("opening {}: {e}", path.display())))?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    Ok(([(header::CONTENT_TYPE, "application/jsonl")], body).into_response())
}
