//! The gRPC listener's wiring: [`GrpcState`] from the HTTP side's state (same registry, keys,
//! rate limiter and readiness), `--grpc-listen` bound and its address logged as
//! `grpc listening` (tests read it, like `listening` for HTTP).

use std::{sync::Arc, time::Instant};

use anyhow::Context;

use crate::{
    auth::tls::ServerTls,
    cli::ServeConfig,
    grpc::{self, GrpcLimits, GrpcServer, GrpcState, RateCheck, Readiness, Transport},
    http::state::{AppState, Health},
};

impl Readiness for Health {
    fn ready(&self) -> bool {
        Health::ready(self)
    }

    fn draining(&self) -> bool {
        Health::draining(self)
    }
}

/// The services' view of `state`.
pub fn state(state: &AppState) -> GrpcState {
    let rate_limit = state.rate_limiter.clone().map(|limiter| {
        let check: RateCheck = Arc::new(move |key: &str, now: Instant| limiter.check(key, now));
        check
    });
    GrpcState {
        registry: Arc::clone(&state.registry),
        readiness: Arc::clone(&state.health) as Arc<dyn Readiness>,
        api_keys: state.api_keys.clone(),
        rate_limit,
        limits: Arc::new(GrpcLimits {
            max_client_batch: state.limits.max_client_batch,
            auto_truncate: state.limits.auto_truncate,
            request_timeout: state.limits.request_timeout,
            max_message_bytes: state.limits.max_body_bytes,
        }),
    }
}

/// Binds `--grpc-listen` (none when `off`) and serves until `shutdown`.
pub async fn serve(
    config: &ServeConfig,
    state: &AppState,
    tls: Option<Arc<ServerTls>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Option<GrpcServer>> {
    let Some(addr) = config.grpc_listen.0 else {
        return Ok(None);
    };
    let listener =
        super::listener::bind(addr).with_context(|| format!("binding the gRPC listener {addr}"))?;
    let transport = match tls {
        Some(tls) => Transport::Tls { tls },
        None => Transport::Plain,
    };
    let bounds = grpc::conn::Bounds {
        max_connections: config.conn.max_connections,
        first_bytes: config.conn.header_read_timeout,
    };
    let server = grpc::serve(self::state(state), listener, transport, bounds, shutdown)?;
    tracing::info!(addr = %server.addr, "grpc listening");
    Ok(Some(server))
}
