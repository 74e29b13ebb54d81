//! The one place where errors become HTTP responses.
//!
//! Every error the API returns is JSON `{"error": "...", "code": "..."}` with a stable code that
//! clients may branch on (the README lists them). Client mistakes carry a useful message; server
//! faults log their detail and answer with a generic body. The domain layers return their own
//! errors ([`EmbedError`], [`DeployError`], [`IndexError`]); the `From` impls here are the only
//! mapping from them to statuses and codes, and dialects re-shape only the body ([`reshape`]).

use std::time::Duration;

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::Serialize;

use super::metrics;
use crate::{deploy::DeployError, index::IndexError, jobs::JobsError, serving::EmbedError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("malformed JSON: {0}")]
    InvalidJson(String),
    /// A path parameter or query string that does not decode or parse.
    #[error("{0}")]
    InvalidUrl(String),
    #[error("expected a request body with `Content-Type: application/json`")]
    UnsupportedMediaType,
    #[error("request body is larger than the {limit} bytes allowed")]
    PayloadTooLarge { limit: usize },
    /// The answer would be larger than `--max-response-bytes`; nothing was written.
    #[error("the answer would be about {bytes} bytes, more than the {limit} allowed (--max-response-bytes); send fewer or shorter texts per request")]
    ResponseTooLarge { bytes: usize, limit: usize },
    #[error("{0}")]
    InvalidInput(String),
    /// A parameter the API knows but this model or route cannot honour (e.g. OpenAI `dimensions`).
    #[error("{message}")]
    UnsupportedParameter {
        param: &'static str,
        message: String,
    },
    /// A parameter whose value this model cannot take (e.g. `dimensions` above the model's,
    /// a `prompt_name` it does not define): 422 `invalid_input`, naming the parameter.
    #[error("{message}")]
    InvalidParameter {
        param: &'static str,
        message: String,
    },
    #[error("input {index} has {tokens} tokens, more than the model's limit of {limit}; shorten it, or send `\"truncate\": true` to cut it to the limit (the server cuts by default unless started with `--auto-truncate false` or the request says `\"truncate\": false`)")]
    InputTooLong {
        index: usize,
        tokens: usize,
        limit: usize,
    },
    /// An input the input policy refused (`--input-policy enforce`): 422 with the reason's code.
    #[error("{message}")]
    InputFlagged { code: &'static str, message: String },
    /// The route needs another kind of model than the one it reached (embeddings from a
    /// reranker, `/predict` on an embedding model).
    #[error("{0}")]
    WrongModelKind(String),
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("rate limit exceeded (--rate-limit); retry after {}s", retry_after.as_secs().max(1))]
    RateLimited { retry_after: Duration },
    #[error("unknown model {0:?}")]
    ModelNotFound(String),
    /// A request naming a model this server does not serve: the names it answers to.
    #[error("unknown model {model:?}; this server answers to {}", known.join(", "))]
    UnknownModel { model: String, known: Vec<String> },
    #[error("the request's inputs have {tokens} tokens in all, more than the {limit} one request may carry (--max-client-tokens); send fewer or shorter inputs per request")]
    TooManyTokens { tokens: usize, limit: usize },
    #[error("unknown item {0:?}")]
    UnknownItem(String),
    #[error("unknown index {0}")]
    UnknownIndex(String),
    #[error("the server is overloaded: the request queue is full; retry later")]
    Overloaded { retry_after: Duration },
    #[error("the request did not complete within its {0:?} deadline")]
    DeadlineExceeded(Duration),
    #[error("the model is not ready to serve yet")]
    NotReady,
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The listener's `--max-connections` are all held; only probes answer on this connection.
    #[error("the server holds its maximum number of connections (--max-connections); retry later")]
    TooManyConnections,
    /// The request body did not arrive within `--body-read-timeout`.
    #[error("the request body did not arrive within {0:?} (--body-read-timeout)")]
    BodyTimeout(Duration),
    /// A write its log could not make durable (disk full, I/O error); it was not applied.
    #[error("the write could not be stored durably (the server's disk is full or failing), so it was not applied; retry later")]
    StorageUnavailable,
    /// The index's backing store (PostgreSQL) cannot be reached; the detail is logged.
    #[error("the index is unavailable; retry later")]
    IndexUnavailable(String),
    #[error("no route for {0}")]
    NotFound(String),
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    /// A lifecycle action that contradicts the current state (e.g. unloading the promoted version).
    #[error("{0}")]
    Conflict(String),
    /// `promote` refused: the candidate's measured agreement is below the threshold or unmeasured.
    #[error("{0}")]
    AgreementTooLow(String),
    /// An admin load failed: missing files, a sha256 mismatch, a shape the manifest does not promise.
    #[error("{0}")]
    LoadFailed(String),
    /// The Batch API without `--state-dir`: the message says how to turn it on.
    #[error("{0}")]
    BatchApiDisabled(String),
    /// A Batch API file or batch id that names nothing.
    #[error("{0}")]
    ResourceNotFound(String),
    /// A server fault: the detail is logged, never sent.
    #[error("internal error")]
    Internal(String),
}

