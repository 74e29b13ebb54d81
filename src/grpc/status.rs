//! The one place errors become gRPC status codes, from the same domain errors the HTTP side maps
//! ([`EmbedError`], [`DeployError`]) and the call checks of [`call`](super::call).
//!
//! | domain error | code |
//! |---|---|
//! | invalid input, invalid parameter, input too long, too many tokens, refused by the input policy | `INVALID_ARGUMENT` |
//! | overloaded, rate limited (with `retry-after` metadata, seconds) | `RESOURCE_EXHAUSTED` |
//! | not ready, draining | `UNAVAILABLE` |
//! | deadline exceeded | `DEADLINE_EXCEEDED` |
//! | unknown model | `NOT_FOUND` |
//! | missing or wrong API key | `UNAUTHENTICATED` |
//! | the model is of another kind (rerank on an embedding model...) | `FAILED_PRECONDITION` |
//! | anything on the server's side | `INTERNAL`, generic message (the detail is logged) |
//! | a message that does not parse ([`codec`](super::codec)) | `INVALID_ARGUMENT` |
//! | a message over `--max-body-bytes`, or an answer that would be | `RESOURCE_EXHAUSTED` |
//!
//! Every client-fault message is the same text the HTTP API gives. tonic refuses a message over
//! its size limit with `OUT_OF_RANGE`; the gRPC status-code guide (and grpc-go, grpc-java) say
//! `RESOURCE_EXHAUSTED`, so [`over_limit`] and [`over_limit_answer`] turn tonic's code into that,
//! on a stream's inbound messages and on a unary call's answer. inferd itself never answers
//! `OUT_OF_RANGE`, so every such code is tonic's size check.

use std::time::Duration;

use http::HeaderValue;
use tonic::{metadata::MetadataValue, Code, Status};

use crate::{deploy::DeployError, serving::EmbedError};

/// Why a gRPC call failed, before it becomes a [`Status`].
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error(transparent)]
    Deploy(#[from] DeployError),
    #[error("{0}")]
    InvalidInput(String),
    #[error("{0}")]
    Unauthenticated(&'static str),
    #[error("rate limit exceeded; retry after {}s", .0.as_secs().max(1))]
    RateLimited(Duration),
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error("{0}")]
    Unimplemented(String),
    /// An answer over the message-size limit.
    #[error("{0}")]
    TooLarge(String),
}

impl From<CallError> for Status {
    fn from(err: CallError) -> Self {
        let message = err.to_string();
        let (code, retry_after) = match err {
            CallError::Embed(e) => match e {
                EmbedError::Overloaded { retry_after } => {
                    (Code::ResourceExhausted, Some(retry_after))
                }
                EmbedError::DeadlineExceeded(_) => (Code::DeadlineExceeded, None),
                EmbedError::InputTooLong { .. }
                | EmbedError::TooManyTokens { .. }
                | EmbedError::InvalidParameter { .. }
                | EmbedError::InputFlagged { .. }
                | EmbedError::InvalidInput(_) => (Code::InvalidArgument, None),
                EmbedError::WrongModelKind(_) => (Code::FailedPrecondition, None),
                EmbedError::Internal(detail) => return internal(&detail),
            },
            CallError::Deploy(e) => match e {
                DeployError::NotReady | DeployError::Storage(_) => (Code::Unavailable, None),
                DeployError::ModelNotFound(_) | DeployError::UnknownModel { .. } => {
                    (Code::NotFound, None)
                }
                DeployError::Invalid(_) => (Code::InvalidArgument, None),
                DeployError::Conflict(_) | DeployError::AgreementTooLow(_) => {
                    (Code::FailedPrecondition, None)
                }
                DeployError::LoadFailed(detail) | DeployError::Internal(detail) => {
                    return internal(&detail)
                }
            },
            CallError::InvalidInput(_) => (Code::InvalidArgument, None),
            CallError::Unauthenticated(_) => (Code::Unauthenticated, None),
            CallError::RateLimited(retry_after) => (Code::ResourceExhausted, Some(retry_after)),
            CallError::ShuttingDown => (Code::Unavailable, None),
            CallError::Unimplemented(_) => (Code::Unimplemented, None),
            CallError::TooLarge(_) => (Code::ResourceExhausted, None),
        };
        let mut status = Status::new(code, message);
        if let Some(retry_after) = retry_after {
            let secs = retry_after.as_secs().max(1).to_string();
            if let Ok(value) = MetadataValue::try_from(secs.as_str()) {
                status.metadata_mut().insert("retry-after", value);
            }
        }
        status
    }
}

/// tonic's refusal of a stream message over the size limit, as `RESOURCE_EXHAUSTED`.
pub fn over_limit(status: Status) -> Status {
    if status.code() == Code::OutOfRange {
        Status::resource_exhausted(status.message())
    } else {
        status
    }
}

/// The same for the trailers-only answer tonic writes when a unary call's message is over the
/// limit (its status is in the headers): a response map for every service.
pub fn over_limit_answer<B>(mut response: http::Response<B>) -> http::Response<B> {
    let headers = response.headers_mut();
    let refused = headers
        .get("grpc-status")
        .is_some_and(|code| Code::from_bytes(code.as_bytes()) == Code::OutOfRange);
    if refused {
        headers.insert(
            "grpc-status",
            HeaderValue::from(Code::ResourceExhausted as i32),
        );
    }
    response
}

/// A server fault: logged in full, answered with a generic message.
fn internal(detail: &str) -> Status {
    tracing::error!(detail, "gRPC call failed on the server");
    Status::internal("internal error")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(err: impl Into<CallError>) -> Code {
        Status::from(err.into()).code()
    }

    #[test]
    fn each_error_has_its_code() {
        let overloaded = EmbedError::Overloaded {
            retry_after: Duration::from_secs(2),
        };
        let status = Status::from(CallError::from(overloaded));
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(status.metadata().get("retry-after").unwrap(), "2");
        assert_eq!(
            code(EmbedError::InvalidInput("x".into())),
            Code::InvalidArgument
        );
        assert_eq!(
            code(EmbedError::DeadlineExceeded(Duration::from_secs(1))),
            Code::DeadlineExceeded
        );
        assert_eq!(
            code(EmbedError::WrongModelKind("x".into())),
            Code::FailedPrecondition
        );
        assert_eq!(code(DeployError::NotReady), Code::Unavailable);
        assert_eq!(code(DeployError::ModelNotFound("m".into())), Code::NotFound);
        assert_eq!(code(CallError::Unauthenticated("k")), Code::Unauthenticated);
        assert_eq!(code(CallError::ShuttingDown), Code::Unavailable);
        assert_eq!(
            code(CallError::RateLimited(Duration::from_secs(1))),
            Code::ResourceExhausted
        );
    }

    #[test]
    fn size_refusals_become_resource_exhausted() {
        let tonic_says = Status::out_of_range("Error, decoded message length too large");
        let status = over_limit(tonic_says.clone());
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(status.message(), tonic_says.message());
        assert_eq!(over_limit(Status::internal("x")).code(), Code::Internal);

        let answer = over_limit_answer(tonic_says.into_http::<()>());
        assert_eq!(answer.headers()["grpc-status"], "8");
        let other = over_limit_answer(Status::invalid_argument("x").into_http::<()>());
        assert_eq!(other.headers()["grpc-status"], "3");
    }

    #[test]
    fn internal_errors_hide_their_detail() {
        let status = Status::from(CallError::from(EmbedError::Internal(
            "/secret/path failed".into(),
        )));
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), "internal error");
    }
}
