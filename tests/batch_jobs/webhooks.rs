//! Webhook receivers that answer 500 or never answer: deliveries are retried with the same
//! `webhook-id` within their budget, then given up (and counted), while batches, interactive
//! requests and the other receiver carry on.

use std::time::Duration;

use serde_json::json;

use super::*;
use crate::common::webhooks::{self, Answer, Receiver};

#[tokio::test]
async fn receivers_that_fail_or_hang_never_block_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let (good, failing, hanging) = (
        Receiver::start(Answer::Ok).await,
        Receiver::start(Answer::Fail).await,
        Receiver::start(Answer::Hang).await,
    );
    let secret = webhooks::secret_file(dir.path());
    let urls = format!("{},{},{}", hanging.url(), failing.url(), good.url());
    let server = ready_in(
        dir.path(),
        &[
            "--webhook-url",
            &urls,
            "--webhook-secret-file",
            secret.to_str().unwrap(),
            "--webhook-timeout",
            "500ms",
            "--webhook-max-attempts",
            "3",
            "--webhook-concurrency",
            "2",
        ],
    )
    .await;
    let first = submit(&server, &lines(5)).await;
    let second = submit(&server, &lines(5)).await;
    for b in [&first, &second] {
        let b = wait_ended(&server, b["id"].as_str().unwrap()).await;
        assert_eq!(b["status"], "completed");
    }
    // Interactive traffic is unaffected while deliveries hang and fail.
    for _ in 0..5 {
        let (status, _) = server.infer(json!({"inputs": ["hello"]})).await;
        assert_eq!(status, 200);
    }
    // The good receiver gets both events even though the others hold delivery slots.
    let got = good.wait_for(2).await;
    let events: std::collections::BTreeSet<_> = got
        .iter()
        .map(|d| d.event()["data"]["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(events.len(), 2);
    assert!(got.iter().all(|d| d.signed_with(webhooks::SECRET)));
    // The failing receiver saw each event three times, always with the same id.
    let retried = failing.wait_for(6).await;
    for event in &events {
        let ids: Vec<_> = retried
            .iter()
            .filter(|d| d.event()["data"]["id"] == event.as_str())
            .map(|d| d.id.clone())
            .collect();
        assert_eq!(ids.len(), 3, "{event}: {ids:?}");
        assert!(ids.windows(2).all(|w| w[0] == w[1]));
    }
    // Both bad receivers end up counted as failed deliveries.
    for _ in 0..200 {
        if server
            .metric("inferd_webhook_deliveries_total", &["outcome=\"failed\""])
            .await
            >= 4.0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        server
            .metric("inferd_webhook_deliveries_total", &["outcome=\"failed\""])
            .await,
        4.0
    );
    assert_eq!(
        server
            .metric(
                "inferd_webhook_deliveries_total",
                &["outcome=\"delivered\""]
            )
            .await,
        2.0
    );
    assert!(
        server
            .metric("inferd_webhook_attempts_total", &["outcome=\"error\""])
            .await
            >= 12.0
    );
    assert!(hanging.deliveries().len() >= 2);
}

/// `inferd serve` with `args`: whether it failed, and what it printed.
fn refused(dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_inferd"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--state-dir",
        ])
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(!out.status.success(), "inferd started with {args:?}");
    String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout)
}

#[test]
fn webhook_flags_are_checked_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let hook = "http://127.0.0.1:9/hooks";
    assert!(refused(dir.path(), &["--webhook-url", hook]).contains("--webhook-secret-file"));
    let bad = dir.path().join("bad.secret");
    std::fs::write(&bad, "not-a-secret").unwrap();
    let secret = [
        "--webhook-url",
        hook,
        "--webhook-secret-file",
        bad.to_str().unwrap(),
    ];
    assert!(refused(dir.path(), &secret).contains("whsec_"));
    assert!(refused(
        dir.path(),
        &["--webhook-url", "ftp://x", "--webhook-secret-file", "y"]
    )
    .contains("http://"));
    let redis = ["--jobs-redis", "redis://127.0.0.1:9"];
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_inferd"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(redis)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--batch-dir"));
}
