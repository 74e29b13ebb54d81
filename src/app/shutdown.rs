//! Signal handling and the drain sequence.
//!
//! On SIGTERM or SIGINT: readiness turns 503 at once (so load balancers stop sending), the
//! listener stops accepting, queued and in-flight requests complete and are answered, then the
//! process exits — all bounded by `--shutdown-grace`.

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
