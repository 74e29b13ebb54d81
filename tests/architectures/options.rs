//! `prompt_name` and Matryoshka `dimensions` on every dialect that has them, on the tiny XLM-R
//! (prompts `query` — its default — and `passage`, 64 dimensions, normalised).

use serde_json::{json, Value};

use super::serve;
use crate::common::{cosine, floats, vectors, TestServer};

fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}

async fn one(server: &TestServer, body: Value) -> Vec<f32> {
    let (status, got) = server.infer(body).await;
    assert_eq!(status, 200, "{got}");
    vectors(&got).remove(0)
}

#[tokio::test]
async fn prompts_and_dimensions_across_dialects() {
    let server = serve("xlm-roberta").await;
    let text = "A fast embedding server written in Rust";
    // The default prompt applies when none is named; naming it gives the same vector.
    let default = one(&server, json!({"inputs": text})).await;
    let query = one(&server, json!({"inputs": text, "prompt_name": "query"})).await;
    let passage = one(&server, json!({"inputs": text, "prompt_name": "passage"})).await;
    assert!(cosine(&default, &query) > 0.99999);
    assert!(
        cosine(&query, &passage) < 0.999,
        "prompts must change the vector"
    );

    // Unknown prompt: 422 naming the parameter and the model's prompts, on every dialect.
    let (status, body) = server
        .infer(json!({"inputs": text, "prompt_name": "doc"}))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("invalid_input"))
    );
    let msg = body["error"].as_str().unwrap();
    assert!(msg.contains("passage, query"), "{msg}");
    let (status, body) = server
        .post_json("/embed", json!({"inputs": text, "prompt_name": "doc"}))
        .await;
    assert_eq!(
        (status, body["error_type"].as_str()),
        (422, Some("Validation"))
    );
    let (status, body) = server
        .post_json(
            "/v1/embeddings",
            json!({"model": "xlm-roberta", "input": text, "prompt_name": "doc"}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["param"], "prompt_name");

    // Matryoshka: the first N values, renormalised.
    let (status, cut) = server
        .infer(json!({"inputs": text, "prompt_name": "passage", "dimensions": 16}))
        .await;
    assert_eq!(status, 200, "{cut}");
    assert_eq!(cut["dimensions"], 16);
    let cut = vectors(&cut).remove(0);
    assert_eq!(cut.len(), 16);
    assert!((norm(&cut) - 1.0).abs() < 1e-5);
    assert!(cosine(&cut, &passage[..16]) > 0.99999);
    let raw = one(
        &server,
        json!({"inputs": text, "prompt_name": "passage", "dimensions": 16, "normalize": false}),
    )
    .await;
    assert!(cosine(&raw, &cut) > 0.99999);

    // TEI /embed: prompt_name and dimensions together.
    let (status, tei) = server
        .post_json(
            "/embed",
            json!({"inputs": [text], "prompt_name": "passage", "dimensions": 16}),
        )
        .await;
    assert_eq!(status, 200, "{tei}");
    assert!(cosine(&floats(&tei[0]), &cut) > 0.99999);

    // OpenAI: dimensions (and the prompt_name extension).
    let (status, oa) = server
        .post_json(
            "/v1/embeddings",
            json!({"model": "xlm-roberta", "input": [text], "dimensions": 16, "prompt_name": "passage"}),
        )
        .await;
    assert_eq!(status, 200, "{oa}");
    assert!(cosine(&floats(&oa["data"][0]["embedding"]), &cut) > 0.99999);

    // Too many (or zero) dimensions: 422 naming `dimensions`.
    for (path, body) in [
        ("/infer", json!({"inputs": text, "dimensions": 65})),
        ("/infer", json!({"inputs": text, "dimensions": 0})),
        ("/embed", json!({"inputs": text, "dimensions": 65})),
        (
            "/v1/embeddings",
            json!({"model": "xlm-roberta", "input": text, "dimensions": 1000}),
        ),
    ] {
        let (status, got) = server.post_json(path, body).await;
        assert_eq!(status, 422, "{path}: {got}");
        assert!(got.to_string().contains("dimensions"), "{path}: {got}");
    }

    // TEI /tokenize prepends the prompt too.
    let count = |v: &Value| v[0].as_array().unwrap().len();
    let (_, plain) = server
        .post_json("/tokenize", json!({"inputs": text, "prompt_name": "query"}))
        .await;
    let (_, prompted) = server
        .post_json(
            "/tokenize",
            json!({"inputs": text, "prompt_name": "passage"}),
        )
        .await;
    assert!(
        count(&prompted) > 0 && count(&plain) > 0,
        "{plain} {prompted}"
    );
    assert_eq!(prompted[0][1]["text"], "passage");
}

#[tokio::test]
async fn info_and_models_describe_the_architecture() {
    let server = serve("xlm-roberta").await;
    let (_, info) = server.get_json("/info").await;
    assert_eq!(info["architecture"], "xlm-roberta");
    assert_eq!(info["pooling"], json!(["mean"]));
    assert_eq!(info["dimensions"], 64);
    assert_eq!(info["prompts"]["query"], "query: ");
    let (status, models) = server.get_json("/v1/models").await;
    assert_eq!(status, 200);
    let model = &models["data"][0];
    assert_eq!(model["architecture"], "xlm-roberta");
    assert_eq!(model["pooling"], json!(["mean"]));
    assert_eq!(model["dimensions"], 64);
    assert_eq!(model["prompts"]["passage"], "passage: ");
    assert_eq!(model["default_prompt_name"], "query");
}
