//! Why a routing decision or a lifecycle operation failed. `http` maps each to a status and a
//! stable code; nothing here knows HTTP.

#[derive(Debug, Clone, thiserror::Error)]
pub enum DeployError {
    /// No model is loaded yet (the default model is chosen by the first load).
    #[error("the model is not ready to serve yet")]
    NotReady,
    /// No loaded model or version by that `name` / `name@version`.
    #[error("unknown model {0:?}")]
    ModelNotFound(String),
    /// A request named a model nothing loaded answers to; `known` is every name that does.
    #[error("unknown model {model:?}; this server answers to {}", known.join(", "))]
    UnknownModel { model: String, known: Vec<String> },
    /// The request contradicts the current state (e.g. unloading the promoted version).
    #[error("{0}")]
    Conflict(String),
    /// `promote` refused: the candidate's agreement is below the threshold or unmeasured.
    #[error("{0}")]
    AgreementTooLow(String),
    /// Loading failed: missing files, a sha256 mismatch, a shape the manifest does not promise.
    #[error("{0}")]
    LoadFailed(String),
    /// A parameter out of range or missing.
    #[error("{0}")]
    Invalid(String),
    /// The operation's audit event could not be written (disk full, I/O error), so the operation
    /// was undone; the detail is logged.
    #[error("the lifecycle action could not be recorded in the audit log, so it was undone; retry later")]
    Storage(String),
    #[error("{0}")]
    Internal(String),
}
