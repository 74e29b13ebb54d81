//! `unload`: recorded, then out of routing, then drained, then dropped.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use super::{required, Lifecycle};
use crate::{
    deploy::{
        audit::{Action, Event},
        metrics as m,
        status::UnloadOutcome,
        DeployError,
    },
    serving::ModelRef,
};

impl Lifecycle {
    /// Takes a version out of routing, waits for its queue to drain, then drops it.
    pub async fn unload(
        &self,
        actor: &str,
        model: &ModelRef,
    ) -> Result<UnloadOutcome, DeployError> {
        let op = self.ops.lock().await;
        let name = &model.name;
        let version = required(model.version.as_deref())?;
        let deployment = self.deployment(name)?;
        let handle = self.loaded(name, &version)?;
        // Only a lifecycle operation (serialised with this one) changes the promoted version.
        if deployment.table().promoted.info.version == version {
            return Err(DeployError::Conflict(format!(
                "{} is the promoted version; promote or roll back to another one first",
                handle.model_ref()
            )));
        }
        // Recorded before anything is removed: an unload cannot be undone once its version is
        // gone, and a failed append leaves it untouched.
        let event = Event::new(actor, Action::Unload, name).version(&version, &handle.info.sha256);
        let event = self.commit(event, || ())?;
        deployment.update(|t| {
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
        self.registry.remove(name, &version);
        m::unloaded(name, &version);
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
        Ok(UnloadOutcome {
            event,
            drained,
            drain_ms: started.elapsed().as_millis() as u64,
        })
    }
}
