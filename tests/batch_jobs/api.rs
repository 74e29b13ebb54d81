//! Files and batches end to end, and every bad input answered 4xx in OpenAI's error shape.

use serde_json::{json, Value};

use super::*;
use crate::common::{cosine, spawn_tiny};

#[tokio::test]
async fn without_a_state_dir_the_batch_api_says_how_to_enable_it() {
    let server = spawn_tiny().await;
    for (status, body) in [
        upload(&server, &lines(1), "batch").await,
        server.get_json("/v1/batches").await,
        server.get_json("/v1/files/file-x").await,
    ] {
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"]["code"], "batch_api_disabled");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("--state-dir"), "{message}");
    }
}

#[tokio::test]
async fn a_batch_answers_every_request_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = ready_in(dir.path(), &["--batch-chunk-requests", "8"]).await;
    let mut input = lines(40);
    let bad = [
        r#"{"method": "POST", "url": "/v1/embeddings", "body": {"model": "tiny", "input": "x"}}"#.to_string(),
        line("req-3", "a repeated custom_id"),
        json!({"custom_id": "wrong-url", "method": "POST", "url": "/v1/chat/completions", "body": {}}).to_string(),
        json!({"custom_id": "no-input", "method": "POST", "url": "/v1/embeddings", "body": {"model": "tiny"}}).to_string(),
        json!({"custom_id": "too-long", "method": "POST", "url": "/v1/embeddings", "body": {"model": "tiny", "input": "word ".repeat(40), "truncate": false}}).to_string(),
        json!({"custom_id": "other-model", "method": "POST", "url": "/v1/embeddings", "body": {"model": "nope", "input": "x"}}).to_string(),
    ];
    input.push_str(&bad.join("\n"));
    let created = submit(&server, &input).await;
    assert_eq!(created["status"], "validating");
    assert_eq!(created["request_counts"]["total"], 46);
    assert_eq!(created["metadata"]["job"], "test");
    let id = created["id"].as_str().unwrap();
    let b = wait_ended(&server, id).await;
    assert_eq!(b["status"], "completed", "{b}");
    assert_eq!(
        b["request_counts"],
        json!({"total": 46, "completed": 40, "failed": 6})
    );
    assert!(b["model"].as_str().unwrap().starts_with("tiny@"), "{b}");
    for stamp in ["in_progress_at", "finalizing_at", "completed_at"] {
        assert!(b[stamp].is_u64(), "{stamp}: {b}");
    }
    assert!(b["usage"]["input_tokens"].as_u64().unwrap() > 40);

    let by_id = answers(&server, &b).await;
    assert_eq!(
        by_id.len(),
        45,
        "one line per custom_id, the line without one included"
    );
    // Every good line matches what /v1/embeddings answers for its text.
    let (status, direct) = server
        .post_json("/v1/embeddings", json!({"model": MODEL, "input": text(7)}))
        .await;
    assert_eq!(status, 200);
    let want: Vec<f32> = serde_json::from_value(direct["data"][0]["embedding"].clone()).unwrap();
    let got = embedding(&by_id["req-7"]);
    assert!(cosine(&want, &got) > 0.99999);
    assert_eq!(by_id["req-7"]["response"]["status_code"], 200);
    assert!(by_id["req-7"]["error"].is_null());
    // The bad lines, each with a reason.
    let code = |id: &str| {
        let l = &by_id[id];
        l["error"]["code"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| {
                format!(
                    "{}:{}",
                    l["response"]["status_code"], l["response"]["body"]["error"]["code"]
                )
            })
    };
    assert_eq!(code("<none>"), "missing_custom_id");
    assert_eq!(code("wrong-url"), "invalid_url");
    assert_eq!(code("no-input"), "422:\"invalid_input\"");
    assert_eq!(code("too-long"), "413:\"input_too_long\"");
    assert_eq!(code("other-model"), "model_mismatch");
    // req-3's first line ran; the repeat is the error (each custom_id once in each file).
    assert_eq!(by_id["req-3"]["response"]["status_code"], 200);
    let errors = content(&server, &b["error_file_id"]).await;
    assert!(errors
        .iter()
        .any(|l| l["error"]["code"] == "duplicate_custom_id"));
    // Output files are files: listed, described, deletable.
    let (status, out) = server
        .get_json(&format!(
            "/v1/files/{}",
            b["output_file_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        (status, out["purpose"].as_str()),
        (200, Some("batch_output"))
    );
    let (status, listed) = server.get_json("/v1/batches?limit=1").await;
    assert_eq!(status, 200);
    assert_eq!(listed["data"][0]["id"], id);
    assert_eq!(listed["has_more"], false);
    assert!(
        server
            .metric("inferd_batch_requests_total", &["outcome=\"completed\""])
            .await
            >= 40.0
    );
    // The gauge follows the sweeper (every second): wait for it to see the end.
    let mut completed = 0.0;
    for _ in 0..200 {
        completed = server
            .metric("inferd_batch_jobs", &["status=\"completed\""])
            .await;
        if completed == 1.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(completed, 1.0);
}

async fn error(server: &TestServer, r: (u16, Value)) -> (u16, String) {
    let (status, body) = r;
    let _ = server;
    let code = body["error"]["code"].as_str().unwrap_or("?").to_string();
    assert!(
        body["error"]["message"].is_string(),
        "OpenAI's error shape: {body}"
    );
    (status, code)
}

#[tokio::test]
async fn bad_input_is_refused_with_4xx_and_nothing_acknowledged_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let server = ready_in(
        dir.path(),
        &[
            "--batch-max-file-bytes",
            "4000",
            "--batch-max-requests",
            "20",
        ],
    )
    .await;
    let (status, kept) = upload(&server, &lines(3), "batch").await;
    assert_eq!(status, 200);
    let kept_id = kept["id"].as_str().unwrap().to_string();
    assert_eq!(kept["bytes"].as_u64(), Some(lines(3).len() as u64));

    let cases = [
        (
            "malformed JSONL",
            upload(
                &server,
                &format!("{}\n{{\"custom_id\": \"x\",", line("a", "b")),
                "batch",
            )
            .await,
            422,
        ),
        (
            "binary",
            upload(&server, "\u{0}\u{1}garbage", "batch").await,
            422,
        ),
        ("0 lines", upload(&server, "\n\n", "batch").await, 422),
        (
            "too many lines",
            upload(&server, &lines(21), "batch").await,
            422,
        ),
        (
            "oversize",
            upload(&server, &"x".repeat(5000), "batch").await,
            413,
        ),
        (
            "wrong purpose",
            upload(&server, &lines(1), "fine-tune").await,
            422,
        ),
    ];
    for (what, result, want) in cases {
        let (status, code) = error(&server, result).await;
        assert_eq!(status, want, "{what}: {code}");
        assert!(status < 500);
    }
    // A form without a file, and a body that is not a form.
    let form = reqwest::multipart::Form::new().text("purpose", "batch");
    assert_eq!(post_form(&server, form).await.0, 422);
    let (status, _) = server
        .post_json("/v1/files", json!({"purpose": "batch"}))
        .await;
    assert_eq!(status, 422);

    let create = |body: Value| async { server.post_json("/v1/batches", body).await };
    let base =
        json!({"input_file_id": kept_id, "endpoint": "/v1/embeddings", "completion_window": "24h"});
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    for (what, body, want, code) in [
        (
            "unknown endpoint",
            with("endpoint", json!("/v1/chat/completions")),
            422,
            "invalid_input",
        ),
        (
            "unknown file",
            with("input_file_id", json!("file-nope")),
            404,
            "resource_not_found",
        ),
        (
            "bad window",
            with("completion_window", json!("forever")),
            422,
            "invalid_input",
        ),
        (
            "unknown field",
            with("priority", json!(1)),
            422,
            "invalid_input",
        ),
        (
            "metadata too long",
            with("metadata", json!({"k": "v".repeat(600)})),
            422,
            "invalid_input",
        ),
    ] {
        let (status, c) = error(&server, create(body).await).await;
        assert_eq!((status, c.as_str()), (want, code), "{what}");
    }
    // Unknown ids.
    for path in [
        "/v1/batches/batch_nope",
        "/v1/files/file-nope",
        "/v1/files/file-nope/content",
    ] {
        let (status, c) = error(&server, server.get_json(path).await).await;
        assert_eq!((status, c.as_str()), (404, "resource_not_found"), "{path}");
    }
    let (status, _) = server
        .post_json("/v1/batches/batch_nope/cancel", json!({}))
        .await;
    assert_eq!(status, 404);
    let (status, c) = error(&server, server.get_json("/v1/batches?limit=0").await).await;
    assert_eq!((status, c.as_str()), (422, "invalid_input"));

    // A finished batch cannot be cancelled; a file a running batch reads cannot be deleted.
    let (status, b) = create(base.clone()).await;
    assert_eq!(status, 200, "{b}");
    let b = wait_ended(&server, b["id"].as_str().unwrap()).await;
    let cancel = format!("/v1/batches/{}/cancel", b["id"].as_str().unwrap());
    let (status, c) = error(&server, server.post_json(&cancel, json!({})).await).await;
    assert_eq!((status, c.as_str()), (409, "conflict"));

    // Nothing acknowledged was lost: the first upload is intact and runs.
    let r = server
        .client
        .get(server.url(&format!("/v1/files/{kept_id}/content")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), lines(3));
    let delete = server
        .client
        .delete(server.url(&format!("/v1/files/{kept_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), 200);
    let (status, _) = server.get_json(&format!("/v1/files/{kept_id}")).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_cancelled_batch_ends_with_what_it_ran_and_answers_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let server = ready_in(
        dir.path(),
        &[
            "--batch-chunk-requests",
            "4",
            "--debug-batch-delay",
            "30ms",
            "--batch-workers",
            "1",
        ],
    )
    .await;
    let b = submit(&server, &lines(60)).await;
    let id = b["id"].as_str().unwrap();
    wait_until(&server, id, |b| done(b) >= 8).await;
    let (status, cancelling) = server
        .post_json(&format!("/v1/batches/{id}/cancel"), json!({}))
        .await;
    assert_eq!(status, 200);
    assert!(matches!(
        cancelling["status"].as_str(),
        Some("cancelling" | "cancelled")
    ));
    let b = wait_ended(&server, id).await;
    assert_eq!(b["status"], "cancelled");
    assert!(b["cancelled_at"].is_u64() && b["cancelling_at"].is_u64());
    let by_id = answers(&server, &b).await;
    assert_eq!(by_id.len(), 60, "every request answered once, run or not");
    let unrun = by_id
        .values()
        .filter(|l| l["error"]["code"] == "batch_cancelled")
        .count();
    assert!(unrun > 0 && unrun < 52, "{unrun} never ran");
    assert_eq!(
        b["request_counts"]["failed"].as_u64().unwrap() as usize,
        unrun
    );
    // The service kept serving meanwhile.
    let (status, _) = server.infer(json!({"inputs": ["still here"]})).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_batch_past_its_window_expires_with_error_lines_for_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let server = ready_in(
        dir.path(),
        &[
            "--batch-chunk-requests",
            "2",
            "--debug-batch-delay",
            "200ms",
            "--batch-workers",
            "1",
        ],
    )
    .await;
    let b = submit_with(&server, &lines(40), "2s").await;
    let b = wait_ended(&server, b["id"].as_str().unwrap()).await;
    assert_eq!(b["status"], "expired", "{b}");
    assert!(b["expired_at"].is_u64());
    let by_id = answers(&server, &b).await;
    assert_eq!(by_id.len(), 40);
    assert!(by_id
        .values()
        .any(|l| l["error"]["code"] == "batch_expired"));
}
