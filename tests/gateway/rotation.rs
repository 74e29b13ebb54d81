//! Key rotation without a restart: a changed API key file or admin token file is re-read (file
//! polling, or SIGHUP with polling off), the removed key is refused on HTTP, gRPC and the admin
//! API, the added one accepted, and a file that no longer reads keeps the keys in force.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use inferd::grpc::proto::tei::v1::{embed_client::EmbedClient, EmbedRequest};
use tonic::{Code, Request};

use super::infer_as;
use crate::common::{spawn_tiny_with, TestServer};

/// Replaces `path` by a rename, as a Kubernetes Secret volume does (a new inode).
fn replace(path: &Path, text: &str) {
    let next = path.with_extension("next");
    std::fs::write(&next, text).unwrap();
    std::fs::rename(&next, path).unwrap();
}

/// Waits (up to 30 s) until `key` gets `status` on `/infer`.
async fn until_infer_status(server: &TestServer, key: &str, status: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while infer_as(server, Some(key)).await.status() != status {
        assert!(Instant::now() < deadline, "{key} never got {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn grpc_embed(server: &TestServer, key: &str) -> Result<(), Code> {
    let channel = crate::grpc::connect(server.grpc_addr().await).await;
    let mut request = Request::new(EmbedRequest {
        inputs: "hello".into(),
        truncate: true,
        ..Default::default()
    });
    let bearer = format!("Bearer {key}").parse().unwrap();
    request.metadata_mut().insert("authorization", bearer);
    EmbedClient::new(channel)
        .embed(request)
        .await
        .map(|_| ())
        .map_err(|s| s.code())
}

#[tokio::test]
async fn a_changed_key_file_rotates_keys_on_every_listener() {
    let dir = tempfile::tempdir().unwrap();
    let (keys, tokens) = (dir.path().join("keys"), dir.path().join("tokens"));
    std::fs::write(&keys, "alice:alice-secret\n").unwrap();
    std::fs::write(&tokens, "ops:old-token\n").unwrap();
    let server = spawn_tiny_with(&[
        "--api-key-file",
        keys.to_str().unwrap(),
        "--admin-listen",
        "127.0.0.1:0",
        "--admin-token-file",
        tokens.to_str().unwrap(),
        "--grpc-listen",
        "127.0.0.1:0",
    ])
    .await;
    assert_eq!(infer_as(&server, Some("alice-secret")).await.status(), 200);
    assert_eq!(grpc_embed(&server, "alice-secret").await, Ok(()));

    replace(&keys, "carol:carol-secret\n");
    until_infer_status(&server, "alice-secret", 401).await;
    assert_eq!(infer_as(&server, Some("carol-secret")).await.status(), 200);
    assert_eq!(
        grpc_embed(&server, "alice-secret").await,
        Err(Code::Unauthenticated)
    );
    assert_eq!(grpc_embed(&server, "carol-secret").await, Ok(()));

    let (code, _) = server.admin(Some("old-token"), "/admin/status", None).await;
    assert_eq!(code, 200);
    replace(&tokens, "ops:new-token\n");
    let deadline = Instant::now() + Duration::from_secs(30);
    while server
        .admin(Some("old-token"), "/admin/status", None)
        .await
        .0
        != 401
    {
        assert!(
            Instant::now() < deadline,
            "the old admin token stayed valid"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (code, _) = server.admin(Some("new-token"), "/admin/status", None).await;
    assert_eq!(code, 200);

    // A file emptied by mistake is not applied: carol keeps working.
    replace(&keys, "# nobody\n");
    server
        .wait_for_logs("secret file not re-read; what was in force stays", 1)
        .await;
    assert_eq!(infer_as(&server, Some("carol-secret")).await.status(), 200);
}

/// With polling off an edited file changes nothing until SIGHUP (so the re-read below is the
/// signal's), and SIGHUP does not stop the server.
#[tokio::test]
async fn sighup_re_reads_the_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, "alice:alice-secret\n").unwrap();
    let mut server = spawn_tiny_with(&[
        "--api-key-file",
        keys.to_str().unwrap(),
        "--key-file-poll",
        "off",
    ])
    .await;
    std::fs::write(&keys, "carol:carol-secret\n").unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        infer_as(&server, Some("alice-secret")).await.status(),
        200,
        "re-read without a SIGHUP"
    );

    server.signal("HUP");
    server.wait_for_logs("secret file re-read", 1).await;
    assert_eq!(infer_as(&server, Some("alice-secret")).await.status(), 401);
    assert_eq!(infer_as(&server, Some("carol-secret")).await.status(), 200);
    server.wait_ready().await;
}
