//! `shadow` and `shadow/stop`: copies of live requests to a candidate, and agreement with it.

use std::sync::Arc;

use serde_json::json;

use super::{required, Lifecycle};
use crate::{
    deploy::{
        audit::{Action, Event},
        metrics as m,
        status::EventOutcome,
        DeployError, Deployment, ShadowTarget,
    },
    serving::ModelRef,
};

impl Lifecycle {
    /// Copies `sample_rate` (0..=1) of `model`'s live requests to its version and measures
    /// agreement.
    pub async fn start_shadow(
        &self,
        actor: &str,
        model: &ModelRef,
        sample_rate: f64,
    ) -> Result<EventOutcome, DeployError> {
        let _op = self.ops.lock().await;
        let deployment = self.deployment(&model.name)?;
        let before = deployment.snapshot();
        let event = self.apply_shadow(actor, model, sample_rate)?;
        self.commit_routes(&deployment, before, event)
    }

    pub(super) fn apply_shadow(
        &self,
        actor: &str,
        model: &ModelRef,
        sample_rate: f64,
    ) -> Result<Event, DeployError> {
        if !(0.0..=1.0).contains(&sample_rate) || sample_rate == 0.0 {
            return Err(DeployError::Invalid(
                "`sample_rate` must be above 0 and at most 1".into(),
            ));
        }
        let name = &model.name;
        let version = required(model.version.as_deref())?;
        let deployment = self.deployment(name)?;
        let handle = self.loaded(name, &version)?;
        let (old, ()) = deployment.update(|t| {
            if t.promoted.info.version == version {
                return Err(DeployError::Conflict(format!(
                    "{} is the promoted version; shadow another one",
                    handle.model_ref()
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
                m::role(name, &prev, deployment.table().role_of(&prev));
            }
        }
        deployment.shadow.start(&version);
        Ok(Event::new(actor, Action::ShadowStart, name)
            .version(&version, &handle.info.sha256)
            .detail(json!({"sample_rate": sample_rate})))
    }

    /// Stops copying `model`'s requests to its shadow (any version in `model` is ignored).
    pub async fn stop_shadow(
        &self,
        actor: &str,
        model: &ModelRef,
    ) -> Result<EventOutcome, DeployError> {
        let _op = self.ops.lock().await;
        let deployment = self.deployment(&model.name)?;
        let before = deployment.snapshot();
        let event = self.apply_stop_shadow(actor, &deployment)?;
        self.commit_routes(&deployment, before, event)
    }

    fn apply_stop_shadow(
        &self,
        actor: &str,
        deployment: &Deployment,
    ) -> Result<Event, DeployError> {
        let (old, ()) = deployment.update(|t| {
            let mut next = t.clone();
            next.shadow = None;
            Ok((next, ()))
        })?;
        deployment.shadow.stop();
        let Some(shadow) = &old.shadow else {
            return Err(DeployError::Conflict(format!(
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
}
