//! Why a Batch API call could not be done. `http` maps each to a status and a stable code;
//! nothing here knows HTTP.

#[derive(Debug, Clone, thiserror::Error)]
pub enum JobsError {
    /// The service runs without `--state-dir` (or `--batch-dir`): nowhere durable for jobs.
    #[error(
        "the Batch API is off: it keeps uploads, jobs and results on disk, so start inferd with \
         --state-dir DIR (INFERD_STATE_DIR), or --batch-dir DIR, to enable it"
    )]
    Disabled,
    /// No such file or batch (or it was deleted).
    #[error("no {kind} with id {id:?}")]
    NotFound { kind: &'static str, id: String },
    /// A request the Batch API refuses: wrong purpose, unknown endpoint, malformed JSONL, an
    /// empty file, too many requests, a bad completion window.
    #[error("{0}")]
    Invalid(String),
    /// An upload over `--batch-max-file-bytes`.
    #[error("the file is larger than the {limit} bytes allowed (--batch-max-file-bytes)")]
    TooLarge { limit: u64 },
    /// The action contradicts the object's state (cancelling a finished batch, deleting a file
    /// a running batch reads).
    #[error("{0}")]
    Conflict(String),
    /// The journal, a file or Redis could not be written or read; nothing was acknowledged.
    #[error("{0}")]
    Storage(String),
}

impl JobsError {
    pub fn storage(context: &str, err: impl std::fmt::Display) -> Self {
        Self::Storage(format!("{context}: {err}"))
    }
}
