//! Recommendations from the outside: build an index with the CLI, serve it, query it, write
//! to it, crash it, and refuse indexes that do not belong to the served model.

use std::{
    collections::HashMap,
    path::Path,
    process::Command,
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::common::{cosine, spawn, tiny_model_dir, vectors, TestServer};
use serde_json::{json, Value};

pub(crate) const KEY: &str = "test-secret";
const SECTIONS: [&str; 3] = ["games", "web", "libs"];

/// A small catalog: pseudo-random texts, two identical "twins", sections in rotation.
pub(crate) fn write_catalog(path: &Path) -> Vec<(String, String, String)> {
    let words = [
        "strategy", "game", "web", "server", "library", "python", "rust", "audio", "video",
        "editor", "kernel", "driver", "font", "theme", "chess", "network",
    ];
    let mut items: Vec<(String, String, String)> = (0..40)
        .map(|i| {
            let text = (0..4)
                .map(|j| words[(i * 7 + j * 5 + i / 3) % words.len()])
                .collect::<Vec<_>>()
                .join(" ");
            (format!("item-{i}"), text, SECTIONS[i % 3].to_string())
        })
        .collect();
    items.push(("twin-a".into(), "chess engine".into(), "games".into()));
    items.push(("twin-b".into(), "chess engine".into(), "web".into()));
    let lines: Vec<String> = items
        .iter()
        .map(|(id, text, section)| json!({"id": id, "text": text, "section": section}).to_string())
        .collect();
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
    items
}

pub(crate) fn build_index(
    model: &Path,
    catalog: &Path,
    out: &Path,
    extra: &[&str],
) -> std::process::Output {
    Command::new(crate::common::inferd_bin())
        .args(["index", "build", "--model"])
        .arg(model)
        .arg("--catalog")
        .arg(catalog)
        .arg("--out")
        .arg(out)
        .args(extra)
        .env("INFERD_THREADS", "1")
        .output()
        .unwrap()
}

pub(crate) struct Fixture {
    pub(crate) model: tempfile::TempDir,
    pub(crate) dir: tempfile::TempDir,
    items: Vec<(String, String, String)>,
}

impl Fixture {
    pub(crate) fn new(extra: &[&str]) -> Self {
        let model = tiny_model_dir();
        let dir = tempfile::tempdir().unwrap();
        let items = write_catalog(&dir.path().join("catalog.jsonl"));
        let out = build_index(
            model.path(),
            &dir.path().join("catalog.jsonl"),
            &dir.path().join("index"),
            extra,
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("42 items"), "{stdout}");
        std::fs::write(dir.path().join("keys"), format!("tester:{KEY}\n")).unwrap();
        Self { model, dir, items }
    }

    fn index_arg(&self) -> String {
        format!("catalog={}", self.dir.path().join("index").display())
    }

    pub(crate) async fn serve(&self, extra: &[&str]) -> TestServer {
        let index = self.index_arg();
        let keys = self.dir.path().join("keys");
        let mut args = vec!["--index", &index, "--api-key-file", keys.to_str().unwrap()];
        args.extend_from_slice(extra);
        let mut server = spawn(self.model.path(), &args);
        server.wait_ready().await;
        server
    }
}

pub(crate) async fn call(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = server
        .client
        .request(method, server.url(path))
        .bearer_auth(KEY);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

pub(crate) async fn recommend(server: &TestServer, body: Value) -> (u16, Value) {
    call(server, reqwest::Method::POST, "/recommend", Some(body)).await
}

pub(crate) fn ids(body: &Value) -> Vec<String> {
    body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items in {body}"))
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn text_item_and_history_queries_rank_like_brute_force() {
    let fx = Fixture::new(&[]);
    let server = fx.serve(&[]).await;

    // Reference: embed every catalog text with /infer and rank by cosine by hand.
    let texts: Vec<&str> = fx.items.iter().map(|(_, t, _)| t.as_str()).collect();
    let (status, body) = call(
        &server,
        reqwest::Method::POST,
        "/infer",
        Some(json!({"inputs": texts})),
    )
    .await;
    assert_eq!(status, 200);
    let catalog = vectors(&body);
    let (_, body) = call(
        &server,
        reqwest::Method::POST,
        "/infer",
        Some(json!({"inputs": "rust web server"})),
    )
    .await;
    let query = &vectors(&body)[0];
    let mut want: Vec<(f32, &str)> = fx
        .items
        .iter()
        .zip(&catalog)
        .map(|((id, _, _), v)| (cosine(query, v), id.as_str()))
        .collect();
    want.sort_by(|a, b| b.0.total_cmp(&a.0));

    let (status, body) = recommend(&server, json!({"text": "rust web server", "k": 15})).await;
    assert_eq!(status, 200, "{body}");
    let got = body["items"].as_array().unwrap();
    assert_eq!(got.len(), 15);
    for (g, (score, id)) in got.iter().zip(&want) {
        // Ties (identical texts) may swap places; the scores must agree.
        assert!(
            (g["score"].as_f64().unwrap() as f32 - score).abs() < 1e-4,
            "{g} vs {id}"
        );
    }
    assert!(body["model"].is_string() && body["version"].is_string());
    assert_eq!(body["index"], "catalog");
    assert!(got[0]["metadata"]["section"].is_string());

    item_history_and_filter_queries(&server).await;
}

/// Item, history, filter and exclusion queries on the test catalog (any backend).
pub(crate) async fn item_history_and_filter_queries(server: &TestServer) {
    // Default k is 10; item queries exclude the item; its twin scores 1.
    let (_, body) = recommend(server, json!({"item_id": "twin-a"})).await;
    let got = ids(&body);
    assert_eq!(got.len(), 10);
    assert_eq!(got[0], "twin-b");
    assert!(!got.contains(&"twin-a".to_string()));
    assert!((body["items"][0]["score"].as_f64().unwrap() - 1.0).abs() < 1e-4);

    // History (plain and weighted) excludes the history.
    for history in [
        json!(["twin-a", "item-3"]),
        json!([{"id": "twin-a", "weight": 5}, "item-3"]),
    ] {
        let (status, body) = recommend(server, json!({"history": history, "k": 5})).await;
        assert_eq!(status, 200, "{body}");
        let got = ids(&body);
        assert!(!got.contains(&"twin-a".into()) && !got.contains(&"item-3".into()));
    }
    let (_, body) = recommend(
        server,
        json!({"history": [{"id": "twin-a", "weight": 5}, "item-3"], "k": 1}),
    )
    .await;
    assert_eq!(ids(&body), ["twin-b"]);

    // Filters and exclusions.
    let (_, body) = recommend(
        server,
        json!({"text": "chess engine", "filter": {"section": "games"}, "k": 20}),
    )
    .await;
    assert!(body["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["metadata"]["section"] == "games"));
    assert_eq!(ids(&body)[0], "twin-a");
    let (_, body) = recommend(server, json!({"text": "chess engine", "filter": {"section": ["web", "libs"]}, "exclude": ["twin-b"]})).await;
    let got = ids(&body);
    assert!(!got.contains(&"twin-b".into()) && !got.contains(&"twin-a".into()));
    let (_, body) = recommend(
        server,
        json!({"text": "chess", "filter": {"section": "nope"}}),
    )
    .await;
    assert_eq!(ids(&body).len(), 0);
}

/// Request bodies `/recommend` must refuse with 422 whatever the backend (with
/// `--recommend-max-k 50`).
pub(crate) fn bad_queries() -> Vec<Value> {
    vec![
        json!({}),
        json!({"text": "a", "item_id": "item-1"}),
        json!({"text": ""}),
        json!({"text": "a", "k": 0}),
        json!({"text": "a", "k": 51}),
        json!({"text": "a", "k": -1}),
        json!({"text": 5}),
        json!({"history": []}),
        json!({"history": [{"id": "item-1", "weight": -2}]}),
        json!({"history": "item-1"}),
        json!({"text": "a", "filter": {"section": {"x": 1}}}),
        json!({"text": "a", "filter": "games"}),
        json!({"text": "a", "exclude": "item-1"}),
        json!({"text": "a", "colour": "blue"}),
        json!({"text": "a", "ef_search": 0}),
        json!({"text": "a", "ef_search": 2049}),
        json!({"text": "a", "ef_search": -5}),
    ]
}

#[tokio::test]
async fn bad_queries_are_422_and_unknown_items_404() {
    let fx = Fixture::new(&[]);
    let server = fx.serve(&["--recommend-max-k", "50"]).await;
    let bad = bad_queries();
    for body in bad {
        let (status, reply) = recommend(&server, body.clone()).await;
        assert_eq!(status, 422, "{body} -> {reply}");
        assert_eq!(reply["code"], "invalid_input");
    }
    let (status, reply) = recommend(&server, json!({"item_id": "nope"})).await;
    assert_eq!(
        (status, reply["code"].as_str()),
        (404, Some("unknown_item"))
    );
    let (status, reply) = recommend(&server, json!({"history": ["item-1", "gone"]})).await;
    assert_eq!(
        (status, reply["code"].as_str()),
        (404, Some("unknown_item"))
    );
    assert!(reply["error"].as_str().unwrap().contains("gone"));
    let (status, reply) = recommend(&server, json!({"text": "a", "index": "other"})).await;
    assert_eq!(
        (status, reply["code"].as_str()),
        (404, Some("unknown_index"))
    );
    // Recommendations need a key like /infer.
    let r = server
        .client
        .post(server.url("/recommend"))
        .json(&json!({"text": "a"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn item_writes_need_a_key_and_show_up_at_once() {
    let fx = Fixture::new(&[]);
    let server = fx.serve(&[]).await;
    let put = json!({"text": "quantum chess engine", "metadata": {"section": "science"}});
    let r = server
        .client
        .put(server.url("/items/new-1"))
        .json(&put)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let (status, body) = call(
        &server,
        reqwest::Method::PUT,
        "/items/new-1",
        Some(put.clone()),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["created"], true);
    let (status, _) = call(&server, reqwest::Method::PUT, "/items/new-1", Some(put)).await;
    assert_eq!(status, 200);
    let (status, body) = call(&server, reqwest::Method::GET, "/items/new-1", None).await;
    assert_eq!(
        (status, &body["metadata"]["section"]),
        (200, &json!("science"))
    );
    let (_, body) = recommend(&server, json!({"text": "quantum chess engine", "k": 1})).await;
    assert_eq!(ids(&body), ["new-1"]);
    let (_, body) = recommend(
        &server,
        json!({"text": "x", "filter": {"section": "science"}}),
    )
    .await;
    assert_eq!(ids(&body), ["new-1"]);

    let (status, _) = call(&server, reqwest::Method::DELETE, "/items/new-1", None).await;
    assert_eq!(status, 200);
    let (status, body) = call(&server, reqwest::Method::GET, "/items/new-1", None).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("unknown_item")));
    let (status, _) = call(&server, reqwest::Method::DELETE, "/items/new-1", None).await;
    assert_eq!(status, 404);
    let (status, _) = call(&server, reqwest::Method::DELETE, "/items/item-0", None).await;
    assert_eq!(status, 200);
    let (_, body) = recommend(&server, json!({"text": "x", "k": 50})).await;
    assert_eq!(ids(&body).len(), 41);
    let (status, body) = call(
        &server,
        reqwest::Method::PUT,
        "/items/x",
        Some(json!({"text": " "})),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("invalid_input"))
    );
    let (status, body) = call(
        &server,
        reqwest::Method::POST,
        "/indexes/catalog/compact",
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["items"], 41);

    // Without --api-key-file, writes are disabled outright.
    let mut open = spawn(fx.model.path(), &["--index", &fx.index_arg()]);
    open.wait_ready().await;
    let r = open
        .client
        .put(open.url("/items/y"))
        .json(&json!({"text": "y"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let (status, _) = open
        .post_json("/recommend", json!({"item_id": "item-1"}))
        .await;
    assert_eq!(status, 200);
}

/// The state an id must have after the kill and restart.
#[derive(Clone, Debug)]
enum Expect {
    /// Its upsert (with this section) was acknowledged.
    Present(String),
    /// Its delete was acknowledged.
    Gone,
    /// Its upsert was acknowledged and a delete was in flight at the kill.
    Either(String),
}

#[tokio::test]
async fn every_acknowledged_write_survives_a_kill() {
    let fx = Fixture::new(&[]);
    // A low compaction threshold makes compactions happen mid-stream too.
    let mut server = fx.serve(&["--index-compact-after", "7"]).await;
    // What each id must look like after the restart. A write the kill cut off may or may not
    // have landed (it was never acknowledged), so its id may show either state.
    let acked: Arc<Mutex<HashMap<String, Expect>>> = Arc::default();
    let server_url = server.url("");
    let mut writers = Vec::new();
    for w in 0..4 {
        let acked = Arc::clone(&acked);
        let base = server_url.clone();
        writers.push(tokio::spawn(async move {
            let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
            for n in 0..1000 {
                let id = format!("w{w}-{n}");
                let section = format!("s{n}");
                let body = json!({"text": format!("writer {w} item {n}"), "metadata": {"section": section}});
                let Ok(r) = client.put(format!("{base}/items/{id}")).bearer_auth(KEY).json(&body).send().await else { return };
                if !r.status().is_success() { return; }
                acked.lock().unwrap().insert(id, Expect::Present(section));
                if n % 5 == 4 {
                    let old = format!("w{w}-{}", n - 2);
                    {
                        let mut acked = acked.lock().unwrap();
                        if let Some(Expect::Present(section)) = acked.get(&old).cloned() {
                            acked.insert(old.clone(), Expect::Either(section));
                        }
                    }
                    let Ok(r) = client.delete(format!("{base}/items/{old}")).bearer_auth(KEY).send().await else { return };
                    if !r.status().is_success() { return; }
                    acked.lock().unwrap().insert(old, Expect::Gone);
                }
            }
        }));
    }
    while acked.lock().unwrap().len() < 60 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.sigkill();
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 60);

    let server = fx.serve(&[]).await;
    for (id, expect) in &acked {
        let (status, body) =
            call(&server, reqwest::Method::GET, &format!("/items/{id}"), None).await;
        match expect {
            Expect::Present(section) => {
                assert_eq!(status, 200, "acknowledged write of {id} lost: {body}");
                assert_eq!(body["metadata"]["section"], json!(section));
            }
            Expect::Gone => assert_eq!(status, 404, "acknowledged delete of {id} lost"),
            Expect::Either(section) if status == 200 => {
                assert_eq!(body["metadata"]["section"], json!(section), "{id}");
            }
            Expect::Either(_) => assert_eq!(status, 404, "{id}: {body}"),
        }
    }
    // The catalog is intact too.
    let (status, _) = call(&server, reqwest::Method::GET, "/items/item-7", None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn indexes_from_other_models_or_half_builds_are_refused() {
    let fx = Fixture::new(&[]);
    let other_model = tiny_model_dir();
    let mut server = spawn(other_model.path(), &["--index", &fx.index_arg()]);
    assert!(!server.wait_exit(Duration::from_secs(60)).await);
    assert!(server.logs().contains("must not mix"), "{}", server.logs());

    // A directory a build never finished (no CURRENT) does not load.
    let half = tempfile::tempdir().unwrap();
    std::fs::create_dir(half.path().join("gen-1.tmp")).unwrap();
    let arg = format!("half={}", half.path().display());
    let mut server = spawn(fx.model.path(), &["--index", &arg]);
    assert!(!server.wait_exit(Duration::from_secs(60)).await);
    assert!(server.logs().contains("no CURRENT"), "{}", server.logs());

    // The build refuses a bad catalog and leaves no index behind.
    let bad = fx.dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"id\": \"a\", \"text\": \"x\"}\nnot json\n").unwrap();
    let out = fx.dir.path().join("bad-index");
    let result = build_index(fx.model.path(), &bad, &out, &[]);
    assert!(!result.status.success());
    assert!(String::from_utf8_lossy(&result.stderr).contains("line 2"));
    assert!(!out.join("CURRENT").exists());
}

#[tokio::test]
async fn approximate_indexes_answer_and_can_be_forced_exact() {
    let fx = Fixture::new(&["--search", "hnsw"]);
    let server = fx.serve(&[]).await;
    let (status, body) = call(&server, reqwest::Method::GET, "/indexes", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["indexes"][0]["search"], "hnsw");
    let (_, exact) = recommend(
        &server,
        json!({"text": "chess engine", "k": 5, "exact": true}),
    )
    .await;
    let (_, approx) = recommend(&server, json!({"text": "chess engine", "k": 5})).await;
    // 42 items: the graph finds the exact answer (or the search fell back to exact); items
    // with identical texts tie, so compare scores.
    let scores = |body: &Value| -> Vec<f64> {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["score"].as_f64().unwrap())
            .collect()
    };
    assert_eq!(ids(&exact)[..2], ids(&approx)[..2]);
    for (e, a) in scores(&exact).iter().zip(scores(&approx)) {
        assert!((e - a).abs() < 1e-5, "{exact} vs {approx}");
    }
    // A wider graph search per request finds the same here.
    let (status, wide) = recommend(
        &server,
        json!({"text": "chess engine", "k": 5, "ef_search": 2048}),
    )
    .await;
    assert_eq!(status, 200, "{wide}");
    for (e, a) in scores(&exact).iter().zip(scores(&wide)) {
        assert!((e - a).abs() < 1e-5, "{exact} vs {wide}");
    }
}
