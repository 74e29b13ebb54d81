//! The lifecycle operations: load, canary, shadow, promote, roll back, unload, and replay of the
//! audit log on start — one file per operation.
//!
//! Operations are serialised (one at a time) so that each reads and changes a consistent state;
//! none of them blocks serving: loading runs on a blocking thread while the current versions keep
//! answering, route changes swap one `Arc`, and an unloaded version is removed from routing first
//! and dropped only after the requests that hold it have finished. Every operation that changed
//! something appends one audit event after it took effect; replay applies the same changes
//! without appending. Each public operation is `X` (lock, apply, commit) over an `apply_X` that
//! replay reuses. An event the log cannot take (disk full) undoes its operation, which then
//! fails `storage_unavailable`: a route change is put back as it was, a loaded version dropped,
//! and an unload records its event before it removes anything.

mod canary;
mod load;
mod promote;
mod replay;
mod rollback;
mod shadow;
mod unload;

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex},
};

use serde::{Deserialize, Serialize};

use super::{
    audit::{AuditLog, Event},
    deployment::{self, Snapshot},
    status::EventOutcome,
    DeployError, Deployment, Policy, Registry,
};
use crate::{
    model::{DTypeRequest, DeviceRequest},
    serving::{HandleConfig, ModelHandle, ModelRef},
};

/// How new versions are loaded: the serve flags' device, precision and queue settings.
#[derive(Debug, Clone)]
pub struct LoadDefaults {
    pub device: DeviceRequest,
    pub dtype: DTypeRequest,
    pub handle: HandleConfig,
    pub manifest_dir: PathBuf,
}

/// A version to load: which, from where, with which injected faults.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// `name` or `name@version` (a multi-version manifest's default version when unpinned).
    pub model: ModelRef,
    /// Manifest (.toml), directory or hub id; default: the manifest of `model` (the one it was
    /// started from, else the one in `--manifest-dir` with that name).
    pub source: Option<String>,
    pub faults: Faults,
}

/// Fault injection for drills: makes one version fail or slow down on purpose.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// Panic in the model worker when a batch holds exactly this text.
    pub panic_on: Option<String>,
    /// Sleep this long before every forward batch.
    pub batch_delay_ms: Option<u64>,
}

impl Faults {
    fn is_empty(&self) -> bool {
        self.panic_on.is_none() && self.batch_delay_ms.is_none()
    }
}

/// The lifecycle controller the admin API drives.
pub struct Lifecycle {
    registry: Arc<Registry>,
    audit: Option<Arc<AuditLog>>,
    policy: Arc<Policy>,
    defaults: LoadDefaults,
    /// Model name → the manifest it was started from.
    sources: Mutex<HashMap<String, String>>,
    ops: tokio::sync::Mutex<()>,
}

fn required(version: Option<&str>) -> Result<String, DeployError> {
    version
        .map(str::to_string)
        .ok_or_else(|| DeployError::Invalid("`version` is required".into()))
}

impl Lifecycle {
    pub fn new(
        registry: Arc<Registry>,
        audit: Option<Arc<AuditLog>>,
        policy: Arc<Policy>,
        defaults: LoadDefaults,
    ) -> Self {
        Self {
            registry,
            audit,
            policy,
            defaults,
            sources: Mutex::default(),
            ops: tokio::sync::Mutex::new(()),
        }
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn audit_log(&self) -> Option<&AuditLog> {
        self.audit.as_deref()
    }

    /// Remembers where a model was loaded from, so later versions can be loaded by name.
    pub fn remember_source(&self, name: &str, source: &str) {
        if source.ends_with(".toml") {
            let mut sources = self.sources.lock().expect("sources");
            sources.insert(name.to_string(), source.to_string());
        }
    }

    fn deployment(&self, name: &str) -> Result<Arc<Deployment>, DeployError> {
        self.registry
            .deployment(name)
            .ok_or_else(|| DeployError::ModelNotFound(name.to_string()))
    }

    fn loaded(&self, name: &str, version: &str) -> Result<Arc<ModelHandle>, DeployError> {
        self.registry
            .version(name, version)
            .ok_or_else(|| DeployError::ModelNotFound(ModelRef::pinned(name, version).to_string()))
    }

    /// Makes `event` durable in the audit log (when there is one) and logs it. When it cannot be
    /// written, `undo` puts back what the operation changed and the operation fails
    /// [`DeployError::Storage`]: an action that is answered is one replay restores.
    fn commit(&self, event: Event, undo: impl FnOnce()) -> Result<Event, DeployError> {
        if let Err(detail) = deployment::append(self.audit.as_deref(), &event) {
            undo();
            tracing::warn!(action = ?event.action, model = %event.model,
                           "lifecycle action undone: its audit event could not be written");
            return Err(DeployError::Storage(detail));
        }
        tracing::info!(actor = %event.actor, action = ?event.action, model = %event.model,
                       version = ?event.version, "lifecycle event");
        Ok(event)
    }

    /// [`commit`](Self::commit) of a change to `deployment`'s routes, undone back to `before`.
    fn commit_routes(
        &self,
        deployment: &Deployment,
        before: Snapshot,
        event: Event,
    ) -> Result<EventOutcome, DeployError> {
        let event = self.commit(event, || deployment.restore(before))?;
        Ok(EventOutcome { event })
    }

    /// The last `limit` audit events.
    pub fn events(&self, limit: usize) -> Result<Vec<Event>, DeployError> {
        let Some(log) = &self.audit else {
            return Ok(Vec::new());
        };
        let mut events = log
            .read()
            .map_err(|e| DeployError::Internal(format!("reading audit log: {e:#}")))?;
        let skip = events.len().saturating_sub(limit);
        Ok(events.split_off(skip))
    }
}
