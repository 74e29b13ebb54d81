//! Connection hygiene and the lame-duck drain of every listener (`serve`'s serving and admin
//! listeners): how long a client may take to send a request, how long an idle connection stays
//! open, how many connections each listener holds, how long readiness says 503 before the
//! listeners close on SIGTERM, and the TLS files every listener serves with.

use std::{path::PathBuf, time::Duration};

use clap::Args;

use super::parse_duration;

/// Options of every listener `inferd serve` opens.
#[derive(Debug, Clone, Args)]
pub struct ListenArgs {
    /// A request's head (request line and headers) must arrive within this, counted from its
    /// first byte; a slower client is disconnected.
    #[arg(long, env = "INFERD_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,

    /// A request's body must arrive within this, counted from its head; a slower (or endless)
    /// body is answered 408 `body_timeout` and the connection is closed. Raise it for large
    /// Batch API uploads over slow links.
    #[arg(long, env = "INFERD_BODY_READ_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub body_read_timeout: Duration,

    /// A connection with no request in flight and no bytes moving for this long is closed
    /// (new connections that send nothing, and idle keep-alives). Keep it above the idle
    /// timeout of a load balancer in front.
    #[arg(long, env = "INFERD_IDLE_TIMEOUT", default_value = "75s", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// While every `--max-connections` slot is taken, a connection with no request in flight is
    /// closed after idling this long instead of `--idle-timeout`, so idle sockets make room for
    /// new clients; connections in the probe reserve always get this long to send their request.
    #[arg(long, env = "INFERD_IDLE_TIMEOUT_WHEN_FULL", default_value = "1s", value_parser = parse_duration)]
    pub idle_timeout_when_full: Duration,

    /// Connections each listener serves at once. Beyond it a small reserve answers one request
    /// per connection (probes and `/metrics` normally, anything else 503
    /// `too_many_connections`) and closes; beyond the reserve, connections are closed at once.
    /// The gRPC listener has the same limit and no reserve. Keep it below the process's
    /// open-file limit.
    #[arg(long, env = "INFERD_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,

    /// On SIGTERM/SIGINT, how long `/readyz` answers 503 `shutting_down` while everything else
    /// is served normally (so load balancers stop sending), before the listeners close and
    /// `--shutdown-grace` starts.
    #[arg(long, env = "INFERD_DRAIN_DELAY", default_value = "5s", value_parser = parse_duration)]
    pub drain_delay: Duration,

    /// PEM certificate chain, leaf first. With `--tls-key`, every listener (HTTP, admin, gRPC)
    /// speaks TLS only. Re-read when it changes (see `--key-file-poll`) and on SIGHUP.
    #[arg(long, env = "INFERD_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of `--tls-cert`.
    #[arg(long, env = "INFERD_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// PEM CA certificates for mutual TLS: every client must present a certificate they signed,
    /// or its TLS handshake fails (probes included: give the kubelet a plain port or use
    /// `exec` probes).
    #[arg(long, env = "INFERD_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
}

impl ListenArgs {
    /// Rejects values clap cannot check on its own.
    pub fn validate(&self) -> Result<(), String> {
        let timeouts = [
            ("--header-read-timeout", self.header_read_timeout),
            ("--body-read-timeout", self.body_read_timeout),
            ("--idle-timeout", self.idle_timeout),
            ("--idle-timeout-when-full", self.idle_timeout_when_full),
        ];
        if let Some((flag, _)) = timeouts.iter().find(|(_, d)| d.is_zero()) {
            return Err(format!("{flag} must be above 0"));
        }
        if self.max_connections == 0 {
            return Err("--max-connections must be at least 1".into());
        }
        Ok(())
    }
}
