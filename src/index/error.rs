//! Why an index lookup or write failed. `http` maps each to a status and a stable code.

#[derive(Debug, Clone, thiserror::Error)]
pub enum IndexError {
    /// No index by that name is loaded (the text names it, or says none is).
    #[error("unknown index {0}")]
    UnknownIndex(String),
    /// No name given while several indexes are loaded.
    #[error("{0}")]
    Ambiguous(String),
    /// A write the index's log could not make durable (disk full, I/O error); not applied.
    #[error("the write could not be stored durably, so it was not applied")]
    StorageUnavailable,
}
