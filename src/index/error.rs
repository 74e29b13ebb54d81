//! Why an index lookup failed. `http` maps each to a status and a stable code.

#[derive(Debug, Clone, thiserror::Error)]
pub enum IndexError {
    /// No index by that name is loaded (the text names it, or says none is).
    #[error("unknown index {0}")]
    UnknownIndex(String),
    /// No name given while several indexes are loaded.
    #[error("{0}")]
    Ambiguous(String),
}
