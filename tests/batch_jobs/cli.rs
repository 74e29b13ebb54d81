//! The operator CLI as an operator runs it: `inferd batch submit --wait` against a spawned
//! server downloads the same answers the API holds, `inferd batch status` prints the batch (and
//! fails clearly on an unknown id), and `inferd embed` runs the same file through the local
//! model, with the server's vectors.

use std::{path::Path, process::Output};

use serde_json::{json, Value};

use super::*;
use crate::common::{cosine, inferd_bin};

fn cli(args: &[&str]) -> Output {
    std::process::Command::new(inferd_bin())
        .args(args)
        .output()
        .expect("running inferd")
}

fn jsonl(path: &Path) -> BTreeMap<String, Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|l| (l["custom_id"].as_str().unwrap().to_string(), l))
        .collect()
}

#[tokio::test]
async fn batch_submit_waits_and_downloads_and_embed_runs_locally() {
    let dir = tempfile::tempdir().unwrap();
    let server = ready_in(dir.path(), &["--batch-chunk-requests", "4"]).await;
    let input = dir.path().join("requests.jsonl");
    let wrong = json!({"custom_id": "wrong-url", "method": "POST",
                       "url": "/v1/chat/completions", "body": {}});
    std::fs::write(&input, lines(10) + &wrong.to_string() + "\n").unwrap();
    let (input, base) = (input.to_str().unwrap(), server.url(""));
    let out = dir.path().join("out.jsonl");

    let run = cli(&[
        "batch",
        "submit",
        "--server",
        &base,
        "--input",
        input,
        "--wait",
        "--output",
        out.to_str().unwrap(),
        "--poll",
        "100ms",
    ]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    let printed: Value = serde_json::from_slice(&run.stdout).expect("the batch as JSON");
    assert_eq!(printed["status"], "completed");
    assert_eq!(
        printed["request_counts"],
        json!({"total": 11, "completed": 10, "failed": 1})
    );
    // Without a terminal, progress is log lines.
    assert!(stderr.contains("done=11 total=11"), "{stderr}");
    let output = jsonl(&out);
    assert_eq!(output.len(), 10);
    let errors = jsonl(&dir.path().join("out.errors.jsonl"));
    assert_eq!(errors["wrong-url"]["error"]["code"], "invalid_url");
    // The downloaded lines are the API's.
    let id = printed["id"].as_str().unwrap();
    assert_eq!(answers(&server, &batch(&server, id).await).await.len(), 11);

    let status = cli(&["batch", "status", "--server", &base, id]);
    assert!(status.status.success());
    let shown: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(shown["output_file_id"], printed["output_file_id"]);
    let missing = cli(&["batch", "status", "--server", &base, "batch_missing"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("404"));

    // The same file through the local model, no server: the same vectors.
    let local = dir.path().join("local.jsonl");
    let model = dir.path().join("model");
    let run = cli(&[
        "embed",
        "--model",
        model.to_str().unwrap(),
        "--model-name",
        MODEL,
        "--input",
        input,
        "--output",
        local.to_str().unwrap(),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let offline = jsonl(&local);
    assert_eq!(offline.len(), 10);
    for i in 0..10 {
        let id = format!("req-{i}");
        let similarity = cosine(&embedding(&offline[&id]), &embedding(&output[&id]));
        assert!(similarity > 0.99999, "{id}: {similarity}");
    }
    let local_errors = jsonl(&dir.path().join("local.errors.jsonl"));
    assert_eq!(local_errors["wrong-url"]["error"]["code"], "invalid_url");
}
