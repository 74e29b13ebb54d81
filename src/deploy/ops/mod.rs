//! The lifecycle operations: load, canary, shadow, promote, roll back, unload, status, and replay
//! of the audit log on start.
//!
//! Operations are serialised (one at a time) so that each reads and changes a consistent state;
//! none of them blocks serving: loading runs on a blocking thread while the current versions keep
//! answering, route changes swap one `Arc`, and an unloaded version is removed from routing first
//! and dropped only after the requests that hold it have finished. Every operation that changed
//! something appends one audit event after it took effect; replay applies the same changes
//! without appending.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{
    agreement::Agreement,
    audit::{self, Action, AuditLog, Event},
    Canary, Deployment, Policy, Role, RouteTable, ShadowTarget,
};
use crate::{
    cli::{DTypeRequest, DeviceRequest},
    http::error::ApiError,
    model::{self, manifest::Manifest, LoadOptions},
    serving::handle::{HandleConfig, ModelHandle, Registry},
    telemetry::lifecycle as m,
};

/// How new versions are loaded: the serve flags' device, precision and queue settings.
#[derive(Debug, Clone)]
pub struct LoadDefaults {
    pub device: DeviceRequest,
    pub dtype: DTypeRequest,
    pub handle: HandleConfig,
    pub manifest_dir: PathBuf,
}

/// `POST /admin/load`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadRequest {
    /// `name` or `name@version`.
    pub model: String,
    pub version: Option<String>,
    /// Manifest (.toml), directory or hub id; default: the manifest of `model` (the one it was
    /// started from, else the one in `--manifest-dir` with that name).
    pub source: Option<String>,
    /// Fault injection for drills: makes this version fail or slow down on purpose.
    #[serde(default)]
    pub faults: Faults,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
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

pub struct Lifecycle {
    registry: Arc<Registry>,
    audit: Option<Arc<AuditLog>>,
    policy: Arc<Policy>,
    defaults: LoadDefaults,
    /// Model name → the manifest it was started from.
    sources: Mutex<HashMap<String, String>>,
    ops: tokio::sync::Mutex<()>,
}

/// `name@version` or `name` plus an explicit version.
fn target(model: &str, version: Option<&str>) -> (String, Option<String>) {
    match model.split_once('@') {
        Some((name, v)) => (name.to_string(), Some(version.unwrap_or(v).to_string())),
        None => (model.to_string(), version.map(str::to_string)),
    }
}

