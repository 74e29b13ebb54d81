//! Replay on start: the audit log folded into the state to restore, applied without appending.

use super::{Faults, Lifecycle, LoadSpec};
use crate::{deploy::audit, serving::ModelRef};

impl Lifecycle {
    /// Restores the state the audit log describes: reloads its versions (refusing any whose
    /// weights no longer hash as recorded), then the promoted version, canary and shadow.
    pub async fn replay(&self) -> anyhow::Result<()> {
        let Some(log) = &self.audit else {
            return Ok(());
        };
        let states = audit::replay(&log.read()?);
        for (name, state) in states {
            self.restore(&name, &state).await;
        }
        Ok(())
    }

    async fn restore(&self, name: &str, state: &audit::ModelState) {
        self.restore_versions(name, state).await;
        let Some(deployment) = self.registry.deployment(name) else {
            return;
        };
        let actor = "replay";
        let promoted = state.promoted.as_deref();
        if let Some(v) = promoted.filter(|v| *v != deployment.table().promoted.info.version) {
            if let Err(err) = self.apply_promote(actor, &deployment, v) {
                tracing::error!(model = %name, version = %v, %err, "could not restore the promoted version");
            }
        }
        // The log's history, which names the boot version where it was replaced; what replaying
        // the promotion pushed is not history that was live.
        let history: Vec<String> = state
            .history
            .iter()
            .filter(|v| self.registry.version(name, v).is_some())
            .cloned()
            .collect();
        deployment.set_history(history);
        if let Some((v, weight)) = &state.canary {
            if let Err(err) = self.apply_canary(actor, &ModelRef::pinned(name, v), *weight) {
                tracing::error!(model = %name, version = %v, %err, "could not restore the canary");
            }
        }
        if let Some((v, rate)) = &state.shadow {
            if let Err(err) = self.apply_shadow(actor, &ModelRef::pinned(name, v), *rate) {
                tracing::error!(model = %name, version = %v, %err, "could not restore the shadow");
            }
        }
        let table = deployment.table();
        tracing::info!(model = %name, promoted = %table.promoted.info.version,
                       canary = ?table.canary.as_ref().map(|c| (&c.handle.info.version, c.weight)),
                       "lifecycle state restored from the audit log");
    }

    /// Loads every version the log has loaded and not unloaded, with its recorded source,
    /// faults and weights hash.
    async fn restore_versions(&self, name: &str, state: &audit::ModelState) {
        for (version, loaded) in &state.versions {
            if self.registry.version(name, version).is_some() {
                continue;
            }
            let faults: Faults = loaded
                .detail
                .get("faults")
                .and_then(|f| serde_json::from_value(f.clone()).ok())
                .unwrap_or_default();
            let spec = LoadSpec {
                model: ModelRef::pinned(name, version),
                source: loaded.detail["source"].as_str().map(str::to_string),
                faults,
            };
            if let Err(err) = self.load_version(&spec, loaded.sha256.as_deref()).await {
                tracing::error!(model = %name, %version, %err, "could not restore a version from the audit log");
            }
        }
    }
}
