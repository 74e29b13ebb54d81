//! The gRPC listener (`--grpc-listen`): TEI's `tei.v1` services, KServe's
//! `inference.GRPCInferenceService`, `grpc.health.v1.Health` and server reflection, in the same process as the HTTP API and over the same state.
//!
//! It shares the registry (routing, canary and shadow through [`Routed`](crate::deploy::Routed)),
//! each version's admission queue and batcher, the API keys, the rate limiter and readiness with
//! the HTTP side; it never imports `http`. What it needs from there comes in through
//! [`GrpcState`]: readiness as the [`Readiness`] trait and the rate limiter as a function, both
//! wired by `app`. Errors become status codes in [`status`] only; series are [`metrics`];
//! messages are prost's through [`codec`].
//!
//! - [`call`]: what every call does first (API key, rate limit, draining, deadline from
//!   `grpc-timeout`) and the ordered, bounded stream driver;
//! - [`tei`]: `Info`, `Embed`, `Tokenize`, `Rerank`, `Predict`;
//! - [`kserve`]: the Open Inference Protocol's `inference.GRPCInferenceService`;
//! - [`health`]: the health service following readiness;
//! - [`tls`]: the listener's TLS handshakes (`--tls-cert`).
//!
//! Health and reflection need no API key (probes and tools call them). Every call runs in a
//! server span named by its path, a child of the caller's span when its metadata carries a W3C
//! `traceparent` ([`metrics::call_span`]).

pub mod call;
pub mod codec;
pub mod conn;
pub mod health;
pub mod kserve;
pub mod metrics;
pub mod status;
pub mod tei;
pub mod tls;

use std::{
    future::Future,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::net::TcpListener;
use tokio_stream::{wrappers::TcpListenerStream, StreamExt};

use crate::{
    auth::{tls::ServerTls, ApiKeys},
    deploy::Registry,
};

/// The code generated from `proto/tei.proto` and `proto/grpc_predict_v2.proto` (server and
/// client).
pub mod proto {
    pub mod inference {
        #![allow(clippy::all, missing_docs)]
        tonic::include_proto!("inference");
    }
    pub mod tei {
        pub mod v1 {
            #![allow(clippy::all, missing_docs)]
            tonic::include_proto!("tei.v1");
        }
    }
    /// Every service of `proto/`, encoded, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("inferd_descriptor");
}

/// Whether the process serves: a model loaded and warm, not shutting down; and whether new work
/// is refused (draining).
pub trait Readiness: Send + Sync + 'static {
    fn ready(&self) -> bool;
    fn draining(&self) -> bool;
}

/// A rate limiter's check: `Err(retry_after)` when `key` is over its rate.
pub type RateCheck = Arc<dyn Fn(&str, Instant) -> Result<(), Duration> + Send + Sync>;

/// The limits a gRPC call is checked against (the HTTP side's, same flags).
#[derive(Debug, Clone)]
pub struct GrpcLimits {
    /// `--max-client-batch`: texts in one rerank, ids lists in one decode stream.
    pub max_client_batch: usize,
    /// `--auto-truncate`: KServe's default for `truncate` (TEI's `truncate` is a plain bool,
    /// false = refuse, so it does not apply there).
    pub auto_truncate: bool,
    /// `--request-timeout`.
    pub request_timeout: Duration,
    /// `--max-body-bytes`: the largest message decoded or encoded.
    pub max_message_bytes: usize,
}

/// What the gRPC services share with the HTTP side.
#[derive(Clone)]
pub struct GrpcState {
    pub registry: Arc<Registry>,
    pub readiness: Arc<dyn Readiness>,
    pub api_keys: Option<Arc<ApiKeys>>,
    pub rate_limit: Option<RateCheck>,
    pub limits: Arc<GrpcLimits>,
}

/// A bound gRPC listener running until `shutdown` resolves; `drained` waits for it.
pub struct GrpcServer {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
}

impl GrpcServer {
    /// Waits for the server to finish its in-flight calls after shutdown.
    pub async fn drained(self) {
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "gRPC server stopped with an error"),
            Err(e) => tracing::warn!(error = %e, "gRPC server task failed"),
        }
    }
}

/// Concurrent calls (HTTP/2 streams) one connection may have open; clients queue beyond it.
const MAX_STREAMS: u32 = 256;
/// The server pings a connection quiet this long, and closes it if the ping is not answered in
/// [`KEEPALIVE_TIMEOUT`]: a peer that vanished without a FIN does not hold its slot.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(60);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// How a gRPC listener takes connections: plain TCP, or TLS (handshakes bounded like the first
/// bytes of a plain connection, [`conn::Bounds::first_bytes`]).
#[derive(Clone)]
pub enum Transport {
    Plain,
    Tls { tls: Arc<ServerTls> },
}

/// Serves every gRPC service on `listener` until `shutdown` resolves (then in-flight calls
/// finish; new connections are refused).
pub fn serve(
    state: GrpcState,
    listener: TcpListener,
    transport: Transport,
    bounds: conn::Bounds,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<GrpcServer> {
    let addr = listener.local_addr()?;
    metrics::register();
    let (health, health_service) = tonic_health::server::health_reporter();
    tokio::spawn(health::follow(health, Arc::clone(&state.readiness)));
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
    };
    // v1 for current tools, v1alpha for older ones (grpcurl before 1.9, many clients).
    let router = tonic::transport::Server::builder()
        .max_concurrent_streams(MAX_STREAMS)
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .trace_fn(metrics::call_span)
        .layer(tower::util::MapResponseLayer::new(
            status::over_limit_answer::<tonic::body::Body>,
        ))
        .add_service(health_service)
        .add_service(reflection().build_v1()?)
        .add_service(reflection().build_v1alpha()?);
    let router = tei::add_services(router, &state);
    let router = kserve::add_service(router, &state);
    let slots = conn::Slots::new(&bounds);
    let task = match transport {
        Transport::Plain => {
            // Small answers must not wait for the client's delayed ACK (Nagle), as on HTTP.
            let incoming =
                TcpListenerStream::new(listener).filter_map(move |accepted| match accepted {
                    Err(err) => Some(Err(err)),
                    Ok(stream) => {
                        let _ = stream.set_nodelay(true);
                        let slot = slots.take()?;
                        Some(Ok(conn::Conn::new(stream, slot, bounds.first_bytes)))
                    }
                });
            tokio::spawn(router.serve_with_incoming_shutdown(incoming, shutdown))
        }
        Transport::Tls { tls } => {
            let incoming = tls::incoming(listener, tls, slots, bounds.first_bytes);
            tokio::spawn(router.serve_with_incoming_shutdown(incoming, shutdown))
        }
    };
    Ok(GrpcServer { addr, task })
}
