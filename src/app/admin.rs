//! The admin listener: whether it may start, its tokens (given, or generated once for loopback
//! use), and serving it until shutdown.

use std::{
    io::{Read, Write},
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::Context;
use tokio::sync::watch;

use super::listener::{Hygiene, Listener};
use crate::{
    auth::{tls::ServerTls, ApiKeys},
    cli::ServeConfig,
    deploy::Lifecycle,
    http,
};

/// The admin token file written for loopback use when `--admin-token-file` is not given.
pub fn generated_token_path(state_dir: &Path) -> PathBuf {
    state_dir.join("admin.token")
}

/// Refuses to expose the admin API beyond loopback without a token file.
pub fn check_bind(addr: SocketAddr, token_file: Option<&Path>) -> anyhow::Result<()> {
    if token_file.is_none() && !addr.ip().is_loopback() {
        anyhow::bail!(
            "refusing to serve the admin API on non-loopback address {addr} without \
             --admin-token-file"
        );
    }
    Ok(())
}

/// The admin API's tokens: `--admin-token-file`, else (loopback only) a token generated once
/// into `<state-dir>/admin.token`, else none and the admin API stays off.
pub fn tokens(config: &ServeConfig) -> anyhow::Result<Option<Arc<ApiKeys>>> {
    if let Some(path) = &config.admin_token_file {
        return Ok(Some(Arc::new(ApiKeys::load(path)?)));
    }
    let Some(dir) = &config.state_dir else {
        tracing::info!("admin API off: pass --admin-token-file or --state-dir to enable it");
        return Ok(None);
    };
    let path = generated_token_path(dir);
    if !path.exists() {
        write_secret(&path, &format!("admin:{}\n", random_token()?))?;
        tracing::info!(path = %path.display(), "generated an admin token");
    }
    Ok(Some(Arc::new(ApiKeys::load(&path)?)))
}

fn random_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom for an admin token; pass --admin-token-file instead")?;
    Ok(hex::encode(bytes))
}

/// Creates `path` readable by its owner only (it must not exist yet).
fn write_secret(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

/// Binds `--admin-listen` and serves the admin API until shutdown, with the serving listener's
/// timeouts and connection limit (its reserve answers nothing but 503: it has no probes).
pub async fn serve(
    config: &ServeConfig,
    lifecycle: Arc<Lifecycle>,
    tokens: Arc<ApiKeys>,
    tls: Option<Arc<ServerTls>>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<Listener> {
    let listener = super::listener::bind(config.admin_listen)
        .with_context(|| format!("binding the admin API on {}", config.admin_listen))?;
    tracing::info!(addr = %listener.local_addr()?, "admin listening");
    let app = http::admin::router(lifecycle, tokens);
    let stop = async move {
        let _ = stop.wait_for(|stop| *stop).await;
    };
    Ok(Listener::spawn(
        listener,
        app,
        Hygiene::new(&config.conn, &[], tls),
        stop,
    ))
}
