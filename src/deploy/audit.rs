//! The lifecycle audit log: `<state-dir>/lifecycle.jsonl`, one JSON event per line.
//!
//! Every lifecycle action (load, canary, shadow, promote, rollback, unload, and automatic
//! rollbacks) is appended and fsynced *after* it took effect, with who did it, when, and the
//! weights' sha256. On start, [`replay`] folds the log into the state to restore: which versions
//! were loaded (and from where, with which hash), which is promoted, the canary, the shadow and
//! the rollback history. The rollback history follows [`history_after_promote`] and
//! [`history_after_rollback`], the same functions the live operations call, so replay rebuilds
//! exactly the history that was live.
//!
//! The file is a [`Journal`] of lines, so [`crate::journal`]'s rules hold: a torn last line (a
//! crash mid-append) is cut off, with a warning, when the log is opened — before the next append,
//! which would otherwise be glued to it and lost — and an unreadable line followed by readable
//! ones refuses the start, naming the file and byte offset. A line that is intact JSON but not an
//! event this build knows (written by a newer inferd) is skipped with a warning, not refused.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Mutex,
    time::{SystemTime, UNIX_EPOCH},
};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::journal::{self, AppendError, Framing, Journal};

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
    journal: Mutex<Journal>,
}

impl AuditLog {
    /// Opens (creating) the log in `state_dir`, cutting a torn last line; refuses a log damaged
    /// before its last line.
    pub fn open(state_dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(state_dir)
            .with_context(|| format!("creating --state-dir {}", state_dir.display()))?;
        let path = state_dir.join(FILE_NAME);
        let (journal, _) = Journal::open(&path, decode_line, Framing::Lines)
            .context("opening the lifecycle audit log")?;
        Ok(Self {
            path,
            journal: Mutex::new(journal),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one event and syncs it to disk before returning; a failed append leaves nothing
    /// behind for the next one to be glued to.
    pub fn append(&self, event: &Event) -> Result<(), AppendError> {
        let mut line = serde_json::to_vec(event).expect("events serialise");
        line.push(b'\n');
        self.journal.lock().expect("audit log").append(&line)
    }

    /// Every readable event, oldest first.
    pub fn read(&self) -> anyhow::Result<Vec<Event>> {
        // Under the journal's lock no append is half-written, so every line is whole.
        let _appends = self.journal.lock().expect("audit log");
        let bytes = std::fs::read(&self.path)
            .with_context(|| format!("reading {}", self.path.display()))?;
        let recovered = journal::recover(&bytes, decode_line, Framing::Lines)
            .with_context(|| format!("{} is corrupt", self.path.display()))?;
        Ok(recovered.records.into_iter().flatten().collect())
    }
}

/// One line of the log: `Some(event)`, or `None` for a blank line or an intact JSON line this
/// build does not know; `None` overall where the line is unreadable or unfinished.
fn decode_line(bytes: &[u8]) -> Option<(Option<Event>, usize)> {
    let end = bytes.iter().position(|&b| b == b'\n')?;
    let line = &bytes[..end];
    if line.iter().all(u8::is_ascii_whitespace) {
        return Some((None, end + 1));
    }
    let value: Value = serde_json::from_slice(line).ok()?;
    let event = serde_json::from_value(value)
        .map_err(|err| tracing::warn!(%err, "skipping an audit event this inferd does not know"))
        .ok();
    Some((event, end + 1))
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
    /// The promoted version, where the log says (the boot version's promotion is not logged).
    pub promoted: Option<String>,
    /// Versions promoted before, oldest first (rollback targets).
    pub history: Vec<String>,
    pub canary: Option<(String, f64)>,
    pub shadow: Option<(String, f64)>,
}

/// Rollback targets (oldest first) after `version` is promoted over `previous`: the promoted
/// version is never a target, and each version is one at most once.
pub fn history_after_promote(history: &mut Vec<String>, version: &str, previous: Option<&str>) {
    history.retain(|v| v != version);
    if let Some(previous) = previous.filter(|p| *p != version) {
        history.retain(|v| v != previous);
        history.push(previous.to_string());
    }
}

/// Rollback targets after rolling back to `target`: it and everything promoted after it leave.
pub fn history_after_rollback(history: &mut Vec<String>, target: &str) {
    if let Some(at) = history.iter().rposition(|v| v == target) {
        history.truncate(at);
    }
}

/// Folds the log into the state each model should be restored to.
pub fn replay(events: &[Event]) -> BTreeMap<String, ModelState> {
    let mut models: BTreeMap<String, ModelState> = BTreeMap::new();
    for e in events {
        let state = models.entry(e.model.clone()).or_default();
        fold(state, e);
    }
    models
}

/// Applies one event to its model's state, as the live operation did.
fn fold(state: &mut ModelState, e: &Event) {
    let version = e.version.clone().unwrap_or_default();
    let number = |key: &str| e.detail.get(key).and_then(Value::as_f64).unwrap_or(0.0);
    let drop_role = |slot: &mut Option<(String, f64)>, v: &str| {
        if slot.as_ref().is_some_and(|(s, _)| s == v) {
            *slot = None;
        }
    };
    match e.action {
        Action::Load => {
            // The first version of a name is promoted as it loads.
            if e.detail.get("role").and_then(Value::as_str) == Some("promoted") {
                state.promoted = Some(version.clone());
            }
            let loaded = LoadedVersion {
                sha256: e.sha256.clone(),
                detail: e.detail.clone(),
            };
            state.versions.insert(version, loaded);
        }
        Action::Unload => {
            state.versions.remove(&version);
            state.history.retain(|v| v != &version);
            drop_role(&mut state.canary, &version);
            drop_role(&mut state.shadow, &version);
        }
        Action::Canary | Action::AutoRollback => {
            state.canary = Some((version, number("weight")));
        }
        Action::ShadowStart => state.shadow = Some((version, number("sample_rate"))),
        Action::ShadowStop => state.shadow = None,
        Action::Promote => {
            // The event names the version it replaced, the boot version included.
            let previous = e.previous.as_deref().or(state.promoted.as_deref());
            history_after_promote(&mut state.history, &version, previous);
            drop_role(&mut state.canary, &version);
            drop_role(&mut state.shadow, &version);
            state.promoted = Some(version);
        }
        Action::Rollback => {
            history_after_rollback(&mut state.history, &version);
            drop_role(&mut state.shadow, &version);
            state.canary = None;
            state.promoted = Some(version);
        }
    }
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

    fn append_raw(path: &Path, bytes: &[u8]) {
        use std::io::Write;
        std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .unwrap()
            .write_all(bytes)
            .unwrap();
    }

    #[test]
    fn a_torn_last_line_is_cut_before_the_next_append() {
        let dir = tempfile::tempdir().unwrap();
        let first = ev(Action::Canary, "v2", json!({"weight": 0.25}));
        let log = AuditLog::open(dir.path()).unwrap();
        log.append(&first).unwrap();
        drop(log);
        append_raw(&dir.path().join(FILE_NAME), b"{\"ts\": \"torn");
        let log = AuditLog::open(dir.path()).unwrap();
        let next = ev(Action::Promote, "v2", Value::Null);
        log.append(&next).unwrap();
        drop(log);
        let log = AuditLog::open(dir.path()).unwrap();
        assert_eq!(log.read().unwrap(), vec![first, next]);
    }

    #[test]
    fn a_damaged_line_before_readable_ones_refuses_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        log.append(&ev(Action::Load, "v2", json!({}))).unwrap();
        drop(log);
        let path = dir.path().join(FILE_NAME);
        let good = std::fs::metadata(&path).unwrap().len();
        let mut after =
            serde_json::to_vec(&ev(Action::Canary, "v2", json!({"weight": 0.5}))).unwrap();
        after.push(b'\n');
        append_raw(&path, &[&b"{\"ts\": garbage}\n"[..], &after].concat());
        let before = std::fs::read(&path).unwrap();
        let err = format!("{:#}", AuditLog::open(dir.path()).err().unwrap());
        assert!(
            err.contains(FILE_NAME) && err.contains(&format!("byte {good}")),
            "{err}"
        );
        assert_eq!(
            std::fs::read(&path).unwrap(),
            before,
            "a refused log is left as found"
        );
    }

    #[test]
    fn intact_events_of_a_newer_inferd_are_skipped_not_refused() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        drop(log);
        append_raw(
            &dir.path().join(FILE_NAME),
            b"{\"ts\": \"x\", \"action\": \"drain\"}\n\n",
        );
        let log = AuditLog::open(dir.path()).unwrap();
        let e = ev(Action::Load, "v2", json!({}));
        log.append(&e).unwrap();
        assert_eq!(log.read().unwrap(), vec![e]);
    }

    fn promote(version: &str, previous: &str) -> Event {
        ev(Action::Promote, version, Value::Null).previous(Some(previous))
    }

    #[test]
    fn replay_rebuilds_the_live_rollback_history() {
        // Boot on v1 (never logged as promoted), then promote v2, v1, v2: live history is [v1].
        let events = vec![
            ev(Action::Load, "v2", json!({})),
            promote("v2", "v1"),
            promote("v1", "v2"),
            promote("v2", "v1"),
        ];
        let state = &replay(&events)["m"];
        assert_eq!(state.promoted.as_deref(), Some("v2"));
        assert_eq!(state.history, ["v1"]);
        let mut more = events.clone();
        more.push(ev(Action::Load, "v3", json!({})));
        more.push(promote("v3", "v2"));
        more.push(ev(Action::Rollback, "v1", Value::Null).previous(Some("v3")));
        let state = &replay(&more)["m"];
        assert_eq!(state.promoted.as_deref(), Some("v1"));
        assert!(state.history.is_empty(), "{:?}", state.history);
    }

    #[test]
    fn the_first_version_of_a_new_name_is_promoted_by_its_load() {
        let events = vec![
            ev(Action::Load, "b", json!({"role": "promoted"})),
            ev(Action::Load, "a", json!({"role": "standby"})),
        ];
        assert_eq!(replay(&events)["m"].promoted.as_deref(), Some("b"));
    }

    #[test]
    fn history_rules() {
        let mut h: Vec<String> = vec!["v1".into(), "v2".into(), "v3".into()];
        history_after_promote(&mut h, "v2", Some("v4"));
        assert_eq!(h, ["v1", "v3", "v4"]);
        history_after_rollback(&mut h, "v3");
        assert_eq!(h, ["v1"]);
        history_after_rollback(&mut h, "v9");
        assert_eq!(h, ["v1"]);
    }
}
