//! `rollback`: back to the version promoted before the current one, ending any canary.

use std::sync::Arc;

use super::Lifecycle;
use crate::{
    deploy::{
        audit::{Action, Event},
        metrics as m,
        status::EventOutcome,
        DeployError, Deployment, Role,
    },
    serving::{ModelHandle, ModelRef},
};

impl Lifecycle {
    /// Returns `model.name` to the version promoted before the current one and ends any canary.
    pub async fn rollback(
        &self,
        actor: &str,
        model: &ModelRef,
    ) -> Result<EventOutcome, DeployError> {
        let _op = self.ops.lock().await;
        let name = &model.name;
        let deployment = self.deployment(name)?;
        let before = deployment.snapshot();
        let mut history = deployment.history();
        let target = self.rollback_target(name, &mut history)?;
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
        m::role(name, &from, Role::Standby);
        if let Some(c) = &old.canary {
            Self::demoted_canary(&deployment, &c.handle.info.version);
        }
        let event = Event::new(actor, Action::Rollback, name)
            .version(&target.info.version, &target.info.sha256)
            .previous(Some(&from));
        self.commit_routes(&deployment, before, event)
    }

    /// The newest earlier promoted version still loaded, popped off `history`.
    fn rollback_target(
        &self,
        name: &str,
        history: &mut Vec<String>,
    ) -> Result<Arc<ModelHandle>, DeployError> {
        while let Some(v) = history.pop() {
            if let Some(handle) = self.registry.version(name, &v) {
                return Ok(handle);
            }
        }
        Err(DeployError::Conflict(format!(
            "{name} has no earlier promoted version still loaded to roll back to"
        )))
    }

    fn demoted_canary(deployment: &Deployment, version: &str) {
        m::canary_weight(&deployment.name, version, 0.0);
        m::role(
            &deployment.name,
            version,
            deployment.table().role_of(version),
        );
    }
}
