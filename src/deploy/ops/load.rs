//! `load`: a version next to the ones serving, on a blocking thread.

use std::{sync::Arc, time::Duration};

use serde_json::json;

use super::{Lifecycle, LoadSpec};
use crate::{
    deploy::{
        audit::{Action, Event},
        status::LoadOutcome,
        DeployError,
    },
    model::{self, manifest::Manifest, LoadOptions},
    serving::{ModelHandle, ModelRef},
};

impl Lifecycle {
    /// Loads a version next to the ones serving; it stands by until given a role (or is
    /// promoted at once when it is the first version of its name).
    pub async fn load(&self, actor: &str, spec: LoadSpec) -> Result<LoadOutcome, DeployError> {
        let _op = self.ops.lock().await;
        let handle = self.load_version(&spec, None).await?;
        let info = handle.info.clone();
        let role = self.registry.role_of(&handle);
        // The role tells replay that the first version of a new name was promoted by its load.
        let mut detail = json!({"source": info.source, "role": role});
        if !spec.faults.is_empty() {
            detail["faults"] = json!(spec.faults);
        }
        let event = Event::new(actor, Action::Load, &info.name)
            .version(&info.version, &info.sha256)
            .detail(detail);
        // Not recorded, not kept: the version is dropped again (it serves nothing yet unless it
        // is its name's first, whose deployment goes with it).
        let event = self.commit(event, || self.drop_version(handle))?;
        Ok(LoadOutcome {
            loaded: info,
            role,
            event,
        })
    }

    /// Loads and registers one version; `expect_sha256` (from the audit log) refuses weights
    /// that changed since they were recorded.
    pub(super) async fn load_version(
        &self,
        spec: &LoadSpec,
        expect_sha256: Option<&str>,
    ) -> Result<Arc<ModelHandle>, DeployError> {
        let name = spec.model.name.clone();
        if let Some(v) = &spec.model.version {
            if self.registry.version(&name, v).is_some() {
                return Err(already_loaded(&spec.model.to_string()));
            }
        }
        let source = match &spec.source {
            Some(source) => source.clone(),
            None => self.source_for(&name)?,
        };
        let opts = LoadOptions {
            source: source.clone(),
            name: Some(name.clone()),
            version: spec.model.version.clone(),
            device: self.defaults.device,
            dtype: self.defaults.dtype,
        };
        let mut config = self.defaults.handle.clone();
        if !spec.faults.is_empty() {
            config.debug_panic_on = spec.faults.panic_on.clone();
            config.debug_delay = spec.faults.batch_delay_ms.map(Duration::from_millis);
        }
        let registry = Arc::clone(&self.registry);
        let expect = expect_sha256.map(str::to_string);
        let loaded = tokio::task::spawn_blocking(move || -> Result<_, DeployError> {
            let failed =
                |e: anyhow::Error| DeployError::LoadFailed(format!("loading {source:?}: {e:#}"));
            let model = model::load(&opts).map_err(failed)?;
            let info = &model.info;
            if registry.version(&info.name, &info.version).is_some() {
                let loaded = ModelRef::pinned(&info.name, &info.version);
                return Err(already_loaded(&loaded.to_string()));
            }
            if let Some(want) = expect.filter(|w| !w.eq_ignore_ascii_case(&info.sha256)) {
                return Err(DeployError::LoadFailed(format!(
                    "{}: weights hash to {}, but the audit log recorded {want}; refusing to \
                     serve different weights under the same version",
                    ModelRef::pinned(&info.name, &info.version),
                    info.sha256
                )));
            }
            ModelHandle::start(model, config).map_err(failed)
        })
        .await
        .map_err(|e| DeployError::Internal(format!("loader panicked: {e}")))??;
        tracing::info!(model = %loaded.info.name, version = %loaded.info.version,
                       load_seconds = loaded.info.load_seconds, "version loaded");
        self.remember_source(&name, &loaded.info.source);
        Ok(self.registry.insert(loaded))
    }

    /// Removes a version this operation loaded; its worker stops on a blocking thread.
    fn drop_version(&self, handle: Arc<ModelHandle>) {
        let removed = self
            .registry
            .withdraw(&handle.info.name, &handle.info.version);
        tokio::task::spawn_blocking(move || drop((removed, handle)));
    }

    /// The manifest to load `name` from when the request names no source.
    fn source_for(&self, name: &str) -> Result<String, DeployError> {
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
                DeployError::LoadFailed(format!(
                    "no `source` given and no manifest for {name:?} in {}",
                    dir.display()
                ))
            })
    }
}

fn already_loaded(model: &str) -> DeployError {
    DeployError::Conflict(format!("{model} is already loaded"))
}
