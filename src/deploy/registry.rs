//! The registry: every loaded version by `name@version`, and per name the [`Deployment`] that
//! routes `name` (promoted version, canary, shadow).
//!
//! Callers ask [`Registry::route`] where a request goes — by `name` or `name@version` (or the
//! default model) and a caller route key — and call [`Routed::embed`]; nothing on the request
//! path knows how many versions are loaded. [`Registry::get`] is the canary-blind lookup for
//! metadata (what `name` means now); it never carries traffic.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, RwLock},
};

use super::{audit::AuditLog, DeployError, Deployment, Policy, Role, Routed, Target};
use crate::serving::{ModelHandle, ModelRef};

pub struct Registry {
    versions: RwLock<HashMap<ModelRef, Arc<ModelHandle>>>,
    deployments: RwLock<BTreeMap<String, Arc<Deployment>>>,
    default: RwLock<Option<String>>,
    policy: Arc<Policy>,
    audit: Option<Arc<AuditLog>>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new(Arc::new(Policy::default()), None)
    }
}

impl Registry {
    /// A registry whose deployments follow `policy` and audit automatic actions to `audit`.
    pub fn new(policy: Arc<Policy>, audit: Option<Arc<AuditLog>>) -> Self {
        Self {
            versions: RwLock::default(),
            deployments: RwLock::default(),
            default: RwLock::default(),
            policy,
            audit,
        }
    }

    /// Adds a version. The first version of a name is promoted (later ones stand by until the
    /// lifecycle gives them a role); the first name added becomes the default model.
    pub fn insert(&self, handle: ModelHandle) -> Arc<ModelHandle> {
        let handle = Arc::new(handle);
        let name = handle.info.name.clone();
        let mut versions = self.versions.write().expect("registry lock");
        versions.insert(handle.model_ref(), Arc::clone(&handle));
        drop(versions);
        self.deployments
            .write()
            .expect("registry lock")
            .entry(name.clone())
            .or_insert_with(|| {
                Arc::new(Deployment::new(
                    Arc::clone(&handle),
                    Arc::clone(&self.policy),
                    self.audit.clone(),
                ))
            });
        self.default
            .write()
            .expect("registry lock")
            .get_or_insert(name);
        handle
    }

    /// Looks a model up by `name` (its promoted version), `name@version`, or the default model's
    /// promoted version when `None`. Ignores canaries: for metadata, never for traffic.
    pub fn get(&self, model: Option<&ModelRef>) -> Result<Arc<ModelHandle>, DeployError> {
        let target = Target {
            model: model.cloned(),
            route_key: None,
        };
        Ok(self.resolve(&target, false)?.handle)
    }

    /// Chooses the version for one request: `name@version` pins it; `name` (or no model, the
    /// default) goes to the promoted version or, for a weighted share sticky by the route key,
    /// to the canary. Call [`Routed::embed`] on the result so canary health and shadow copies
    /// are recorded.
    pub fn route(&self, target: &Target) -> Result<Routed, DeployError> {
        self.resolve(target, true)
    }

    fn resolve(&self, target: &Target, canary: bool) -> Result<Routed, DeployError> {
        let model = match &target.model {
            Some(model) => model.clone(),
            None => match self.default_name() {
                Some(name) => ModelRef::named(&name),
                None => return Err(DeployError::NotReady),
            },
        };
        if model.is_pinned() {
            let handle = self
                .handle(&model)
                .ok_or_else(|| DeployError::ModelNotFound(model.to_string()))?;
            let role = self.role_of(&handle);
            return Ok(Routed::pinned(handle, role));
        }
        let deployment = self
            .deployment(&model.name)
            .ok_or_else(|| DeployError::ModelNotFound(model.to_string()))?;
        if canary {
            return Ok(deployment.route(target.route_key.as_deref()));
        }
        let promoted = Arc::clone(&deployment.table().promoted);
        Ok(Routed::pinned(promoted, Role::Promoted))
    }

    /// One loaded version.
    pub fn version(&self, name: &str, version: &str) -> Option<Arc<ModelHandle>> {
        self.handle(&ModelRef::pinned(name, version))
    }

    fn handle(&self, model: &ModelRef) -> Option<Arc<ModelHandle>> {
        let versions = self.versions.read().expect("registry lock");
        versions.get(model).cloned()
    }

    /// The deployment routing `name`.
    pub fn deployment(&self, name: &str) -> Option<Arc<Deployment>> {
        self.deployments
            .read()
            .expect("registry lock")
            .get(name)
            .cloned()
    }

    pub fn deployments(&self) -> Vec<Arc<Deployment>> {
        let deployments = self.deployments.read().expect("registry lock");
        deployments.values().cloned().collect()
    }

    /// The default model's name.
    pub fn default_name(&self) -> Option<String> {
        self.default.read().expect("registry lock").clone()
    }

    /// Removes a version so no new request reaches it; requests holding it finish normally.
    /// The caller makes sure no route table still names it.
    pub fn remove(&self, name: &str, version: &str) -> Option<Arc<ModelHandle>> {
        let mut versions = self.versions.write().expect("registry lock");
        versions.remove(&ModelRef::pinned(name, version))
    }

    /// What a loaded version does now.
    pub fn role_of(&self, handle: &ModelHandle) -> Role {
        match self.deployment(&handle.info.name) {
            Some(d) => d.table().role_of(&handle.info.version),
            None => Role::Standby,
        }
    }

    /// Every loaded version, by name then version.
    pub fn all(&self) -> Vec<Arc<ModelHandle>> {
        let versions = self.versions.read().expect("registry lock");
        let mut all: Vec<Arc<ModelHandle>> = versions.values().cloned().collect();
        all.sort_by(|a, b| (&a.info.name, &a.info.version).cmp(&(&b.info.name, &b.info.version)));
        all
    }

    /// The loaded version whose weights hash to `sha256` (what an item index records).
    pub fn by_weights(&self, sha256: &str) -> Option<Arc<ModelHandle>> {
        let versions = self.versions.read().expect("registry lock");
        versions.values().find(|h| h.info.sha256 == sha256).cloned()
    }

    /// Every loaded version of `name`.
    pub fn versions_of(&self, name: &str) -> Vec<Arc<ModelHandle>> {
        let mut all = self.all();
        all.retain(|h| h.info.name == name);
        all
    }

    pub fn is_empty(&self) -> bool {
        self.versions.read().expect("registry lock").is_empty()
    }
}
