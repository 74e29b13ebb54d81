//! Every HTTP listener `serve` opens (serving and admin): the accept loop, the connection limit,
//! per-connection timeouts, and the drain. axum's own `serve` has no timeouts and no limit, so
//! one client could hold the service; this module is the only place connections are handled.
//!
//! - **Limit.** `--max-connections` connections are served normally. Beyond them a reserve of
//!   [`RESERVE`] more is served one request each without keep-alive: the listener's open paths
//!   (probes and `/metrics` on the serving listener) answer as usual so an orchestrator still
//!   sees the pod, anything else is 503 `too_many_connections` with `Retry-After`. Beyond the
//!   reserve a connection is closed as soon as it is accepted.
//! - **Crowding.** Idle sockets must not be able to keep those slots: while every regular slot
//!   is taken, a connection with nothing in flight may idle only `--idle-timeout-when-full`
//!   (Jetty's low-resources idle timeout), and a reserve connection always: it must send its
//!   request head, and finish it, within that. Busy connections are never cut short.
//! - **Timeouts.** A request head must arrive within `--header-read-timeout` of its first byte;
//!   a connection with nothing in flight and no bytes moving is closed after `--idle-timeout`
//!   (see [`activity`]); a body must arrive within `--body-read-timeout` ([`body`]), else 408
//!   `body_timeout` and the connection closes.
//! - **Drain.** When `stop` resolves the listener closes, every connection is asked to finish
//!   the request it is serving and close (idle ones close at once), and [`Listener::drained`]
//!   resolves once the last is gone; the caller bounds that wait by `--shutdown-grace`.
//!
//! - **TLS** (`--tls-cert`): a connection's handshake runs in its own task, within
//!   `--header-read-timeout`, with the certificate in force when it connected.
//!
//! HTTP/1.1 only (the crate builds hyper without HTTP/2), so there are no stream limits to set.

mod activity;
mod body;

use std::{convert::Infallible, future::Future, net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    extract::Request,
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Router,
};
use hyper::{body::Incoming, server::conn::http1};
use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpListener, TcpSocket, TcpStream},
    sync::{watch, OwnedSemaphorePermit, Semaphore},
    task::JoinSet,
};
use tower::ServiceExt;

use crate::{
    auth::tls::{Alpn, ServerTls},
    cli::ListenArgs,
    http::error::ApiError,
};

use activity::{watchdog, Activity, Timeouts, Watched};

/// Connections served beyond `--max-connections`, one request each (see the module doc).
pub const RESERVE: usize = 32;

/// Connections the kernel completes before they are accepted (capped by `net.core.somaxconn`).
/// std's 128 overflows in a burst of connects: the kernel then drops SYNs and each client waits
/// out a 1 s retransmit, however fast the accept loop is.
const BACKLOG: u32 = 4096;

/// Binds a listening socket (every listener: HTTP, admin and gRPC) with a burst-sized backlog.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// The timeouts and limit of one listener, the paths its reserve still serves, and its TLS.
#[derive(Clone)]
pub struct Hygiene {
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub idle_timeout_when_full: Duration,
    pub max_connections: usize,
    /// Paths answered normally on a connection over the limit.
    pub open_paths: &'static [&'static str],
    /// `--tls-cert`: every connection starts with a TLS handshake, within the header timeout.
    pub tls: Option<Arc<ServerTls>>,
}

impl Hygiene {
    pub fn new(
        args: &ListenArgs,
        open_paths: &'static [&'static str],
        tls: Option<Arc<ServerTls>>,
    ) -> Self {
        Self {
            header_read_timeout: args.header_read_timeout,
            body_read_timeout: args.body_read_timeout,
            idle_timeout: args.idle_timeout,
            idle_timeout_when_full: args.idle_timeout_when_full,
            max_connections: args.max_connections,
            open_paths,
            tls,
        }
    }

    /// The timeouts a connection of `class` is held to now, `full` when every regular slot is
    /// taken (see the module doc).
    fn timeouts(&self, class: Class, full: bool) -> Timeouts {
        let short = |timeout: Duration| timeout.min(self.idle_timeout_when_full);
        Timeouts {
            header: match class {
                Class::Reserve => short(self.header_read_timeout),
                Class::Regular => self.header_read_timeout,
            },
            idle: match class == Class::Reserve || full {
                true => short(self.idle_timeout),
                false => self.idle_timeout,
            },
        }
    }

    /// How often a watchdog looks again: new timeouts apply within this.
    fn recheck(&self) -> Duration {
        self.header_read_timeout.min(self.idle_timeout_when_full)
    }
}

/// A listener being served; [`Listener::drained`] resolves after `stop` once every connection
/// has closed.
pub struct Listener {
    task: tokio::task::JoinHandle<()>,
}

