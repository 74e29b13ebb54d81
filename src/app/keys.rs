//! Key rotation: the API keys and the admin tokens are re-read on SIGHUP and whenever their files
//! change (checked every `--key-file-poll`), so a key is added or revoked without a restart. A
//! file that no longer reads keeps the keys in force, with an error logged.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use tokio::{
    signal::unix::{signal, SignalKind},
    time::Interval,
};

use crate::auth::ApiKeys;

/// Watches each key set that comes from a file, named for the logs (`api keys`, `admin tokens`).
pub fn watch(sets: Vec<(&'static str, Arc<ApiKeys>)>, poll: Duration) -> anyhow::Result<()> {
    let sets: Vec<_> = sets
        .into_iter()
        .filter(|(_, k)| k.path().is_some())
        .collect();
    if sets.is_empty() {
        return Ok(());
    }
    let mut hangup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let mut tick = (!poll.is_zero()).then(|| tokio::time::interval(poll));
    tokio::spawn(async move {
        loop {
            let forced = tokio::select! {
                _ = hangup.recv() => true,
                () = next(&mut tick) => false,
            };
            for (what, keys) in &sets {
                let outcome = match forced {
                    true => Some(keys.reload()),
                    false => keys.reload_if_changed(),
                };
                report(what, keys, outcome);
            }
        }
    });
    Ok(())
}

async fn next(tick: &mut Option<Interval>) {
    match tick {
        Some(tick) => {
            tick.tick().await;
        }
        None => std::future::pending().await,
    }
}

fn report(what: &str, keys: &ApiKeys, outcome: Option<anyhow::Result<usize>>) {
    let path = keys
        .path()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    match outcome {
        None => {}
        Some(Ok(count)) => tracing::info!(what, %path, count, "key file re-read"),
        Some(Err(err)) => {
            tracing::error!(what, %path, err = format!("{err:#}"), "key file not re-read; the keys in force stay")
        }
    }
}
