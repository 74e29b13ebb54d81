//! Why an index lookup or write failed, in the index's own terms; `http` maps each to a status
//! and a stable code in one place.

#[derive(Debug, Clone, thiserror::Error)]
pub enum IndexError {
    /// No index by that name is loaded (the text names it, or says none is).
    #[error("unknown index {0}")]
    UnknownIndex(String),
    /// No name given while several indexes are loaded.
    #[error("{0}")]
    Ambiguous(String),
    /// The operation does not exist for this backend (e.g. compacting a PostgreSQL index).
    #[error("{0}")]
    Unsupported(String),
    /// A write the index's log could not make durable (disk full, I/O error); not applied.
    #[error("the write could not be stored durably, so it was not applied")]
    StorageUnavailable,
    /// The backing store cannot be reached now (PostgreSQL down, pool exhausted); retry later.
    #[error("{0}")]
    Unreachable(String),
    /// A fault inside the index (I/O, a failed query): logged, never sent.
    #[error("{0}")]
    Internal(String),
}

impl IndexError {
    pub fn internal(err: impl std::fmt::Display) -> Self {
        Self::Internal(err.to_string())
    }
}

impl From<anyhow::Error> for IndexError {
    fn from(err: anyhow::Error) -> Self {
        Self::Internal(format!("{err:#}"))
    }
}
