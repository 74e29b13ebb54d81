//! Why a loaded version could not embed a request. `http` maps each to a status and a stable
//! code; nothing here knows HTTP.

use std::time::Duration;

use super::policy::FlagReason;

#[derive(Debug, Clone, thiserror::Error)]
pub enum EmbedError {
    /// The version's queue is full; the request was refused before any work.
    #[error("the request queue is full; retry after {}s", retry_after.as_secs().max(1))]
    Overloaded { retry_after: Duration },
    /// The request's deadline passed (the budget it was given).
    #[error("the request did not complete within its {0:?} deadline")]
    DeadlineExceeded(Duration),
    #[error("input {index} has {tokens} tokens, more than the model's limit of {limit}")]
    InputTooLong {
        index: usize,
        tokens: usize,
        limit: usize,
    },
    /// The request's inputs hold more tokens in all than one request may (`--max-client-tokens`).
    #[error("the request's inputs have {tokens} tokens in all, more than the {limit} one request may carry")]
    TooManyTokens { tokens: usize, limit: usize },
    /// A request parameter this version cannot honour: a `prompt_name` it does not define,
    /// `dimensions` outside 1 to its size.
    #[error("{message}")]
    InvalidParameter {
        param: &'static str,
        message: String,
    },
    /// The route needs another kind of model (embeddings from a reranker, `/predict` on an
    /// embedding model, ...).
    #[error("{0}")]
    WrongModelKind(String),
    /// An input the input policy (`--input-policy enforce`) refused, and why.
    #[error("input {index} was refused by the input policy ({}): {why}", reason.code())]
    InputFlagged {
        index: usize,
        reason: FlagReason,
        why: String,
    },
    /// A text the tokenizer refused.
    #[error("{0}")]
    InvalidInput(String),
    /// A fault on the server's side (worker gone, a failed forward pass).
    #[error("{0}")]
    Internal(String),
}

impl EmbedError {
    /// Whether the server, not the request, is at fault: these count against a canary.
    pub fn is_server_fault(&self) -> bool {
        matches!(
            self,
            Self::Overloaded { .. } | Self::DeadlineExceeded(_) | Self::Internal(_)
        )
    }
}
