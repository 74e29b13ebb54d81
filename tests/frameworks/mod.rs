//! What RAG frameworks send with their default settings, against a spawned server: OpenAI token
//! arrays as tiktoken ids (LangChain's `OpenAIEmbeddings`), over-long chunks cut on every route
//! (`--auto-truncate`), library default model names (aliases, hub ids), batch sizes of 2,048,
//! the Inference API's `POST /` tasks, and an OpenAPI document generators accept
//! ([`openapi`]).

mod openapi;

use serde_json::{json, Value};

use crate::common::{cosine, floats, spawn_tiny, spawn_tiny_with, tiny_model, TestServer};

/// "hello world" as tiktoken's cl100k_base encodes it (what LangChain sends for that text).
const HELLO_WORLD_CL100K: [u32; 2] = [15339, 1917];

async fn model_name(server: &TestServer) -> String {
    let (_, info) = server.get_json("/info").await;
    info["model"].as_str().unwrap().to_string()
}

/// `/v1/embeddings` of `input`: status and body.
async fn openai(server: &TestServer, body: Value) -> (u16, Value) {
    server.post_json("/v1/embeddings", body).await
}

fn first_vector(body: &Value) -> Vec<f32> {
    floats(&body["data"][0]["embedding"])
}

fn assert_same(a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len());
    assert!(cosine(a, b) > 0.99999, "{a:?} != {b:?}");
}

