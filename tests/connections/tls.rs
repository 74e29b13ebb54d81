//! TLS on every listener, from outside with a real TLS client (reqwest on rustls) and
//! certificates made at test time (rcgen): HTTPS on the serving and admin listeners, plain HTTP
//! refused on the TLS port, mutual TLS refusing a client without a certificate or with one from
//! another CA, a silent client's handshake cut off, and a renewed certificate served to new
//! connections without a restart (a broken renewal keeps the old one).

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use serde_json::json;
use tokio::{io::AsyncReadExt, net::TcpStream};

use crate::common::{spawn, tiny_model_dir, TestServer};

/// A test CA.
struct Ca(CertifiedIssuer<'static, KeyPair>);

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        Self(CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap())
    }

    fn pem(&self) -> String {
        self.0.pem()
    }

    /// A certificate and key for `names` signed by this CA: (cert PEM, key PEM).
    fn issue(&self, names: &[&str]) -> (String, String) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &self.0)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// A client identity (cert and key PEM, as reqwest reads them).
    fn client(&self) -> reqwest::Identity {
        let (cert, key) = self.issue(&["client"]);
        reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).unwrap()
    }
}

/// The server's certificate files in a temp dir.
struct ServerFiles {
    dir: tempfile::TempDir,
}

impl ServerFiles {
    fn new(ca: &Ca) -> Self {
        let files = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        files.install(ca);
        files
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a certificate from `ca` and its key, each by an atomic rename.
    fn install(&self, ca: &Ca) {
        let (cert, key) = ca.issue(&["localhost", "127.0.0.1"]);
        replace(&self.path("tls.key"), &key);
        replace(&self.path("tls.crt"), &cert);
    }

    fn args(&self) -> Vec<String> {
        let arg = |name: &str| self.path(name).to_str().unwrap().to_owned();
        vec![
            "--tls-cert".into(),
            arg("tls.crt"),
            "--tls-key".into(),
            arg("tls.key"),
        ]
    }
}

fn replace(path: &Path, text: &str) {
    let next = path.with_extension("next");
    std::fs::write(&next, text).unwrap();
    std::fs::rename(&next, path).unwrap();
}

/// A fresh client (no pooled connection) trusting `ca`, optionally presenting `identity`.
fn client(ca: &Ca, identity: Option<reqwest::Identity>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(30));
    if let Some(identity) = identity {
        builder = builder.identity(identity);
    }
    builder.build().unwrap()
}

async fn readyz(client: &reqwest::Client, server: &TestServer) -> reqwest::Result<u16> {
    let url = format!("https://localhost:{}/readyz", server.addr.port());
    Ok(client.get(url).send().await?.status().as_u16())
}

/// Spawns a tiny-model server with `args` and waits until `client` reads it ready over HTTPS.
async fn spawn_tls(args: &[String], client: &reqwest::Client) -> (TestServer, tempfile::TempDir) {
    let dir = tiny_model_dir();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = spawn(dir.path(), &args);
    let deadline = Instant::now() + Duration::from_secs(120);
    while readyz(client, &server).await.ok() != Some(200) {
        assert!(
            Instant::now() < deadline,
            "never ready; logs:\n{}",
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (server, dir)
}

#[tokio::test]
async fn every_http_listener_serves_tls_and_plain_http_is_refused() {
    let ca = Ca::new("inferd test CA");
    let files = ServerFiles::new(&ca);
    let tokens = files.path("tokens");
    std::fs::write(&tokens, "ops:admin-secret\n").unwrap();
    let mut args = files.args();
    args.extend(
        [
            "--header-read-timeout",
            "1s",
            "--admin-listen",
            "127.0.0.1:0",
        ]
        .map(String::from),
    );
    args.push("--admin-token-file".into());
    args.push(tokens.to_str().unwrap().into());
    let https = client(&ca, None);
    let (server, _model) = spawn_tls(&args, &https).await;

    let url = format!("https://localhost:{}/infer", server.addr.port());
    let answer = https
        .post(url)
        .json(&json!({"inputs": "hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let admin = format!(
        "https://localhost:{}/admin/status",
        server.admin_addr().await.port()
    );
    let status = https
        .get(admin)
        .bearer_auth("admin-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(status.status(), 200);

    // Plain HTTP to the TLS port gets no HTTP answer; a client that never starts its handshake
    // is cut off after the header-read timeout (1 s here).
    let plain = reqwest::Client::new()
        .get(server.url("/readyz"))
        .send()
        .await;
    assert!(
        plain.is_err(),
        "plain HTTP answered on the TLS port: {plain:?}"
    );
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(30), silent.read(&mut [0u8; 64])).await;
    assert!(
        matches!(closed, Ok(Ok(0) | Err(_))),
        "a silent client was kept: {closed:?}"
    );
    assert_eq!(readyz(&https, &server).await.unwrap(), 200);
}

#[tokio::test]
async fn mutual_tls_needs_a_client_certificate_from_the_client_ca() {
    let ca = Ca::new("inferd test CA");
    let clients = Ca::new("client CA");
    let files = ServerFiles::new(&ca);
    std::fs::write(files.path("clients.pem"), clients.pem()).unwrap();
    let mut args = files.args();
    args.push("--tls-client-ca".into());
    args.push(files.path("clients.pem").to_str().unwrap().into());
    let trusted = client(&ca, Some(clients.client()));
    let (server, _model) = spawn_tls(&args, &trusted).await;

    assert_eq!(readyz(&trusted, &server).await.unwrap(), 200);
    let anonymous = readyz(&client(&ca, None), &server).await;
    assert!(
        anonymous.is_err(),
        "no client certificate, answered: {anonymous:?}"
    );
    let stranger = readyz(&client(&ca, Some(ca.client())), &server).await;
    assert!(
        stranger.is_err(),
        "a certificate from another CA, answered: {stranger:?}"
    );
    assert_eq!(readyz(&trusted, &server).await.unwrap(), 200);
}

#[tokio::test]
async fn a_renewed_certificate_is_served_without_a_restart() {
    let old = Ca::new("old CA");
    let new = Ca::new("new CA");
    let files = ServerFiles::new(&old);
    let (server, _model) = spawn_tls(&files.args(), &client(&old, None)).await;
    assert!(readyz(&client(&new, None), &server).await.is_err());

    files.install(&new);
    let deadline = Instant::now() + Duration::from_secs(30);
    while readyz(&client(&new, None), &server).await.ok() != Some(200) {
        assert!(
            Instant::now() < deadline,
            "the renewed certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        readyz(&client(&old, None), &server).await.is_err(),
        "still the old one"
    );

    // A key that does not match its certificate is not applied: the new one stays.
    let (_, other_key) = new.issue(&["localhost"]);
    replace(&files.path("tls.key"), &other_key);
    server
        .wait_for_logs("secret file not re-read; what was in force stays", 1)
        .await;
    assert_eq!(readyz(&client(&new, None), &server).await.unwrap(), 200);
}
