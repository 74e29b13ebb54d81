//! The one place errors become gRPC status codes, from the same domain errors the HTTP side maps
//! ([`EmbedError`], [`DeployError`]) and the call checks of [`call`](super::call).
//!
//! | domain error | code |
//! |---|---|
//! | invalid input, invalid parameter, input too long, too many tokens | `INVALID_ARGUMENT` |
//! | overloaded, rate limited (with `retry-after` metadata, seconds) | `RESOURCE_EXHAUSTED` |
//! | not ready, draining | `UNAVAILABLE` |
//! | deadline exceeded | `DEADLINE_EXCEEDED` |
//! | unknown model | `NOT_FOUND` |
//! | missing or wrong API key | `UNAUTHENTICATED` |
//! | the model is of another kind (rerank on an embedding model...) | `FAILED_PRECONDITION` |
//! | anything on the server's side | `INTERNAL`, generic message (the detail is logged) |
//!
//! Every client-fault message is the same text the HTTP API gives.

use std::time::Duration;

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
                | EmbedError::InvalidInput(_) => (Code::InvalidArgument, None),
                EmbedError::WrongModelKind(_) => (Code::FailedPrecondition, None),
                EmbedError::Internal(detail) => return internal(&detail),
            },
            CallError::Deploy(e) => match e {
                DeployError::NotReady => (Code::Unavailable, None),
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
    fn internal_errors_hide_their_detail() {
        let status = Status::from(CallError::from(EmbedError::Internal(
            "/secret/path failed".into(),
        )));
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), "internal error");
    }
}