#[tokio::test]
async fn openai_token_arrays_are_cl100k_ids_by_default() {
    let server = spawn_tiny().await;
    let model = model_name(&server).await;
    let (status, text) = openai(&server, json!({"model": model, "input": "hello world"})).await;
    assert_eq!(status, 200, "{text}");

    let (status, ids) = openai(
        &server,
        json!({"model": model, "input": HELLO_WORLD_CL100K}),
    )
    .await;
    assert_eq!(status, 200, "{ids}");
    assert_same(&first_vector(&ids), &first_vector(&text));
    // The model's tokens are counted, not tiktoken's two.
    assert_eq!(
        ids["usage"]["prompt_tokens"],
        text["usage"]["prompt_tokens"]
    );
    assert_eq!(ids["usage"]["prompt_tokens"], 12);

    // A batch of arrays, as LangChain sends it; `<|endoftext|>` (100257) is dropped.
    let (status, batch) = openai(
        &server,
        json!({"model": model, "input": [HELLO_WORLD_CL100K, [100257, 15339, 1917]]}),
    )
    .await;
    assert_eq!(status, 200, "{batch}");
    for item in batch["data"].as_array().unwrap() {
        assert_same(&floats(&item["embedding"]), &first_vector(&text));
    }

    // Ids cl100k_base does not define are a clear 422, not a silent wrong vector.
    let (status, body) = openai(
        &server,
        json!({"model": model, "input": [[15339], [100300]]}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("input[1]") && message.contains("cl100k_base"),
        "{message}"
    );
}

#[tokio::test]
async fn openai_token_arrays_can_be_refused() {
    let server = spawn_tiny_with(&["--openai-token-ids", "reject"]).await;
    let model = model_name(&server).await;
    let (status, body) = openai(
        &server,
        json!({"model": model, "input": HELLO_WORLD_CL100K}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "unsupported_parameter");
    assert_eq!(body["error"]["param"], "input");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("send the text"));
    let (status, body) = openai(&server, json!({"model": model, "input": "hello world"})).await;
    assert_eq!(status, 200, "{body}");
}

/// A long text on each embedding route, with `extra` fields merged into the body (for KServe,
/// into `parameters`): the statuses in route order.
async fn long_input_statuses(server: &TestServer, extra: Value) -> Vec<(String, u16, Value)> {
    let model = model_name(server).await;
    let long = "word ".repeat(40); // 160 pieces; the model keeps 32
    let merge = |mut body: Value| {
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let kserve = json!({
        "inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [long]}],
        "parameters": extra,
    });
    let requests = [
        ("/infer".to_string(), merge(json!({"inputs": long}))),
        ("/embed".into(), merge(json!({"inputs": long}))),
        ("/".into(), merge(json!({"inputs": long}))),
        (
            "/v1/embeddings".into(),
            merge(json!({"input": long, "model": model})),
        ),
        (format!("/v2/models/{model}/infer"), kserve),
    ];
    let mut out = Vec::new();
    for (path, body) in requests {
        let (status, body) = server.post_json(&path, body).await;
        out.push((path, status, body));
    }
    out
}

#[tokio::test]
async fn over_long_inputs_are_cut_on_every_route_unless_the_request_says_not_to() {
    let server = spawn_tiny().await;
    for (path, status, body) in long_input_statuses(&server, json!({})).await {
        assert_eq!(status, 200, "{path}: {body}");
    }
    for (path, status, body) in long_input_statuses(&server, json!({"truncate": false})).await {
        assert_eq!(status, 413, "{path}: {body}");
        let text = body.to_string();
        assert!(
            text.contains("more than the model's limit"),
            "{path}: {text}"
        );
    }
    // OpenAI takes TEI's `truncation_direction` too.
    let model = model_name(&server).await;
    let long: Vec<String> = (0..45)
        .map(|i| format!("{}", (b'a' + (i % 26) as u8) as char))
        .collect();
    let long = long.join(" ");
    for direction in ["right", "left"] {
        let (_, tei) = server
            .post_json(
                "/embed",
                json!({"inputs": long, "truncation_direction": direction}),
            )
            .await;
        let body = json!({"input": long, "model": model, "truncation_direction": direction});
        let (status, oa) = openai(&server, body).await;
        assert_eq!(status, 200, "{oa}");
        assert_same(&first_vector(&oa), &floats(&tei[0]));
    }
}

#[tokio::test]
async fn auto_truncate_false_refuses_unless_the_request_asks_and_says_what_to_change() {
    let server = spawn_tiny_with(&["--auto-truncate", "false"]).await;
    for (path, status, body) in long_input_statuses(&server, json!({})).await {
        assert_eq!(status, 413, "{path}: {body}");
        let text = body.to_string();
        assert!(
            text.contains(r#"send `\"truncate\": true`"#),
            "{path}: {text}"
        );
        assert!(text.contains("--auto-truncate"), "{path}: {text}");
    }
    for (path, status, body) in long_input_statuses(&server, json!({"truncate": true})).await {
        assert_eq!(status, 200, "{path}: {body}");
    }
    let (_, info) = server.get_json("/info").await;
    assert_eq!(info["auto_truncate"], false);
}

/// A manifest naming a hub repo, for a tiny model in `dir`.
fn hub_manifest(dir: &std::path::Path) -> std::path::PathBuf {
    tiny_model::write(&dir.join("weights"));
    let sha = inferd::model::manifest::sha256_file(&dir.join("weights/model.safetensors")).unwrap();
    let text = format!(
        "name = \"tiny\"\nversion = \"v1\"\n[source]\nrepo = \"org/tiny-embedder\"\n\
         revision = \"main\"\nlocal_dir = \"weights\"\n[model]\ndimensions = {}\n\
         max_seq_length = {}\npooling = \"mean\"\nnormalize = true\n\
         [sha256]\n\"model.safetensors\" = \"{sha}\"\n",
        tiny_model::HIDDEN,
        tiny_model::MAX_SEQ_LENGTH
    );
    let path = dir.join("tiny.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn models_answer_to_aliases_and_hub_ids_and_unknown_names_list_them() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = hub_manifest(dir.path());
    let mut server = crate::common::spawn(
        &manifest,
        &[
            "--model-alias",
            "text-embedding-3-small,text-embedding-ada-002",
        ],
    );
    server.wait_ready().await;
    let (status, reference) = server.infer(json!({"inputs": "a b"})).await;
    assert_eq!(status, 200, "{reference}");
    let want = floats(&reference["embeddings"][0]);

    for name in [
        "tiny",
        "tiny@v1",
        "org/tiny-embedder",
        "text-embedding-3-small",
        "text-embedding-ada-002",
    ] {
        let (status, body) = openai(&server, json!({"model": name, "input": "a b"})).await;
        assert_eq!(status, 200, "{name}: {body}");
        assert_same(&first_vector(&body), &want);
        let (status, body) = server.infer(json!({"model": name, "inputs": "a b"})).await;
        assert_eq!(status, 200, "{name}: {body}");
    }
    let (status, body) = openai(
        &server,
        json!({"model": "org/tiny-embedder@v1", "input": "a"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let (status, list) = server.get_json("/v1/models").await;
    assert_eq!(status, 200, "{list}");
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    for name in [
        "tiny",
        "tiny@v1",
        "org/tiny-embedder",
        "text-embedding-3-small",
    ] {
        assert!(ids.contains(&name), "{name} not in {ids:?}");
    }
    assert!(list["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["model"] == "tiny"));
    let (status, one) = server.get_json("/v1/models/org%2Ftiny-embedder").await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["id"], "org/tiny-embedder");

    let (status, body) = openai(&server, json!({"model": "gpt-4", "input": "a"})).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "model_not_found");
    let message = body["error"]["message"].as_str().unwrap();
    for name in [
        "tiny",
        "tiny@v1",
        "org/tiny-embedder",
        "text-embedding-ada-002",
    ] {
        assert!(message.contains(name), "{name} not in {message}");
    }
    let (status, _) = server.get_json("/v1/models/gpt-4").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_request_may_carry_2048_inputs_within_its_token_budget() {
    let server = spawn_tiny_with(&["--max-client-tokens", "30000"]).await;
    let model = model_name(&server).await;
    let inputs = vec!["a b"; 2048]; // 4 tokens each: 8,192 in all
    let (status, body) = openai(&server, json!({"model": model, "input": inputs})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"].as_array().unwrap().len(), 2048);

    let (status, body) = openai(&server, json!({"model": model, "input": vec!["a b"; 2049]})).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("at most 2048"));

    // 1,000 inputs of 32 tokens (after truncation): 32,000 > 30,000.
    let long = "word ".repeat(40);
    let (status, body) = server
        .infer(json!({"inputs": vec![long.as_str(); 1000]}))
        .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["code"], "too_many_tokens");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("--max-client-tokens"),
        "{body}"
    );
    let (status, body) = server
        .infer(json!({"inputs": vec![long.as_str(); 900]}))
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn post_root_speaks_the_inference_api_and_get_root_shows_the_docs() {
    let server = spawn_tiny().await;
    let (_, reference) = server
        .infer(json!({"inputs": ["a b", "c d", "a b c"]}))
        .await;
    let want: Vec<Vec<f32>> = reference["embeddings"]
        .as_array()
        .unwrap()
        .iter()
        .map(floats)
        .collect();

    // feature-extraction, options at the top level (TEI) or under `parameters` (Inference API).
    for body in [
        json!({"inputs": ["a b", "c d"]}),
        json!({"inputs": ["a b", "c d"], "parameters": {"normalize": true, "truncate": true}}),
    ] {
        let (status, got) = server.post_json("/", body).await;
        assert_eq!(status, 200, "{got}");
        assert_same(&floats(&got[0]), &want[0]);
        assert_same(&floats(&got[1]), &want[1]);
    }
    // sentence-similarity: the cosine of each sentence to the source.
    let (status, scores) = server
        .post_json(
            "/",
            json!({"inputs": {"source_sentence": "a b", "sentences": ["c d", "a b c"]}}),
        )
        .await;
    assert_eq!(status, 200, "{scores}");
    let scores = floats(&scores);
    assert_eq!(scores.len(), 2);
    assert!(
        (scores[0] - cosine(&want[0], &want[1])).abs() < 1e-5,
        "{scores:?}"
    );
    assert!(
        (scores[1] - cosine(&want[0], &want[2])).abs() < 1e-5,
        "{scores:?}"
    );

    // Tasks an embedding model cannot do are a clear 400, in TEI's error shape.
    for body in [
        json!({"inputs": "great movie", "parameters": {"top_k": 2}}),
        json!({"inputs": "great movie", "parameters": {"function_to_apply": "sigmoid"}}),
        json!({"inputs": [["what is rust", "a language"]]}),
        json!({"inputs": {"query": "q", "texts": ["a"]}}),
        // huggingface_hub's text_classification("great movie") with no options.
        json!({"inputs": "great movie", "parameters": {}}),
    ] {
        let (status, err) = server.post_json("/", body.clone()).await;
        assert_eq!(status, 400, "{body}: {err}");
        assert_eq!(err["code"], "unsupported_parameter");
        assert!(
            err["error"]
                .as_str()
                .unwrap()
                .contains("sentence-similarity"),
            "{err}"
        );
    }

    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_redirects.get(server.url("/")).send().await.unwrap();
    assert!(r.status().is_redirection(), "{}", r.status());
    assert_eq!(r.headers()["location"], "./docs");
    let page = server.client.get(server.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("inferd API"));
}
