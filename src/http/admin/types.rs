//! The admin API's request bodies, and the audit event as the API documents it.

use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::{
    deploy::{Faults, LoadSpec},
    http::error::ApiError,
    serving::ModelRef,
};

/// Longest model name or version label `POST /admin/load` accepts.
pub const MAX_LABEL_CHARS: usize = 128;

/// A model name or version label: 1 to [`MAX_LABEL_CHARS`] ASCII letters, digits and
/// `. _ - + / :`. Labels end up in headers, metrics and the audit log, so nothing else (no
/// spaces, no control characters) is let in.
pub fn check_label(what: &str, label: &str) -> Result<(), ApiError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._-+/:".contains(c);
    if (1..=MAX_LABEL_CHARS).contains(&label.len()) && label.chars().all(allowed) {
        return Ok(());
    }
    Err(ApiError::InvalidInput(format!(
        "{what} {label:?} must be 1 to {MAX_LABEL_CHARS} ASCII letters, digits and . _ - + / :"
    )))
}

/// `POST /admin/load`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoadRequest {
    /// `name` or `name@version`.
    pub model: String,
    /// The version, when `model` does not say it (wins over `@version`).
    pub version: Option<String>,
    /// Manifest (.toml), directory or hub id; default: the manifest of `model` (the one it was
    /// started from, else the one in `--manifest-dir` with that name).
    pub source: Option<String>,
    /// Fault injection for drills: makes this version fail or slow down on purpose.
    #[serde(default)]
    pub faults: Faults,
}

impl LoadRequest {
    /// The load to run, once the name and version are valid labels ([`check_label`]).
    pub fn spec(self) -> Result<LoadSpec, ApiError> {
        let model = ModelRef::parse(&self.model).or_version(self.version.as_deref());
        check_label("model name", &model.name)?;
        if let Some(version) = &model.version {
            check_label("version", version)?;
        }
        Ok(LoadSpec {
            model,
            source: self.source,
            faults: self.faults,
        })
    }
}

/// `POST /admin/canary`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CanaryRequest {
    /// `name` or `name@version` (without a version: the current canary's).
    pub model: String,
    pub version: Option<String>,
    /// Share of `name`'s requests, 0 to 1.
    pub weight: f64,
}

/// `POST /admin/shadow`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShadowRequest {
    /// `name@version`, or `name` with `version`.
    pub model: String,
    pub version: Option<String>,
    /// Share of live requests copied, above 0 and at most 1 (default 1).
    #[serde(default = "full")]
    pub sample_rate: f64,
}

fn full() -> f64 {
    1.0
}

/// `POST /admin/shadow/stop`, `/admin/promote`, `/admin/rollback`, `/admin/unload`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelRequest {
    /// `name` (stop, rollback) or `name@version` (promote, unload).
    pub model: String,
    pub version: Option<String>,
    /// `promote` only: skip the agreement gate.
    #[serde(default)]
    pub force: bool,
}

impl ModelRequest {
    pub fn target(&self) -> ModelRef {
        ModelRef::parse(&self.model).or_version(self.version.as_deref())
    }
}

/// `GET /admin/events`: query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// The last this many events (default 100).
    pub limit: Option<usize>,
}

/// One line of the audit log (`<state-dir>/lifecycle.jsonl`), as the events route returns it.
#[derive(ToSchema)]
#[allow(dead_code)] // documentation only: the route serialises the log's own event type
pub struct AuditEvent {
    /// RFC 3339, UTC.
    pub ts: String,
    /// Admin token name, `inferd` for automatic actions, `replay` on start.
    pub actor: String,
    /// `load`, `unload`, `canary`, `shadow_start`, `shadow_stop`, `promote`, `rollback` or
    /// `auto_rollback`.
    pub action: String,
    pub model: String,
    pub version: Option<String>,
    /// sha256 of the version's `model.safetensors`.
    pub sha256: Option<String>,
    /// The version promoted (or canaried) before this action.
    pub previous: Option<String>,
    /// Action-specific detail (source, faults, weight, sample_rate, force, agreement, breach).
    #[schema(value_type = Object)]
    pub detail: Value,
}
