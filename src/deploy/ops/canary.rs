//! `canary`: a weighted, sticky share of a model's traffic to another version.

use std::sync::Arc;

use serde_json::json;

use super::{required, Lifecycle};
use crate::{
    deploy::{
        audit::{Action, Event},
        metrics as m,
        status::EventOutcome,
        Canary, DeployError,
    },
    serving::ModelRef,
};

impl Lifecycle {
    /// Sends `weight` (0..=1) of `model`'s traffic to its version (or the current canary's),
    /// sticky by route key.
    pub async fn set_canary(
        &self,
        actor: &str,
        model: &ModelRef,
        weight: f64,
    ) -> Result<EventOutcome, DeployError> {
        let _op = self.ops.lock().await;
        let deployment = self.deployment(&model.name)?;
        let before = deployment.snapshot();
        let event = self.apply_canary(actor, model, weight)?;
        self.commit_routes(&deployment, before, event)
    }

    pub(super) fn apply_canary(
        &self,
        actor: &str,
        model: &ModelRef,
        weight: f64,
    ) -> Result<Event, DeployError> {
        if !(0.0..=1.0).contains(&weight) {
            return Err(DeployError::Invalid(
                "`weight` must be between 0 and 1".into(),
            ));
        }
        let name = &model.name;
        let deployment = self.deployment(name)?;
        let current = deployment.table();
        let version = match (&model.version, &current.canary) {
            (Some(v), _) => v.clone(),
            (None, Some(c)) => c.handle.info.version.clone(),
            (None, None) => required(None)?,
        };
        let handle = self.loaded(name, &version)?;
        let (_, previous) = deployment.update(|t| {
            if t.promoted.info.version == version {
                return Err(DeployError::Conflict(format!(
                    "{} is the promoted version; canary another one",
                    handle.model_ref()
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
            m::canary_weight(name, prev, 0.0);
            m::role(name, prev, deployment.table().role_of(prev));
        }
        if previous.as_deref() != Some(version.as_str()) {
            deployment.reset_canary_window();
        }
        Ok(Event::new(actor, Action::Canary, name)
            .version(&version, &handle.info.sha256)
            .previous(previous.as_deref())
            .detail(json!({"weight": weight})))
    }
}
