//! The deployment layer's series: roles, canary weights and routing, shadow agreement,
//! rollbacks and lifecycle events (names in [`crate::telemetry`]).

use metrics::{counter, gauge};

use super::{agreement::Agreement, audit::Action, Role};
use crate::telemetry;

fn pair(model: &str, version: &str) -> [(&'static str, String); 2] {
    [
        ("model", model.to_string()),
        ("version", version.to_string()),
    ]
}

pub fn routed(model: &str, version: &str, role: Role) {
    let mut labels = pair(model, version).to_vec();
    labels.push(("role", role.as_str().to_string()));
    counter!(telemetry::ROUTED, &labels).increment(1);
}

/// Sets the version's role gauge to 1 for `role` and 0 for the others.
pub fn role(model: &str, version: &str, role: Role) {
    for r in Role::ALL {
        let mut labels = pair(model, version).to_vec();
        labels.push(("role", r.as_str().to_string()));
        gauge!(telemetry::MODEL_ROLE, &labels).set(if r == role { 1.0 } else { 0.0 });
    }
}

/// Zeroes every role of an unloaded version.
pub fn unloaded(model: &str, version: &str) {
    for r in Role::ALL {
        let mut labels = pair(model, version).to_vec();
        labels.push(("role", r.as_str().to_string()));
        gauge!(telemetry::MODEL_ROLE, &labels).set(0.0);
    }
    canary_weight(model, version, 0.0);
}

pub fn canary_weight(model: &str, version: &str, weight: f64) {
    gauge!(telemetry::CANARY_WEIGHT, &pair(model, version)).set(weight);
}

pub fn shadow_request(model: &str, version: &str, outcome: &'static str) {
    let mut labels = pair(model, version).to_vec();
    labels.push(("outcome", outcome.to_string()));
    counter!(telemetry::SHADOW_REQUESTS, &labels).increment(1);
}

pub fn shadow_agreement(model: &str, version: &str, a: &Agreement) {
    gauge!(telemetry::SHADOW_SAMPLES, &pair(model, version)).set(a.samples as f64);
    let metrics = [
        ("mean_cosine", a.mean_cosine),
        ("rank_correlation", a.rank_correlation),
        ("topk_overlap", a.topk_overlap),
    ];
    for (name, value) in metrics {
        if let Some(value) = value {
            let mut labels = pair(model, version).to_vec();
            labels.push(("metric", name.to_string()));
            gauge!(telemetry::SHADOW_AGREEMENT, &labels).set(value);
        }
    }
}

pub fn rollback(model: &str, version: &str, reason: &'static str) {
    let mut labels = pair(model, version).to_vec();
    labels.push(("reason", reason.to_string()));
    counter!(telemetry::ROLLBACKS, &labels).increment(1);
}

pub fn lifecycle_event(action: Action) {
    let action = serde_json::to_value(action)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    counter!(telemetry::EVENTS, "action" => action).increment(1);
}
