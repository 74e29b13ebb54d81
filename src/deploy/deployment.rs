//! One model name's serving state: its route table, promotion history, canary monitor and
//! shadow runner.
//!
//! The route table (promoted version, optional canary with a weight, optional shadow with a
//! sample rate) sits behind an `RwLock<Arc<_>>`. A request clones the `Arc` once and routes from
//! that snapshot, so a promotion switches atomically and a request never sees half of one.
//! Tables hold the handles themselves, so a version removed from the table finishes the requests
//! that already hold it and drains before it is dropped.

use std::{
    sync::{Arc, Mutex, RwLock},
    time::Duration,
};

use serde::Serialize;
use serde_json::json;

use super::{
    audit::{Action, AuditLog, Event},
    metrics as m,
    rollback::{self, CanaryLimits, CanaryMonitor},
    routing,
    shadow::ShadowRunner,
    DeployError, Routed,
};
use crate::serving::ModelHandle;

/// Lifecycle settings from the command line.
#[derive(Debug, Clone)]
pub struct Policy {
    pub canary: CanaryLimits,
    pub shadow_queue: usize,
    pub shadow_window: usize,
    pub shadow_min_samples: usize,
    pub promote_min_agreement: f64,
    pub request_timeout: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            canary: CanaryLimits {
                max_error_ratio: 0.05,
                max_p99: Duration::from_secs(2),
                min_requests: 20,
                window: Duration::from_secs(60),
            },
            shadow_queue: 64,
            shadow_window: 128,
            shadow_min_samples: 32,
            promote_min_agreement: 0.9,
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// What a loaded version is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Serves requests for `name` (and the default model, for the default name).
    Promoted,
    /// Serves a weighted share of requests for `name`.
    Canary,
    /// Receives sampled copies of live requests; answers only `name@version`.
    Shadow,
    /// Loaded, answers only `name@version` (e.g. the previous version, kept for rollback).
    Standby,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Promoted, Role::Canary, Role::Shadow, Role::Standby];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Promoted => "promoted",
            Self::Canary => "canary",
            Self::Shadow => "shadow",
            Self::Standby => "standby",
        }
    }
}

#[derive(Clone)]
pub struct Canary {
    pub handle: Arc<ModelHandle>,
    /// Share of requests, 0..=1.
    pub weight: f64,
}

#[derive(Clone)]
pub struct ShadowTarget {
    pub handle: Arc<ModelHandle>,
    pub sample_rate: f64,
}

/// One consistent routing snapshot of a deployment.
#[derive(Clone)]
pub struct RouteTable {
    pub promoted: Arc<ModelHandle>,
    pub canary: Option<Canary>,
    pub shadow: Option<ShadowTarget>,
}

impl RouteTable {
    pub fn role_of(&self, version: &str) -> Role {
        let is = |h: &Arc<ModelHandle>| h.info.version == version;
        if is(&self.promoted) {
            Role::Promoted
        } else if self.canary.as_ref().is_some_and(|c| is(&c.handle)) {
            Role::Canary
        } else if self.shadow.as_ref().is_some_and(|s| is(&s.handle)) {
            Role::Shadow
        } else {
            Role::Standby
        }
    }
}

/// A deployment's route table and history at one moment, for [`Deployment::restore`].
pub(crate) struct Snapshot {
    table: Arc<RouteTable>,
    history: Vec<String>,
}

/// The serving state of one model name.
pub struct Deployment {
    pub name: String,
    table: RwLock<Arc<RouteTable>>,
    /// Versions promoted before the current one, oldest first.
    history: Mutex<Vec<String>>,
    monitor: CanaryMonitor,
    pub(crate) shadow: ShadowRunner,
    policy: Arc<Policy>,
    audit: Option<Arc<AuditLog>>,
}

impl Deployment {
    pub fn new(
        promoted: Arc<ModelHandle>,
        policy: Arc<Policy>,
        audit: Option<Arc<AuditLog>>,
    ) -> Self {
        let name = promoted.info.name.clone();
        let shadow = ShadowRunner::new(
            name.clone(),
            policy.shadow_queue,
            policy.shadow_window,
            policy.request_timeout,
        );
        let deployment = Self {
            name,
            table: RwLock::new(Arc::new(RouteTable {
                promoted,
                canary: None,
                shadow: None,
            })),
            history: Mutex::default(),
            monitor: CanaryMonitor::default(),
            shadow,
            policy,
            audit,
        };
        deployment.publish();
        deployment
    }

    /// The current routing snapshot.
    pub fn table(&self) -> Arc<RouteTable> {
        Arc::clone(&self.table.read().expect("route table"))
    }

    /// Replaces the table atomically with `change(current)`; returns the old one.
    pub(crate) fn update<T>(
        &self,
        change: impl FnOnce(&RouteTable) -> Result<(RouteTable, T), DeployError>,
    ) -> Result<(Arc<RouteTable>, T), DeployError> {
        let mut guard = self.table.write().expect("route table");
        let (next, out) = change(&guard)?;
        let old = std::mem::replace(&mut *guard, Arc::new(next));
        drop(guard);
        self.publish();
        Ok((old, out))
    }

