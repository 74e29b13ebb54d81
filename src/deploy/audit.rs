//! The lifecycle audit log: `<state-dir>/lifecycle.jsonl`, one JSON event per line.
//!
//! Every lifecycle action (load, canary, shadow, promote, rollback, unload, and automatic
//! rollbacks) is appended and fsynced *after* it took effect, with who did it, when, and the
//! weights' sha256. On start, [`replay`] folds the log into the state to restore: which versions
//! were loaded (and from where, with which hash), which is promoted, the canary and the shadow.
//! A torn last line (crash mid-write) is skipped with a warning; the log is never rewritten.

use std::{
    collections::BTreeMap,
    fs::{File, OpenOptions},
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    sync::Mutex,
    time::{SystemTime, UNIX_EPOCH},
};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const FILE_NAME: &str = "lifecycle.jsonl";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Load,
    Unload,
    Canary,
    ShadowStart,
    ShadowStop,
    Promote,
    Rollback,
    AutoRollback,
}

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// RFC 3339, UTC.
    pub ts: String,
    /// Admin token name, or `inferd` for automatic actions.
    pub actor: String,
    pub action: Action,
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// sha256 of the version's `model.safetensors`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The version promoted (or canaried) before this action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// Action-specific detail: `source` and `faults` of a load, `weight` of a canary,
    /// `sample_rate` of a shadow, `force` and `agreement` of a promote, `breach` of a rollback.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub detail: Value,
}

impl Event {
    pub fn new(actor: &str, action: Action, model: &str) -> Self {
        Self {
            ts: rfc3339(SystemTime::now()),
            actor: actor.to_string(),
            action,
            model: model.to_string(),
            version: None,
            sha256: None,
            previous: None,
            detail: Value::Null,
        }
    }

    pub fn version(mut self, version: &str, sha256: &str) -> Self {
        self.version = Some(version.to_string());
        self.sha256 = Some(sha256.to_string());
        self
    }

    pub fn previous(mut self, previous: Option<&str>) -> Self {
        self.previous = previous.map(str::to_string);
        self
    }

    pub fn detail(mut self, detail: Value) -> Self {
        self.detail = detail;
        self
    }
}

/// Append-only, fsynced event log.
pub struct AuditLog {
    path: PathBuf,
    file: Mutex<File>,
}

impl AuditLog {
    pub fn open(state_dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(state_dir)
            .with_context(|| format!("creating --state-dir {}", state_dir.display()))?;
        let path = state_dir.join(FILE_NAME);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening audit log {}", path.display()))?;
        Ok(Self {
            path,
            file: Mutex::new(file),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one event and syncs it to disk before returning.
    pub fn append(&self, event: &Event) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(event)?;
        line.push(b'\n');
        let mut file = self.file.lock().expect("audit log");
        file.write_all(&line)?;
        file.sync_data()
    }

    /// Every readable event, oldest first.
    pub fn read(&self) -> anyhow::Result<Vec<Event>> {
        let file = File::open(&self.path)?;
        let mut events = Vec::new();
        for (n, line) in BufReader::new(file).lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str(&line) {
                Ok(event) => events.push(event),
                Err(err) => tracing::warn!(line = n + 1, %err, "skipping unreadable audit event"),
            }
        }
        Ok(events)
    }
}

/// A version to load again on start.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedVersion {
    pub sha256: Option<String>,
    /// The load event's `detail` (source, faults).
    pub detail: Value,
}

/// What one model's deployment should look like after replay.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelState {
    pub versions: BTreeMap<String, LoadedVersion>,
    pub promoted: Option<String>,
    /// Versions promoted before, oldest first (rollback targets).
    pub history: Vec<String>,
    pub canary: Option<(String, f64)>,
    pub shadow: Option<(String, f64)>,
}

/// Folds the log into the state each model should be restored to.
pub fn replay(events: &[Event]) -> BTreeMap<String, ModelState> {
    let mut models: BTreeMap<String, ModelState> = BTreeMap::new();
    for e in events {
        let state = models.entry(e.model.clone()).or_default();
        let version = e.version.clone().unwrap_or_default();
        let number = |key: &str| e.detail.get(key).and_then(Value::as_f64).unwrap_or(0.0);
        match e.action {
            Action::Load => {
                let loaded = LoadedVersion {
                    sha256: e.sha256.clone(),
                    detail: e.detail.clone(),
                };
                state.versions.insert(version, loaded);
            }
            Action::Unload => {
                state.versions.remove(&version);
                state.history.retain(|v| v != &version);
                if state.canary.as_ref().is_some_and(|(v, _)| v == &version) {
                    state.canary = None;
                }
                if state.shadow.as_ref().is_some_and(|(v, _)| v == &version) {
                    state.shadow = None;
                }
            }
            Action::Canary | Action::AutoRollback => {
                state.canary = Some((version, number("weight")));
            }
            Action::ShadowStart => state.shadow = Some((version, number("sample_rate"))),
            Action::ShadowStop => state.shadow = None,
            Action::Promote => {
                if let Some(old) = state.promoted.replace(version.clone()) {
                    state.history.push(old);
                }
                if state.canary.as_ref().is_some_and(|(v, _)| v == &version) {
                    state.canary = None;
                }
                if state.shadow.as_ref().is_some_and(|(v, _)| v == &version) {
                    state.shadow = None;
                }
            }
            Action::Rollback => {
                state.history.retain(|v| v != &version);
                state.promoted = Some(version);
                state.canary = None;
            }
        }
    }
    models
}

/// `2026-11-25T04:17:36.123Z`.
pub fn rfc3339(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    fn ev(action: Action, version: &str, detail: Value) -> Event {
        Event::new("ops", action, "m")
            .version(version, "abc")
            .detail(detail)
    }

    #[test]
    fn formats_rfc3339() {
        let at = UNIX_EPOCH + Duration::from_millis(1_764_044_256_007);
        assert_eq!(rfc3339(at), "2025-11-25T04:17:36.007Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn replay_follows_a_rollout() {
        let events = vec![
            ev(Action::Load, "v2", json!({"source": "m.toml"})),
            ev(Action::ShadowStart, "v2", json!({"sample_rate": 0.5})),
            ev(Action::Canary, "v2", json!({"weight": 0.1})),
            ev(Action::Load, "v3", json!({})),
            ev(Action::Canary, "v3", json!({"weight": 0.2})),
        ];
        let state = &replay(&events)["m"];
        assert_eq!(state.versions.len(), 2);
        assert_eq!(state.canary, Some(("v3".into(), 0.2)));
        assert_eq!(state.shadow, Some(("v2".into(), 0.5)));

        let mut more = events.clone();
        more.push(ev(Action::Promote, "v3", Value::Null));
        more.push(ev(Action::Unload, "v2", Value::Null));
        let state = &replay(&more)["m"];
        assert_eq!(state.promoted.as_deref(), Some("v3"));
        assert_eq!(state.canary, None);
        assert_eq!(state.shadow, None);
        assert_eq!(state.versions.keys().collect::<Vec<_>>(), ["v3"]);
    }

    #[test]
    fn log_round_trips_and_skips_torn_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        let e = ev(Action::Canary, "v2", json!({"weight": 0.25}));
        log.append(&e).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(log.path())
            .unwrap()
            .write_all(b"{\"ts\": \"torn")
            .unwrap();
        assert_eq!(log.read().unwrap(), vec![e]);
    }
}
