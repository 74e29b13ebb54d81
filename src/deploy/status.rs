//! Typed answers of the lifecycle operations and of `GET /admin/status`.
//!
//! `event` fields are the audit event exactly as appended to the log (see [`super::audit`]).

use serde::Serialize;
use utoipa::ToSchema;

use super::{
    agreement::Agreement, audit::Event, rollback::CanaryHealth, Deployment, Lifecycle, Role,
};
use crate::{
    model::{manifest::Lineage, ModelInfo},
    serving::ModelHandle,
};

/// `POST /admin/load`.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoadOutcome {
    pub loaded: ModelInfo,
    /// `standby`, or `promoted` for the first version of a name.
    pub role: Role,
    #[schema(value_type = Object)]
    pub event: Event,
}

/// Canary, shadow, promote and rollback: the event they appended.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventOutcome {
    #[schema(value_type = Object)]
    pub event: Event,
}

/// `POST /admin/unload`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UnloadOutcome {
    #[schema(value_type = Object)]
    pub event: Event,
    /// Whether every request holding the version finished within the grace period.
    pub drained: bool,
    pub drain_ms: u64,
}

/// `GET /admin/status`: every deployment and the policy they follow.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusView {
    pub default_model: Option<String>,
    /// Path of the audit log; null without `--state-dir`.
    pub audit_log: Option<String>,
    pub policy: PolicyView,
    pub models: Vec<DeploymentView>,
}

/// The `--canary-*`, `--shadow-*` and `--promote-*` flags in effect.
#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyView {
    pub canary_max_error_ratio: f64,
    pub canary_max_p99_ms: u64,
    pub canary_min_requests: usize,
    pub canary_window_s: f64,
    pub shadow_window: usize,
    pub shadow_min_samples: usize,
    pub promote_min_agreement: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeploymentView {
    pub model: String,
    pub promoted: String,
    pub canary: Option<CanaryView>,
    pub shadow: Option<ShadowView>,
    /// Versions promoted before the current one, oldest first (rollback targets).
    pub history: Vec<String>,
    pub versions: Vec<VersionView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CanaryView {
    pub version: String,
    pub weight: f64,
    pub health: CanaryHealth,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ShadowView {
    pub version: String,
    pub sample_rate: f64,
    pub agreement: Option<Agreement>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VersionView {
    pub version: String,
    pub role: Role,
    pub sha256: String,
    pub source: String,
    pub lineage: Option<Lineage>,
    pub dimensions: usize,
    pub queue_depth: usize,
    /// Agreement with the promoted version, once shadowed.
    pub agreement: Option<Agreement>,
}

impl Lifecycle {
    /// Every deployment: roles, weights, canary health, shadow agreement, lineage.
    pub fn status(&self) -> StatusView {
        let policy = self.policy();
        StatusView {
            default_model: self.registry().default_name(),
            audit_log: self.audit_log().map(|a| a.path().display().to_string()),
            policy: PolicyView {
                canary_max_error_ratio: policy.canary.max_error_ratio,
                canary_max_p99_ms: policy.canary.max_p99.as_millis() as u64,
                canary_min_requests: policy.canary.min_requests,
                canary_window_s: policy.canary.window.as_secs_f64(),
                shadow_window: policy.shadow_window,
                shadow_min_samples: policy.shadow_min_samples,
                promote_min_agreement: policy.promote_min_agreement,
            },
            models: self
                .registry()
                .deployments()
                .iter()
                .map(|d| self.deployment_view(d))
                .collect(),
        }
    }

    fn deployment_view(&self, d: &Deployment) -> DeploymentView {
        let table = d.table();
        let version_view = |h: &ModelHandle| {
            let info = &h.info;
            VersionView {
                version: info.version.clone(),
                role: table.role_of(&info.version),
                sha256: info.sha256.clone(),
                source: info.source.clone(),
                lineage: info.lineage.clone(),
                dimensions: info.dimensions,
                queue_depth: h.queue_depth(),
                agreement: d.shadow.agreement(&info.version),
            }
        };
        let versions = self.registry().versions_of(&d.name);
        DeploymentView {
            model: d.name.clone(),
            promoted: table.promoted.info.version.clone(),
            canary: table.canary.as_ref().map(|c| {
                let version = c.handle.info.version.clone();
                CanaryView {
                    weight: c.weight,
                    health: d.canary_health(&version),
                    version,
                }
            }),
            shadow: table.shadow.as_ref().map(|s| {
                let version = s.handle.info.version.clone();
                ShadowView {
                    sample_rate: s.sample_rate,
                    agreement: d.shadow.agreement(&version),
                    version,
                }
            }),
            history: d.history(),
            versions: versions.iter().map(|h| version_view(h)).collect(),
        }
    }
}
