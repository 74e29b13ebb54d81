//! The Batch API as an `openai` SDK user drives it, on a real spawned server with a tiny model:
//! files and batches, output and error files, bad input, `kill -9` and restart, webhooks (and
//! receivers that fail or hang), and two replicas sharing one real Redis.

mod api;
mod cli;
mod crash;
mod redis;
mod webhooks;

use std::{collections::BTreeMap, path::Path, time::Duration};

use serde_json::{json, Value};

use crate::common::{self, TestServer};

/// The name the tiny model is served under in these tests.
pub const MODEL: &str = "tiny";

/// One embeddings request line.
pub fn line(custom_id: &str, input: &str) -> String {
    json!({
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/embeddings",
        "body": {"model": MODEL, "input": input},
    })
    .to_string()
}

/// `n` valid request lines `req-0` … with short distinct texts.
pub fn lines(n: usize) -> String {
    (0..n)
        .map(|i| line(&format!("req-{i}"), &text(i)))
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// A short text made of the tiny model's vocabulary.
pub fn text(i: usize) -> String {
    format!("item {i} abc")
}

/// A server on a fresh tiny model in `dir/model` with its state (and batches) in `dir/state`.
pub fn spawn_in(dir: &Path, extra: &[&str]) -> TestServer {
    spawn_with(dir, &dir.join("state"), extra)
}

/// A server on the tiny model in `models/model` (written once) with state in `state`.
pub fn spawn_with(models: &Path, state: &Path, extra: &[&str]) -> TestServer {
    let model = models.join("model");
    if !model.join("config.json").exists() {
        common::tiny_model::write(&model);
    }
    let mut args = vec![
        "--model-name",
        MODEL,
        "--state-dir",
        state.to_str().unwrap(),
        "--admin-listen",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    common::spawn(&model, &args)
}

pub async fn ready_in(dir: &Path, extra: &[&str]) -> TestServer {
    let mut server = spawn_in(dir, extra);
    server.wait_ready().await;
    server
}

/// `POST /v1/files` with `content` as the file and `purpose`.
pub async fn upload(server: &TestServer, content: &str, purpose: &str) -> (u16, Value) {
    let form = reqwest::multipart::Form::new()
        .text("purpose", purpose.to_string())
        .part(
            "file",
            reqwest::multipart::Part::bytes(content.as_bytes().to_vec()).file_name("input.jsonl"),
        );
    post_form(server, form).await
}

/// `POST /v1/files` with `form` as the body.
pub async fn post_form(server: &TestServer, form: reqwest::multipart::Form) -> (u16, Value) {
    let r = server
        .client
        .post(server.url("/v1/files"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Uploads `content` and creates a batch over it; returns the batch.
pub async fn submit(server: &TestServer, content: &str) -> Value {
    submit_with(server, content, "24h").await
}

pub async fn submit_with(server: &TestServer, content: &str, window: &str) -> Value {
    let (status, file) = upload(server, content, "batch").await;
    assert_eq!(status, 200, "{file}");
    let (status, batch) = server
        .post_json(
            "/v1/batches",
            json!({"input_file_id": file["id"], "endpoint": "/v1/embeddings",
                   "completion_window": window, "metadata": {"job": "test"}}),
        )
        .await;
    assert_eq!(status, 200, "{batch}");
    batch
}

pub async fn batch(server: &TestServer, id: &str) -> Value {
    let (status, body) = server.get_json(&format!("/v1/batches/{id}")).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Polls until the batch is in a terminal status (or `until` holds); returns it.
pub async fn wait_until(server: &TestServer, id: &str, until: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..1200 {
        let b = batch(server, id).await;
        if until(&b) {
            return b;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("batch {id} never got there: {}", batch(server, id).await);
}

pub fn ended(b: &Value) -> bool {
    matches!(
        b["status"].as_str(),
        Some("completed" | "failed" | "cancelled" | "expired")
    )
}

pub async fn wait_ended(server: &TestServer, id: &str) -> Value {
    wait_until(server, id, ended).await
}

/// Requests done so far (completed + failed).
pub fn done(b: &Value) -> u64 {
    let counts = &b["request_counts"];
    counts["completed"].as_u64().unwrap() + counts["failed"].as_u64().unwrap()
}

/// The lines of file `id`, parsed.
pub async fn content(server: &TestServer, id: &Value) -> Vec<Value> {
    let id = id.as_str().expect("a file id");
    let r = server
        .client
        .get(server.url(&format!("/v1/files/{id}/content")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.text()
        .await
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("output lines are JSON"))
        .collect()
}

/// Output and error lines by `custom_id`; panics on a `custom_id` answered twice. The error
/// lines of repeated `custom_id`s (`duplicate_custom_id`: the later lines of an input that
/// reuses one) are left out: they answer a line, not the request its first line made.
pub async fn answers(server: &TestServer, b: &Value) -> BTreeMap<String, Value> {
    let mut all = Vec::new();
    for field in ["output_file_id", "error_file_id"] {
        if !b[field].is_null() {
            all.extend(content(server, &b[field]).await);
        }
    }
    let mut by_id = BTreeMap::new();
    for line in all {
        if line["error"]["code"] == "duplicate_custom_id" {
            continue;
        }
        let id = line["custom_id"].as_str().unwrap_or("<none>").to_string();
        assert!(
            by_id.insert(id.clone(), line).is_none() || id == "<none>",
            "custom_id {id} answered twice"
        );
    }
    by_id
}

/// The embedding of an output line (`response.body.data[0].embedding`).
pub fn embedding(line: &Value) -> Vec<f32> {
    line["response"]["body"]["data"][0]["embedding"]
        .as_array()
        .expect("an embedding")
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}
