//! The registry: every loaded version by `name@version`, and per name the [`Deployment`] that
//! routes `name` (promoted version, canary, shadow).
//!
//! Callers ask [`Registry::route`] where a request goes — by `name` or `name@version` (or the
//! default model) and a caller route key — and call [`Routed::embed`]; nothing on the request
//! path knows how many versions are loaded. [`Registry::get`] is the canary-blind lookup for
//! metadata (what `name` means now); it never carries traffic.
//!
//! A model also answers to aliases: its hub repo id (registered when its first version is
//! inserted) and any the operator adds (`--model-alias`). An alias stands for the name, so
//! `alias@version` pins like `name@version`; a name nothing answers to is
//! [`DeployError::UnknownModel`], listing every name that does.

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
    /// Alias → the model name it stands for.
    aliases: RwLock<BTreeMap<String, String>>,
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
            aliases: RwLock::default(),
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
        if let Some(repo) = &handle.info.hub_repo {
            self.add_alias(repo, &name);
        }
        self.default
            .write()
            .expect("registry lock")
            .get_or_insert(name);
        handle
    }

    /// Lets requests name `name` as `alias` too. The first meaning of an alias stays, and a
    /// model's own name is never shadowed by an alias.
    pub fn add_alias(&self, alias: &str, name: &str) {
        if alias.is_empty() || alias == name {
            return;
        }
        let mut aliases = self.aliases.write().expect("registry lock");
        aliases
            .entry(alias.to_string())
            .or_insert_with(|| name.to_string());
    }

    /// The model name `name` means: itself when a model has that name, else what it aliases.
    fn canonical(&self, name: &str) -> Option<String> {
        if self.deployment(name).is_some() {
            return Some(name.to_string());
        }
        let aliases = self.aliases.read().expect("registry lock");
        aliases
            .get(name)
            .filter(|target| self.deployment(target).is_some())
            .cloned()
    }

    /// The aliases of the model `name`, sorted.
    pub fn aliases_of(&self, name: &str) -> Vec<String> {
        let aliases = self.aliases.read().expect("registry lock");
        aliases
            .iter()
            .filter(|(alias, target)| *target == name && self.deployment(alias).is_none())
            .map(|(alias, _)| alias.clone())
            .collect()
    }

    /// Every name a request may use: each model's name, its `name@version`s and its aliases.
    pub fn names(&self) -> Vec<String> {
        let models: Vec<String> = {
            let deployments = self.deployments.read().expect("registry lock");
            deployments.keys().cloned().collect()
        };
        let mut names = Vec::new();
        for name in models {
            names.push(name.clone());
            names.extend(
                self.versions_of(&name)
                    .iter()
                    .map(|h| h.model_ref().to_string()),
            );
            names.extend(self.aliases_of(&name));
        }
        names
    }

    fn unknown(&self, model: &ModelRef) -> DeployError {
        DeployError::UnknownModel {
            model: model.to_string(),
            known: self.names(),
        }
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
        let Some(name) = self.canonical(&model.name) else {
            return Err(self.unknown(&model));
        };
        if let Some(version) = &model.version {
            let handle = self
                .handle(&ModelRef::pinned(&name, version))
                .ok_or_else(|| self.unknown(&model))?;
            let role = self.role_of(&handle);
            return Ok(Routed::pinned(handle, role));
        }
        let deployment = self.deployment(&name).ok_or_else(|| self.unknown(&model))?;
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

    /// Takes back an [`insert`](Self::insert) (a load that could not be recorded): the version,
    /// and when it was its name's first, that name's deployment, aliases and default claim.
    pub fn withdraw(&self, name: &str, version: &str) -> Option<Arc<ModelHandle>> {
        let removed = self.remove(name, version)?;
        let mut deployments = self.deployments.write().expect("registry lock");
        let first = deployments
            .get(name)
            .is_some_and(|d| d.table().promoted.info.version == version);
        if first {
            deployments.remove(name);
            let next_default = deployments.keys().next().cloned();
            drop(deployments);
            let mut aliases = self.aliases.write().expect("registry lock");
            aliases.retain(|_, target| target != name);
            drop(aliases);
            let mut default = self.default.write().expect("registry lock");
            if default.as_deref() == Some(name) {
                *default = next_default;
            }
        }
        Some(removed)
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