fn required(version: Option<String>) -> Result<String, ApiError> {
    version.ok_or_else(|| ApiError::InvalidInput("`version` is required".into()))
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

    /// Remembers where a model was loaded from, so later versions can be loaded by name.
    pub fn remember_source(&self, name: &str, source: &str) {
        if source.ends_with(".toml") {
            let mut sources = self.sources.lock().expect("sources");
            sources.insert(name.to_string(), source.to_string());
        }
    }

    fn deployment(&self, name: &str) -> Result<Arc<Deployment>, ApiError> {
        self.registry
            .deployment(name)
            .ok_or_else(|| ApiError::ModelNotFound(name.to_string()))
    }

    fn loaded(&self, name: &str, version: &str) -> Result<Arc<ModelHandle>, ApiError> {
        self.registry
            .version(name, version)
            .ok_or_else(|| ApiError::ModelNotFound(format!("{name}@{version}")))
    }

    fn record(&self, deployment: Option<&Deployment>, event: Event) -> Value {
        match deployment {
            Some(d) => d.audit(&event),
            None => {
                m::lifecycle_event(event.action);
                if let Some(log) = &self.audit {
                    if let Err(err) = log.append(&event) {
                        tracing::error!(%err, "could not append audit event");
                    }
                }
            }
        }
        tracing::info!(actor = %event.actor, action = ?event.action, model = %event.model,
                       version = ?event.version, "lifecycle event");
        serde_json::to_value(&event).unwrap_or(Value::Null)
    }

    /// The manifest to load `name` from when the request names no source.
    fn source_for(&self, name: &str) -> Result<String, ApiError> {
        if let Some(source) = self.sources.lock().expect("sources").get(name) {
            return Ok(source.clone());
        }
        let dir = &self.defaults.manifest_dir;
        let found = std::fs::read_dir(dir).ok().and_then(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "toml"))
                .find(|p| Manifest::read(p).is_ok_and(|m| m.name == name))
        });
        found
            .map(|p| p.to_string_lossy().into_owned())
            .ok_or_else(|| {
                ApiError::LoadFailed(format!(
                    "no `source` given and no manifest for {name:?} in {}",
                    dir.display()
                ))
            })
    }

    /// Loads a version next to the ones serving; it stands by until given a role (or is
    /// promoted at once when it is the first version of its name).
    pub async fn load(&self, actor: &str, req: LoadRequest) -> Result<Value, ApiError> {
        let _op = self.ops.lock().await;
        let handle = self.load_version(&req, None).await?;
        let info = &handle.info;
        let mut detail = json!({"source": info.source});
        if !req.faults.is_empty() {
            detail["faults"] = json!(req.faults);
        }
        let event = Event::new(actor, Action::Load, &info.name)
            .version(&info.version, &info.sha256)
            .detail(detail);
        let deployment = self.registry.deployment(&info.name);
        let role = self.registry.role_of(&handle);
        Ok(
            json!({"loaded": info, "role": role, "event": self.record(deployment.as_deref(), event)}),
        )
    }

    async fn load_version(
        &self,
        req: &LoadRequest,
        expect_sha256: Option<&str>,
    ) -> Result<Arc<ModelHandle>, ApiError> {
        let (name, version) = target(&req.model, req.version.as_deref());
        if let Some(v) = &version {
            if self.registry.version(&name, v).is_some() {
                return Err(ApiError::Conflict(format!("{name}@{v} is already loaded")));
            }
        }
        let source = match &req.source {
            Some(source) => source.clone(),
            None => self.source_for(&name)?,
        };
        let opts = LoadOptions {
            source: source.clone(),
            name: Some(name.clone()),
            version,
            device: self.defaults.device,
            dtype: self.defaults.dtype,
        };
        let mut config = self.defaults.handle.clone();
        if !req.faults.is_empty() {
            config.debug_panic_on = req.faults.panic_on.clone();
            config.debug_delay = req.faults.batch_delay_ms.map(Duration::from_millis);
        }
        let registry = Arc::clone(&self.registry);
        let expect = expect_sha256.map(str::to_string);
        let loaded = tokio::task::spawn_blocking(move || -> Result<_, ApiError> {
            let failed =
                |e: anyhow::Error| ApiError::LoadFailed(format!("loading {source:?}: {e:#}"));
            let model = model::load(&opts).map_err(failed)?;
            let info = &model.info;
            if registry.version(&info.name, &info.version).is_some() {
                return Err(ApiError::Conflict(format!(
                    "{}@{} is already loaded",
                    info.name, info.version
                )));
            }
            if let Some(want) = expect.filter(|w| !w.eq_ignore_ascii_case(&info.sha256)) {
                return Err(ApiError::LoadFailed(format!(
                    "{}@{}: weights hash to {}, but the audit log recorded {want}; refusing to \
                     serve different weights under the same version",
                    info.name, info.version, info.sha256
                )));
            }
            ModelHandle::start(model, config).map_err(failed)
        })
        .await
        .map_err(|e| ApiError::Internal(format!("loader panicked: {e}")))??;
        tracing::info!(model = %loaded.info.name, version = %loaded.info.version,
                       load_seconds = loaded.info.load_seconds, "version loaded");
        self.remember_source(&name, &loaded.info.source);
        Ok(self.registry.insert(loaded))
    }

    /// Sends `weight` (0..=1) of `model`'s traffic to `version`, sticky by route key.
    pub async fn set_canary(
        &self,
        actor: &str,
        model: &str,
        version: Option<&str>,
        weight: f64,
    ) -> Result<Value, ApiError> {
        let _op = self.ops.lock().await;
        let event = self.apply_canary(actor, model, version, weight)?;
        let deployment = self.deployment(&event.model)?;
        Ok(json!({"event": self.record(Some(&deployment), event)}))
    }

    fn apply_canary(
        &self,
        actor: &str,
        model: &str,
        version: Option<&str>,
        weight: f64,
    ) -> Result<Event, ApiError> {
        if !(0.0..=1.0).contains(&weight) {
            return Err(ApiError::InvalidInput(
                "`weight` must be between 0 and 1".into(),
            ));
        }
        let (name, version) = target(model, version);
        let deployment = self.deployment(&name)?;
        let current = deployment.table();
        let version = match (version, &current.canary) {
            (Some(v), _) => v,
            (None, Some(c)) => c.handle.info.version.clone(),
            (None, None) => required(None)?,
        };
        let handle = self.loaded(&name, &version)?;
        let (_, previous) = deployment.update(|t| {
            if t.promoted.info.version == version {
                return Err(ApiError::Conflict(format!(
                    "{name}@{version} is the promoted version; canary another one"
                )));
            }
            let previous = t.canary.as_ref().map(|c| c.handle.info.version.clone());
            let mut next = t.clone();
            next.canary = Some(Canary {
                handle: Arc::clone(&handle),
                weight,
            });
            Ok((next, previous))
        })?;
        if let Some(prev) = previous.as_deref().filter(|p| *p != version) {
            m::canary_weight(&name, prev, 0.0);
            m::role(&name, prev, deployment.table().role_of(prev));
        }
        if previous.as_deref() != Some(version.as_str()) {
            deployment.reset_canary_window();
        }
        Ok(Event::new(actor, Action::Canary, &name)
            .version(&version, &handle.info.sha256)
            .previous(previous.as_deref())
            .detail(json!({"weight": weight})))
    }

    /// Copies `sample_rate` (0..=1) of `model`'s live requests to `version` and measures agreement.
    pub async fn start_shadow(
        &self,
        actor: &str,
        model: &str,
        version: Option<&str>,
        sample_rate: f64,
    ) -> Result<Value, ApiError> {
        let _op = self.ops.lock().await;
        let event = self.apply_shadow(actor, model, version, sample_rate)?;
        let deployment = self.deployment(&event.model)?;
        Ok(json!({"event": self.record(Some(&deployment), event)}))
    }

    fn apply_shadow(
        &self,
        actor: &str,
        model: &str,
        version: Option<&str>,
        sample_rate: f64,
    ) -> Result<Event, ApiError> {
        if !(0.0..=1.0).contains(&sample_rate) || sample_rate == 0.0 {
            return Err(ApiError::InvalidInput(
                "`sample_rate` must be above 0 and at most 1".into(),
            ));
        }
        let (name, version) = target(model, version);
        let version = required(version)?;
        let deployment = self.deployment(&name)?;
        let handle = self.loaded(&name, &version)?;
        let (old, ()) = deployment.update(|t| {
            if t.promoted.info.version == version {
                return Err(ApiError::Conflict(format!(
                    "{name}@{version} is the promoted version; shadow another one"
                )));
            }
            let mut next = t.clone();
            next.shadow = Some(ShadowTarget {
                handle: Arc::clone(&handle),
                sample_rate,
            });
            Ok((next, ()))
        })?;
        if let Some(prev) = old.shadow.as_ref().map(|s| s.handle.info.version.clone()) {
            if prev != version {
                m::role(&name, &prev, deployment.table().role_of(&prev));
            }
        }
        deployment.shadow.start(&version);
        Ok(Event::new(actor, Action::ShadowStart, &name)
            .version(&version, &handle.info.sha256)
            .detail(json!({"sample_rate": sample_rate})))
    }

    pub async fn stop_shadow(&self, actor: &str, model: &str) -> Result<Value, ApiError> {
        let _op = self.ops.lock().await;
        let (name, _) = target(model, None);
        let deployment = self.deployment(&name)?;
        let event = self.apply_stop_shadow(actor, &deployment)?;
        Ok(json!({"event": self.record(Some(&deployment), event)}))
    }

    fn apply_stop_shadow(&self, actor: &str, deployment: &Deployment) -> Result<Event, ApiError> {
        let (old, ()) = deployment.update(|t| {
            let mut next = t.clone();
            next.shadow = None;
            Ok((next, ()))
        })?;
        deployment.shadow.stop();
        let Some(shadow) = &old.shadow else {
            return Err(ApiError::Conflict(format!(
                "{} has no shadow running",
                deployment.name
            )));
        };
        let version = &shadow.handle.info.version;
        m::role(
            &deployment.name,
            version,
            deployment.table().role_of(version),
        );
        Ok(Event::new(actor, Action::ShadowStop, &deployment.name)
            .version(version, &shadow.handle.info.sha256))
    }

    /// Makes `version` the one that answers `model`, atomically. Refused when the candidate's
    /// shadow agreement is below `--promote-min-agreement` or was never measured, unless `force`.
    pub async fn promote(
        &self,
        actor: &str,
        model: &str,
        version: Option<&str>,
        force: bool,
    ) -> Result<Value, ApiError> {
        let _op = self.ops.lock().await;
        let (name, version) = target(model, version);
        let version = required(version)?;
        let deployment = self.deployment(&name)?;
        let agreement = deployment.shadow.agreement(&version);
        if !force {
            self.check_agreement(&name, &version, agreement.as_ref())?;
        }
        let event = self
            .apply_promote(actor, &deployment, &version)?
            .detail(json!({"force": force, "agreement": agreement}));
        Ok(json!({"event": self.record(Some(&deployment), event)}))
    }

    fn check_agreement(
        &self,
        name: &str,
        version: &str,
        agreement: Option<&Agreement>,
    ) -> Result<(), ApiError> {
        let (min_samples, threshold) = (
            self.policy.shadow_min_samples,
            self.policy.promote_min_agreement,
        );
        let refuse = |why: String| {
            Err(ApiError::AgreementTooLow(format!(
                "refusing to promote {name}@{version}: {why}; shadow it longer, or send \
                 `\"force\": true` to promote anyway"
            )))
        };
        match agreement {
            None => refuse("its agreement with the promoted version was never measured".into()),
            Some(a) if a.samples < min_samples => refuse(format!(
                "only {} of the {min_samples} shadowed texts needed",
                a.samples
            )),
            Some(a) => match a.rank_correlation {
                Some(r) if r >= threshold => Ok(()),
                Some(r) => refuse(format!(
                    "similarity-structure agreement (rank correlation) {r:.3} is below {threshold}"
                )),
                None => refuse("the rank correlation is undefined for its window".into()),
            },
        }
    }

    fn apply_promote(
        &self,
        actor: &str,
        deployment: &Deployment,
        version: &str,
    ) -> Result<Event, ApiError> {
        let name = &deployment.name;
        let handle = self.loaded(name, version)?;
        let (old, ()) = deployment.update(|t| {
            if t.promoted.info.version == version {
                return Err(ApiError::Conflict(format!(
                    "{name}@{version} is already promoted"
                )));
            }
            Ok((promoted_table(t, &handle), ()))
        })?;
        let previous = old.promoted.info.version.clone();
        if old
            .shadow
            .as_ref()
            .is_some_and(|s| s.handle.info.version == version)
        {
            deployment.shadow.stop();
        }
        let mut history = deployment.history();
        history.retain(|v| v != version);
        history.push(previous.clone());
        deployment.set_history(history);
        deployment.reset_canary_window();
        m::role(name, &previous, deployment.table().role_of(&previous));
        m::canary_weight(name, version, 0.0);
        Ok(Event::new(actor, Action::Promote, name)
            .version(version, &handle.info.sha256)
            .previous(Some(&previous)))
    }

    /// Returns `model` to the version promoted before the current one and ends any canary.
    pub async fn rollback(&self, actor: &str, model: &str) -> Result<Value, ApiError> {
        let _op = self.ops.lock().await;
        let (name, _) = target(model, None);
        let deployment = self.deployment(&name)?;
        let mut history = deployment.history();
        let target = loop {
            match history.pop() {
                Some(v) => {
                    if let Some(handle) = self.registry.version(&name, &v) {
                        break handle;
                    }
                }
                None => {
                    return Err(ApiError::Conflict(format!(
                        "{name} has no earlier promoted version still loaded to roll back to"
                    )))
                }
            }
        };
        let (old, ()) = deployment.update(|t| {
            let mut next = t.clone();
            next.promoted = Arc::clone(&target);
            next.canary = None;
            if next
                .shadow
                .as_ref()
                .is_some_and(|s| s.handle.info.version == target.info.version)
            {
                next.shadow = None;
            }
            Ok((next, ()))
        })?;
        deployment.set_history(history);
        deployment.reset_canary_window();
        let from = old.promoted.info.version.clone();
        m::role(&name, &from, Role::Standby);
        if let Some(c) = &old.canary {
            m::canary_weight(&name, &c.handle.info.version, 0.0);
            m::role(
                &name,
                &c.handle.info.version,
                deployment.table().role_of(&c.handle.info.version),
            );
        }
        let event = Event::new(actor, Action::Rollback, &name)
            .version(&target.info.version, &target.info.sha256)
            .previous(Some(&from));
        Ok(json!({"event": self.record(Some(&deployment), event)}))
    }

    /// Takes a version out of routing, waits for its queue to drain, then drops it.
    pub async fn unload(
        &self,
        actor: &str,
        model: &str,
        version: Option<&str>,
    ) -> Result<Value, ApiError> {
        let op = self.ops.lock().await;
        let (name, version) = target(model, version);
        let version = required(version)?;
        let deployment = self.deployment(&name)?;
        let handle = self.loaded(&name, &version)?;
        deployment.update(|t| {
            if t.promoted.info.version == version {
                return Err(ApiError::Conflict(format!(
                    "{name}@{version} is the promoted version; promote or roll back to another \
                     one first"
                )));
            }
            let mut next = t.clone();
            next.canary = next.canary.filter(|c| c.handle.info.version != version);
            next.shadow = next.shadow.filter(|s| s.handle.info.version != version);
            Ok((next, ()))
        })?;
        if deployment.table().shadow.is_none() {
            deployment.shadow.stop();
        }
        deployment.shadow.forget(&version);
        let mut history = deployment.history();
        history.retain(|v| v != &version);
        deployment.set_history(history);
        self.registry.remove(&name, &version);
        m::unloaded(&name, &version);
        let event = Event::new(actor, Action::Unload, &name).version(&version, &handle.info.sha256);
        let event = self.record(Some(&deployment), event);
        drop(op);
        // Requests that already hold the version finish on it; its worker stops once the last
        // holder is gone and the queue is empty.
        let started = Instant::now();
        let grace = self.policy.request_timeout + Duration::from_secs(5);
        while Arc::strong_count(&handle) > 1 && started.elapsed() < grace {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let drained = Arc::strong_count(&handle) == 1;
        tokio::task::spawn_blocking(move || drop(handle));
        Ok(json!({"event": event, "drained": drained,
                  "drain_ms": started.elapsed().as_millis() as u64}))
    }

    /// Every deployment: roles, weights, canary health, shadow agreement, lineage.
    pub fn status(&self) -> Value {
        let models: Vec<Value> = self
            .registry
            .deployments()
            .iter()
            .map(|d| self.deployment_status(d))
            .collect();
        json!({
            "default_model": self.registry.default_name(),
            "audit_log": self.audit.as_ref().map(|a| a.path().display().to_string()),
            "policy": {
                "canary_max_error_ratio": self.policy.canary.max_error_ratio,
                "canary_max_p99_ms": self.policy.canary.max_p99.as_millis() as u64,
                "canary_min_requests": self.policy.canary.min_requests,
                "canary_window_s": self.policy.canary.window.as_secs_f64(),
                "shadow_window": self.policy.shadow_window,
                "shadow_min_samples": self.policy.shadow_min_samples,
                "promote_min_agreement": self.policy.promote_min_agreement,
            },
            "models": models,
        })
    }

    fn deployment_status(&self, d: &Deployment) -> Value {
        let table = d.table();
        let versions: Vec<Value> = self
            .registry
            .versions_of(&d.name)
            .iter()
            .map(|h| {
                let info = &h.info;
                json!({
                    "version": info.version,
                    "role": table.role_of(&info.version),
                    "sha256": info.sha256,
                    "source": info.source,
                    "lineage": info.lineage,
                    "dimensions": info.dimensions,
                    "queue_depth": h.queue_depth(),
                    "agreement": d.shadow.agreement(&info.version),
                })
            })
            .collect();
        let canary = table.canary.as_ref().map(|c| {
            let v = &c.handle.info.version;
            json!({"version": v, "weight": c.weight, "health": d.canary_health(v)})
        });
        let shadow = table.shadow.as_ref().map(|s| {
            let v = &s.handle.info.version;
            json!({"version": v, "sample_rate": s.sample_rate, "agreement": d.shadow.agreement(v)})
        });
        json!({
            "model": d.name,
            "promoted": table.promoted.info.version,
            "canary": canary,
            "shadow": shadow,
            "history": d.history(),
            "versions": versions,
        })
    }

    /// The last `limit` audit events.
    pub fn events(&self, limit: usize) -> Result<Vec<Event>, ApiError> {
        let Some(log) = &self.audit else {
            return Ok(Vec::new());
        };
        let mut events = log
            .read()
            .map_err(|e| ApiError::Internal(format!("reading audit log: {e:#}")))?;
        let skip = events.len().saturating_sub(limit);
        Ok(events.split_off(skip))
    }

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
        for (version, loaded) in &state.versions {
            if self.registry.version(name, version).is_some() {
                continue;
            }
            let faults = loaded
                .detail
                .get("faults")
                .and_then(|f| serde_json::from_value(f.clone()).ok())
                .unwrap_or_default();
            let req = LoadRequest {
                model: name.to_string(),
                version: Some(version.clone()),
                source: loaded.detail["source"].as_str().map(str::to_string),
                faults,
            };
            if let Err(err) = self.load_version(&req, loaded.sha256.as_deref()).await {
                tracing::error!(model = %name, %version, %err, "could not restore a version from the audit log");
            }
        }
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
        // The log's history first (older), then what replaying the promotion added (the boot
        // version, which the log never records as promoted).
        let mut history: Vec<String> = state
            .history
            .iter()
            .filter(|v| self.registry.version(name, v).is_some())
            .cloned()
            .collect();
        for v in deployment.history() {
            if !history.contains(&v) && state.promoted.as_deref() != Some(v.as_str()) {
                history.push(v);
            }
        }
        deployment.set_history(history);
        if let Some((v, weight)) = &state.canary {
            if let Err(err) = self.apply_canary(actor, name, Some(v), *weight) {
                tracing::error!(model = %name, version = %v, %err, "could not restore the canary");
            }
        }
        if let Some((v, rate)) = &state.shadow {
            if let Err(err) = self.apply_shadow(actor, name, Some(v), *rate) {
                tracing::error!(model = %name, version = %v, %err, "could not restore the shadow");
            }
        }
        let table = deployment.table();
        tracing::info!(model = %name, promoted = %table.promoted.info.version,
                       canary = ?table.canary.as_ref().map(|c| (&c.handle.info.version, c.weight)),
                       "lifecycle state restored from the audit log");
    }
}

/// `t` with `handle` promoted: a canary or shadow of that version ends.
fn promoted_table(t: &RouteTable, handle: &Arc<ModelHandle>) -> RouteTable {
    let version = &handle.info.version;
    RouteTable {
        promoted: Arc::clone(handle),
        canary: t
            .canary
            .clone()
            .filter(|c| &c.handle.info.version != version),
        shadow: t
            .shadow
            .clone()
            .filter(|s| &s.handle.info.version != version),
    }
}

/// The admin token file written for loopback use when `--admin-token-file` is not given.
pub fn generated_token_path(state_dir: &Path) -> PathBuf {
    state_dir.join("admin.token")
}
