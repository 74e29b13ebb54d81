//! Signal handling and the drain sequence.
//!
//! On SIGTERM or SIGINT: readiness turns 503 `shutting_down` at once (so load balancers stop
//! sending) while every other route is served normally for `--drain-delay` (the lame duck:
//! endpoints take a few seconds to learn a pod is going); then the listeners close, new work on
//! open connections is refused with 503 `shutting_down`, queued and in-flight requests complete
//! and are answered, and the process exits — that last part bounded by `--shutdown-grace`, and
//! non-zero when the grace ran out first. A service that never turned ready skips the delay.

use std::{future::Future, sync::Arc, time::Duration};

use tokio::sync::watch;

use crate::http::state::Health;

/// Waits for `signal`, plays the lame duck for `delay`, then starts the drain and tells the
/// listeners to stop (`stop` turns true).
pub async fn lame_duck(
    signal: impl Future<Output = ()>,
    health: Arc<Health>,
    delay: Duration,
    stop: watch::Sender<bool>,
) {
    signal.await;
    if health.ready() && !delay.is_zero() {
        health.start_lame_duck();
        tracing::info!(
            ?delay,
            "readiness is 503 shutting_down; serving until the drain delay ends"
        );
        tokio::time::sleep(delay).await;
    }
    health.start_draining();
    tracing::info!("closing the listeners; draining in-flight work");
    let _ = stop.send(true);
}

/// Resolves on the first SIGTERM or SIGINT.
pub async fn signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received: draining"),
        () = term => tracing::info!("SIGTERM received: draining"),
    }
}
