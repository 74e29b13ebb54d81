//! Secret rotation: the API keys, the admin tokens and the listeners' TLS files are re-read on
//! SIGHUP and whenever a file changes (checked every `--key-file-poll`), so a key is revoked or a
//! certificate renewed without a restart. A file that no longer reads keeps what is in force,
//! with an error logged.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use tokio::{
    signal::unix::{signal, SignalKind},
    time::Interval,
};

use crate::auth::Reload;

/// A secret watched, named for the logs (`api keys`, `admin tokens`, `tls`).
pub type Watched = (&'static str, Arc<dyn Reload>);

/// Watches `secrets` (none: nothing to do, and SIGHUP keeps its default).
pub fn watch(secrets: Vec<Watched>, poll: Duration) -> anyhow::Result<()> {
    if secrets.is_empty() {
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
            for (what, secret) in &secrets {
                let outcome = match forced {
                    true => Some(secret.reload()),
                    false => secret.reload_if_changed(),
                };
                report(what, secret.as_ref(), outcome);
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

fn report(what: &str, secret: &dyn Reload, outcome: Option<anyhow::Result<String>>) {
    let source = secret.source();
    match outcome {
        None => {}
        Some(Ok(now)) => tracing::info!(what, %source, now, "secret file re-read"),
        Some(Err(err)) => tracing::error!(what, %source, err = format!("{err:#}"),
            "secret file not re-read; what was in force stays"),
    }
}