/// The error behind a response, left in its extensions so a dialect (OpenAI, TEI, KServe) can
/// re-shape the body while status, code and headers stay exactly what this module decided.
#[derive(Debug, Clone)]
pub struct ErrorParts {
    pub code: &'static str,
    pub message: String,
    /// The request field at fault, where one is.
    pub param: Option<&'static str>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: String,
    code: &'a str,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidJson(_)
            | Self::InvalidUrl(_)
            | Self::UnsupportedParameter { .. }
            | Self::WrongModelKind(_) => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::PayloadTooLarge { .. }
            | Self::ResponseTooLarge { .. }
            | Self::InputTooLong { .. }
            | Self::TooManyTokens { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::InvalidInput(_) | Self::InvalidParameter { .. } | Self::InputFlagged { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::ModelNotFound(_)
            | Self::UnknownModel { .. }
            | Self::UnknownItem(_)
            | Self::UnknownIndex(_)
            | Self::ResourceNotFound(_)
            | Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) | Self::AgreementTooLow(_) => StatusCode::CONFLICT,
            Self::LoadFailed(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Overloaded { .. }
            | Self::NotReady
            | Self::ShuttingDown
            | Self::TooManyConnections
            | Self::StorageUnavailable
            | Self::IndexUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::BatchApiDisabled(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::DeadlineExceeded(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable code; part of the API contract.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidJson(_) => "invalid_json",
            Self::InvalidUrl(_) => "invalid_url",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::ResponseTooLarge { .. } => "response_too_large",
            Self::InvalidInput(_) | Self::InvalidParameter { .. } => "invalid_input",
            Self::UnsupportedParameter { .. } => "unsupported_parameter",
            Self::InputTooLong { .. } => "input_too_long",
            Self::InputFlagged { code, .. } => code,
            Self::WrongModelKind(_) => "wrong_model_kind",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::RateLimited { .. } => "rate_limited",
            Self::ModelNotFound(_) | Self::UnknownModel { .. } => "model_not_found",
            Self::TooManyTokens { .. } => "too_many_tokens",
            Self::UnknownItem(_) => "unknown_item",
            Self::UnknownIndex(_) => "unknown_index",
            Self::Overloaded { .. } => "overloaded",
            Self::DeadlineExceeded(_) => "deadline_exceeded",
            Self::NotReady => "not_ready",
            Self::ShuttingDown => "shutting_down",
            Self::TooManyConnections => "too_many_connections",
            Self::BodyTimeout(_) => "body_timeout",
            Self::StorageUnavailable => "storage_unavailable",
            Self::IndexUnavailable(_) => "index_unavailable",
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Conflict(_) => "conflict",
            Self::AgreementTooLow(_) => "agreement_below_threshold",
            Self::LoadFailed(_) => "load_failed",
            Self::BatchApiDisabled(_) => "batch_api_disabled",
            Self::ResourceNotFound(_) => "resource_not_found",
            Self::Internal(_) => "internal_error",
        }
    }

    /// Every code, for metrics pre-registration and the docs test.
    pub const CODES: &'static [&'static str] = &[
        "invalid_json",
        "invalid_url",
        "unsupported_media_type",
        "payload_too_large",
        "response_too_large",
        "invalid_input",
        "unsupported_parameter",
        "input_too_long",
        "input_too_many_chars",
        "input_empty",
        "input_invalid_text",
        "input_unknown_tokens",
        "wrong_model_kind",
        "too_many_tokens",
        "unauthorized",
        "forbidden",
        "rate_limited",
        "model_not_found",
        "unknown_item",
        "unknown_index",
        "overloaded",
        "deadline_exceeded",
        "not_ready",
        "shutting_down",
        "too_many_connections",
        "body_timeout",
        "storage_unavailable",
        "index_unavailable",
        "not_found",
        "method_not_allowed",
        "conflict",
        "agreement_below_threshold",
        "load_failed",
        "batch_api_disabled",
        "resource_not_found",
        "internal_error",
    ];

    /// The status, code, message and field at fault, as every dialect's body shows them.
    pub fn parts(&self) -> ErrorParts {
        ErrorParts {
            code: self.code(),
            message: self.to_string(),
            param: match self {
                Self::UnsupportedParameter { param, .. } | Self::InvalidParameter { param, .. } => {
                    Some(*param)
                }
                _ => None,
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.code();
        metrics::record_error(code);
        if let Self::Internal(detail) = &self {
            tracing::error!(%detail, "internal error");
        }
        if let Self::IndexUnavailable(detail) = &self {
            tracing::warn!(%detail, "index unavailable");
        }
        let parts = self.parts();
        let body = ErrorBody {
            error: parts.message.clone(),
            code,
        };
        let mut response = (self.status(), Json(body)).into_response();
        response.extensions_mut().insert(parts);
        if let Self::Unauthorized(_) = &self {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        let retry_after = match &self {
            Self::Overloaded { retry_after } | Self::RateLimited { retry_after } => {
                Some(retry_after.as_secs().max(1))
            }
            Self::NotReady
            | Self::ShuttingDown
            | Self::TooManyConnections
            | Self::IndexUnavailable(_) => Some(1),
            // A full or failing disk takes longer than a second to fix.
            Self::StorageUnavailable => Some(5),
            _ => None,
        };
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<EmbedError> for ApiError {
    fn from(err: EmbedError) -> Self {
        match err {
            EmbedError::Overloaded { retry_after } => Self::Overloaded { retry_after },
            EmbedError::DeadlineExceeded(budget) => Self::DeadlineExceeded(budget),
            EmbedError::InputTooLong {
                index,
                tokens,
                limit,
            } => Self::InputTooLong {
                index,
                tokens,
                limit,
            },
            EmbedError::InvalidParameter { param, message } => {
                Self::InvalidParameter { param, message }
            }
            EmbedError::TooManyTokens { tokens, limit } => Self::TooManyTokens { tokens, limit },
            EmbedError::InvalidInput(msg) => Self::InvalidInput(msg),
            err @ EmbedError::InputFlagged { reason, .. } => Self::InputFlagged {
                code: reason.code(),
                message: err.to_string(),
            },
            EmbedError::WrongModelKind(msg) => Self::WrongModelKind(msg),
            EmbedError::Internal(detail) => Self::Internal(detail),
        }
    }
}

impl From<DeployError> for ApiError {
    fn from(err: DeployError) -> Self {
        match err {
            DeployError::NotReady => Self::NotReady,
            DeployError::ModelNotFound(model) => Self::ModelNotFound(model),
            DeployError::UnknownModel { model, known } => Self::UnknownModel { model, known },
            DeployError::Conflict(msg) => Self::Conflict(msg),
            DeployError::AgreementTooLow(msg) => Self::AgreementTooLow(msg),
            DeployError::LoadFailed(msg) => Self::LoadFailed(without_paths(&msg)),
            DeployError::Invalid(msg) => Self::InvalidInput(msg),
            DeployError::Storage(_) => Self::StorageUnavailable,
            DeployError::Internal(detail) => Self::Internal(detail),
        }
    }
}

impl From<JobsError> for ApiError {
    fn from(err: JobsError) -> Self {
        let message = err.to_string();
        match err {
            JobsError::Disabled => Self::BatchApiDisabled(message),
            JobsError::NotFound { .. } => Self::ResourceNotFound(message),
            JobsError::Invalid(msg) => Self::InvalidInput(msg),
            JobsError::TooLarge { limit } => Self::PayloadTooLarge {
                limit: limit as usize,
            },
            JobsError::Conflict(msg) => Self::Conflict(msg),
            // Nothing was acknowledged: the caller retries, as for an index write.
            JobsError::Storage(detail) => {
                tracing::error!(%detail, "a Batch API change was not made durable");
                Self::StorageUnavailable
            }
        }
    }
}

impl From<IndexError> for ApiError {
    fn from(err: IndexError) -> Self {
        match err {
            IndexError::UnknownIndex(which) => Self::UnknownIndex(which),
            IndexError::Ambiguous(msg) => Self::InvalidInput(msg),
            // The detail (path, OS error) is logged where the append failed.
            IndexError::StorageUnavailable => Self::StorageUnavailable,
            IndexError::Unsupported(msg) => Self::Conflict(msg),
            IndexError::Unreachable(detail) => Self::IndexUnavailable(detail),
            IndexError::Internal(detail) => Self::Internal(detail),
        }
    }
}

/// `message` with every absolute path cut to its file name: the caller learns which file, not
/// where the server keeps it.
fn without_paths(message: &str) -> String {
    let ends_path = |c: char| c.is_whitespace() || "\"'`)],;:".contains(c);
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(i) = rest.find('/') {
        let starts_token = rest[..i]
            .chars()
            .next_back()
            .is_none_or(|c| c.is_whitespace() || "\"'`([=".contains(c));
        if !starts_token {
            out.push_str(&rest[..=i]);
            rest = &rest[i + 1..];
            continue;
        }
        out.push_str(&rest[..i]);
        let path = &rest[i..];
        let end = path.find(ends_path).unwrap_or(path.len());
        let name = path[..end].rsplit('/').find(|part| !part.is_empty());
        out.push_str(name.unwrap_or("/"));
        rest = &path[end..];
    }
    out.push_str(rest);
    out
}

/// Replaces an error response's body with `shape(parts, status)`, keeping status and headers;
/// other responses pass through. Dialects use it as a `map_response` layer.
pub fn reshape(
    mut response: Response,
    shape: impl FnOnce(&ErrorParts, StatusCode) -> serde_json::Value,
) -> Response {
    let Some(parts) = response.extensions_mut().remove::<ErrorParts>() else {
        return response;
    };
    let body = shape(&parts, response.status());
    let (mut head, _) = response.into_parts();
    head.headers.remove(header::CONTENT_LENGTH);
    head.extensions.insert(parts);
    Response::from_parts(head, axum::body::Body::from(body.to_string()))
}

#[cfg(test)]
mod tests;
