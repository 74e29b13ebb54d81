//! `promote`: the atomic switch of which version answers a model, gated by shadow agreement.

use std::sync::Arc;

use serde_json::json;

use super::{required, Lifecycle};
use crate::{
    deploy::{
        agreement::Agreement,
        audit::{self, Action, Event},
        metrics as m,
        status::EventOutcome,
        DeployError, Deployment, RouteTable,
    },
    serving::{ModelHandle, ModelRef},
};

impl Lifecycle {
    /// Makes `model`'s version the one that answers `model.name`, atomically. Refused when the
    /// candidate's shadow agreement is below `--promote-min-agreement` or was never measured,
    /// unless `force`.
    pub async fn promote(
        &self,
        actor: &str,
        model: &ModelRef,
        force: bool,
    ) -> Result<EventOutcome, DeployError> {
        let _op = self.ops.lock().await;
        let version = required(model.version.as_deref())?;
        let deployment = self.deployment(&model.name)?;
        let agreement = deployment.shadow.agreement(&version);
        if !force {
            self.check_agreement(model, agreement.as_ref())?;
        }
        let before = deployment.snapshot();
        let event = self
            .apply_promote(actor, &deployment, &version)?
            .detail(json!({"force": force, "agreement": agreement}));
        self.commit_routes(&deployment, before, event)
    }

    fn check_agreement(
        &self,
        model: &ModelRef,
        agreement: Option<&Agreement>,
    ) -> Result<(), DeployError> {
        let (min_samples, threshold) = (
            self.policy.shadow_min_samples,
            self.policy.promote_min_agreement,
        );
        let refuse = |why: String| {
            Err(DeployError::AgreementTooLow(format!(
                "refusing to promote {model}: {why}; shadow it longer, or send \
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

    pub(super) fn apply_promote(
        &self,
        actor: &str,
        deployment: &Deployment,
        version: &str,
    ) -> Result<Event, DeployError> {
        let name = &deployment.name;
        let handle = self.loaded(name, version)?;
        let (old, ()) = deployment.update(|t| {
            if t.promoted.info.version == version {
                return Err(DeployError::Conflict(format!(
                    "{} is already promoted",
                    handle.model_ref()
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
        audit::history_after_promote(&mut history, version, Some(&previous));
        deployment.set_history(history);
        deployment.reset_canary_window();
        m::role(name, &previous, deployment.table().role_of(&previous));
        m::canary_weight(name, version, 0.0);
        Ok(Event::new(actor, Action::Promote, name)
            .version(version, &handle.info.sha256)
            .previous(Some(&previous)))
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