    pub fn history(&self) -> Vec<String> {
        self.history.lock().expect("history").clone()
    }

    pub(crate) fn set_history(&self, history: Vec<String>) {
        *self.history.lock().expect("history") = history;
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn canary_health(&self, version: &str) -> rollback::CanaryHealth {
        self.monitor.health(version)
    }

    pub(crate) fn reset_canary_window(&self) {
        self.monitor.reset();
    }

    /// Chooses the version for one request from the current snapshot.
    pub fn route(self: &Arc<Self>, route_key: Option<&str>) -> Routed {
        let table = self.table();
        let canary = table.canary.as_ref().filter(|c| {
            c.weight > 0.0
                && routing::takes_canary(routing::bucket(&self.name, route_key), c.weight)
        });
        let (handle, role) = match canary {
            Some(c) => (Arc::clone(&c.handle), Role::Canary),
            None => (Arc::clone(&table.promoted), Role::Promoted),
        };
        let shadow = table
            .shadow
            .as_ref()
            .filter(|s| s.handle.info.version != handle.info.version)
            .filter(|s| fastrand::f64() < s.sample_rate)
            .map(|s| Arc::clone(&s.handle));
        Routed::new(handle, role, Some(Arc::clone(self)), shadow)
    }

    /// Records a canary request; rolls the canary back when it breaches its limits.
    pub(super) fn record_canary(&self, version: &str, ok: bool, latency: Duration) {
        let Some(breach) = self
            .monitor
            .record(version, ok, latency, &self.policy.canary)
        else {
            return;
        };
        let rolled_back = self.update(|t| match &t.canary {
            Some(c) if c.handle.info.version == version && c.weight > 0.0 => {
                let mut next = t.clone();
                next.canary = Some(Canary {
                    handle: Arc::clone(&c.handle),
                    weight: 0.0,
                });
                Ok((next, Some(c.handle.info.sha256.clone())))
            }
            _ => Ok((t.clone(), None)),
        });
        let Ok((_, Some(sha256))) = rolled_back else {
            return; // someone else already moved the canary
        };
        self.monitor.reset();
        tracing::warn!(model = %self.name, %version, ?breach, "canary breached its limits; weight set to 0");
        m::rollback(&self.name, version, breach.label());
        let event = Event::new("inferd", Action::AutoRollback, &self.name)
            .version(version, &sha256)
            .detail(json!({"weight": 0.0, "breach": breach}));
        self.audit(&event);
    }

    /// Appends to the audit log, when there is one; a failed write is logged, not fatal (the
    /// action, an automatic rollback, already took effect and is not undone).
    pub(crate) fn audit(&self, event: &Event) {
        let _ = append(self.audit.as_deref(), event);
    }

    /// What a lifecycle operation changes, taken before it.
    pub(crate) fn snapshot(&self) -> Snapshot {
        Snapshot {
            table: self.table(),
            history: self.history(),
        }
    }

    /// Puts `before` back (an operation whose audit event could not be written): the route
    /// table, the history, shadowing of the restored shadow (its agreement window kept) and
    /// every role metric. The canary's health window starts over.
    pub(crate) fn restore(&self, before: Snapshot) {
        let undone = std::mem::replace(
            &mut *self.table.write().expect("route table"),
            Arc::clone(&before.table),
        );
        self.set_history(before.history);
        match &before.table.shadow {
            Some(s) => self.shadow.resume(&s.handle.info.version),
            None => self.shadow.stop(),
        }
        self.monitor.reset();
        let versions = [&undone.promoted]
            .into_iter()
            .chain(undone.canary.as_ref().map(|c| &c.handle))
            .chain(undone.shadow.as_ref().map(|s| &s.handle));
        for handle in versions {
            let version = &handle.info.version;
            m::role(&self.name, version, before.table.role_of(version));
            m::canary_weight(&self.name, version, 0.0);
        }
        self.publish();
    }

    /// Exports roles and the canary weight as metrics.
    fn publish(&self) {
        let table = self.table();
        let canary = table.canary.as_ref();
        for handle in [Some(&table.promoted), canary.map(|c| &c.handle)]
            .into_iter()
            .flatten()
        {
            m::role(
                &self.name,
                &handle.info.version,
                table.role_of(&handle.info.version),
            );
        }
        if let Some(s) = &table.shadow {
            m::role(&self.name, &s.handle.info.version, Role::Shadow);
        }
        if let Some(c) = canary {
            m::canary_weight(&self.name, &c.handle.info.version, c.weight);
        }
    }
}

/// Appends `event` to `log`, when there is one, and counts it; a failed write is logged and
/// returned (its detail).
pub(crate) fn append(log: Option<&AuditLog>, event: &Event) -> Result<(), String> {
    if let Some(log) = log {
        if let Err(err) = log.append(event) {
            tracing::error!(%err, path = %log.path().display(), "could not append audit event");
            return Err(err.to_string());
        }
    }
    m::lifecycle_event(event.action);
    Ok(())
}