impl Listener {
    /// Serves `router` on `listener` until `stop` resolves (see the module doc).
    pub fn spawn(
        listener: TcpListener,
        router: Router,
        hygiene: Hygiene,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> Self {
        Self {
            task: tokio::spawn(accept_loop(listener, router, Arc::new(hygiene), stop)),
        }
    }

    /// Resolves once the listener has stopped and its last connection has closed.
    pub async fn drained(self) {
        if let Err(err) = self.task.await {
            tracing::error!(%err, "listener task failed");
        }
    }
}

/// Whether a connection is within the limit or in the reserve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Regular,
    Reserve,
}

/// A connection's place: its class and permit, and the regular slots, to see whether the
/// listener is full.
struct Slot {
    class: Class,
    regular: Arc<Semaphore>,
    _permit: OwnedSemaphorePermit,
}

impl Slot {
    fn timeouts(&self, hygiene: &Hygiene) -> Timeouts {
        hygiene.timeouts(self.class, self.regular.available_permits() == 0)
    }
}

async fn accept_loop(
    listener: TcpListener,
    router: Router,
    hygiene: Arc<Hygiene>,
    stop: impl Future<Output = ()>,
) {
    let regular = Arc::new(Semaphore::new(hygiene.max_connections));
    let reserve = Arc::new(Semaphore::new(RESERVE));
    let (drain_tx, drain_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(stop);
    loop {
        let stream = tokio::select! {
            biased;
            () = &mut stop => break,
            Some(_) = connections.join_next() => continue,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    // Out of file descriptors, mostly: back off instead of spinning.
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (class, permit) = match Arc::clone(&regular).try_acquire_owned() {
            Ok(permit) => (Class::Regular, permit),
            Err(_) => match Arc::clone(&reserve).try_acquire_owned() {
                Ok(permit) => (Class::Reserve, permit),
                Err(_) => {
                    tracing::debug!("connection limit and reserve full: closing a connection");
                    continue;
                }
            },
        };
        connections.spawn(connection(
            stream,
            router.clone(),
            Arc::clone(&hygiene),
            Slot {
                class,
                regular: Arc::clone(&regular),
                _permit: permit,
            },
            drain_rx.clone(),
        ));
    }
    drop(listener);
    let _ = drain_tx.send(true);
    while connections.join_next().await.is_some() {}
}

/// Serves one connection, after its TLS handshake when the listener has TLS; a handshake that
/// fails or takes longer than the header timeout closes it.
async fn connection(
    stream: TcpStream,
    router: Router,
    hygiene: Arc<Hygiene>,
    slot: Slot,
    drain: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let Some(tls) = &hygiene.tls else {
        return serve_connection(stream, router, hygiene, slot, drain).await;
    };
    let handshake = tls.acceptor(Alpn::Http1).accept(stream);
    let within = slot.timeouts(&hygiene).header;
    match tokio::time::timeout(within, handshake).await {
        Ok(Ok(stream)) => serve_connection(stream, router, hygiene, slot, drain).await,
        Ok(Err(err)) => tracing::debug!(%err, "TLS handshake failed"),
        Err(_) => tracing::debug!("TLS handshake timed out"),
    }
}

/// Serves one connection until it closes, goes stale, or finishes its request after a drain.
async fn serve_connection<S>(
    stream: S,
    router: Router,
    hygiene: Arc<Hygiene>,
    slot: Slot,
    mut drain: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let class = slot.class;
    let activity = Activity::new();
    let io = TokioIo::new(Watched::new(stream, Arc::clone(&activity)));
    let service = {
        let (activity, hygiene) = (Arc::clone(&activity), Arc::clone(&hygiene));
        hyper::service::service_fn(move |request| {
            handle(
                request,
                router.clone(),
                Arc::clone(&activity),
                Arc::clone(&hygiene),
                class,
            )
        })
    };
    let conn = http1::Builder::new()
        .keep_alive(class == Class::Regular)
        .serve_connection(io, service);
    tokio::pin!(conn);
    let mut draining = false;
    loop {
        tokio::select! {
            served = conn.as_mut() => {
                if let Err(err) = served {
                    tracing::debug!(%err, "connection ended with an error");
                }
                return;
            }
            () = watchdog(&activity, hygiene.recheck(), || slot.timeouts(&hygiene)) => {
                tracing::debug!("closing a stalled or idle connection");
                return;
            }
            _ = drain.wait_for(|d| *d), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// One request: the reserve's refusal, or the router with a deadlined body.
async fn handle(
    request: Request<Incoming>,
    router: Router,
    activity: Arc<Activity>,
    hygiene: Arc<Hygiene>,
    class: Class,
) -> Result<Response, Infallible> {
    let _in_flight = activity.begin();
    if class == Class::Reserve && !hygiene.open_paths.contains(&request.uri().path()) {
        return Ok(ApiError::TooManyConnections.into_response());
    }
    let request = request.map(|b| body::deadlined(b, hygiene.body_read_timeout));
    let mut response = router.oneshot(request).await?;
    if response.status() == StatusCode::REQUEST_TIMEOUT {
        // The rest of a late body is not worth reading: close instead of keeping alive.
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    Ok(response)
}
