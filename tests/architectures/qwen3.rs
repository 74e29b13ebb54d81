//! Qwen3 served as a bi-encoder the way Qwen3-Embedding is (causal attention, RMSNorm, q/k
//! norms, grouped-query heads 24 wide, rotary, SwiGLU, last-token pooling, Normalize, an
//! instruction prompt), on tiny random models whose reference batches sentence-transformers pads
//! on the left, as Qwen3-Embedding's tokenizer does. The texts include long ones (200+ tokens,
//! cut at 256) in batches with short ones. The check is shown sharp: the same model with
//! Qwen3's default rotary base instead of its own, attending both ways (`is_causal: false`,
//! which transformers honours, and so must inferd: that copy matches its own reference), or with
//! its query heads regrouped (what pairing query head `h` with K/V head `h % kv_heads` computes)
//! must fail it. The same model written in the transformers 4.x config spelling must pass it.

use serde_json::{json, Value};

use super::{assert_parity, copy_dir, models_dir, references, serve, worst_cosine, BAR};
use crate::common::{cosine, refuses, vectors};

#[tokio::test]
async fn qwen3_with_last_token_pooling_and_prompts() {
    let info = assert_parity("qwen3", "qwen3").await;
    assert_eq!(info["pooling"], json!(["lasttoken"]));
    assert_eq!(info["dimensions"], 64);
    assert_eq!(info["normalize"], true);
    assert!(info["prompts"]["query"]
        .as_str()
        .unwrap()
        .starts_with("Instruct:"));
}

/// `attention_bias` true: Q/K/V biases go in before the q/k norms, the output bias after.
#[tokio::test]
async fn qwen3_with_attention_biases() {
    assert_parity("qwen3-biased", "qwen3").await;
}

/// Every text alone, then all of them in one request with long and short ones interleaved,
/// and concurrently from several clients (so the batcher mixes requests): the last real token
/// of each sequence is pooled whatever else shares its batch.
#[tokio::test]
async fn qwen3_batches_mixing_short_and_long_texts() {
    let server = serve("qwen3").await;
    let refs: Vec<_> = references("qwen3")
        .into_iter()
        .filter(|r| r.prompt_name.is_none())
        .collect();
    assert!(refs.iter().filter(|r| r.text.len() > 900).count() >= 5);
    let mut worst_alone = f32::MAX;
    for r in &refs {
        let (status, got) = server.infer(json!({"inputs": [r.text]})).await;
        assert_eq!(status, 200, "{got}");
        worst_alone = worst_alone.min(cosine(&vectors(&got)[0], &r.embedding));
    }
    // Longest, shortest, second longest, second shortest, ...
    let mut by_len: Vec<usize> = (0..refs.len()).collect();
    by_len.sort_by_key(|&i| refs[i].text.len());
    let order: Vec<usize> = (0..by_len.len())
        .map(|k| match k % 2 {
            0 => by_len[by_len.len() - 1 - k / 2],
            _ => by_len[k / 2],
        })
        .collect();
    let texts: Vec<&str> = order.iter().map(|&i| refs[i].text.as_str()).collect();
    let (status, got) = server.infer(json!({"inputs": texts})).await;
    assert_eq!(status, 200, "{got}");
    let worst_mixed = order
        .iter()
        .zip(vectors(&got))
        .map(|(&i, v)| cosine(&v, &refs[i].embedding))
        .fold(f32::MAX, f32::min);
    let client = reqwest::Client::new();
    let mut clients = tokio::task::JoinSet::new();
    for (i, r) in refs.iter().enumerate() {
        let (client, url, text) = (client.clone(), server.url("/infer"), r.text.clone());
        clients.spawn(async move {
            let body: Value = client
                .post(url)
                .json(&json!({"inputs": [text]}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            (i, vectors(&body).remove(0))
        });
    }
    let mut worst_concurrent = f32::MAX;
    while let Some(done) = clients.join_next().await {
        let (i, v) = done.unwrap();
        worst_concurrent = worst_concurrent.min(cosine(&v, &refs[i].embedding));
    }
    eprintln!(
        "qwen3: worst cosine alone {worst_alone:.7}, mixed {worst_mixed:.7}, concurrent \
         {worst_concurrent:.7}"
    );
    for worst in [worst_alone, worst_mixed, worst_concurrent] {
        assert!(worst >= BAR, "{worst} < {BAR}");
    }
}

/// Top-level `rope_theta`, no `rope_parameters` or `layer_types` (transformers 4.x): the same
/// vectors.
#[tokio::test]
async fn qwen3_in_the_4x_config_spelling() {
    let server = serve("qwen3-v4-config").await;
    let worst = worst_cosine(&server, "qwen3").await;
    eprintln!("qwen3, 4.x config: worst cosine {worst:.7}");
    assert!(
        worst >= BAR,
        "the 4.x spelling served other vectors ({worst})"
    );
}

#[tokio::test]
async fn qwen3_with_a_wrong_rotary_base_fails_the_check() {
    let server = serve("qwen3-wrong-rope-theta").await;
    let worst = worst_cosine(&server, "qwen3").await;
    eprintln!("qwen3, rope_theta 1e6 instead of 1e4: worst cosine {worst:.5}");
    assert!(worst < BAR, "a wrong rotary base still passed ({worst})");
}

/// `is_causal: false` is served bidirectionally (parity with its own reference), and that is
/// far from the causal model: a server without the causal mask fails the check.
#[tokio::test]
async fn qwen3_without_the_causal_mask_fails_the_check() {
    let server = serve("qwen3-bidirectional").await;
    let own = worst_cosine(&server, "qwen3-bidirectional").await;
    let causal = worst_cosine(&server, "qwen3").await;
    eprintln!(
        "qwen3, is_causal false: worst cosine {own:.7} to its own reference, {causal:.5} to \
         the causal model's"
    );
    assert!(own >= BAR, "is_causal: false served other vectors ({own})");
    assert!(causal < BAR, "attending both ways still passed ({causal})");
}

#[tokio::test]
async fn qwen3_with_its_query_heads_regrouped_fails_the_check() {
    let server = serve("qwen3-kv-groups-interleaved").await;
    let worst = worst_cosine(&server, "qwen3").await;
    eprintln!("qwen3, query heads regrouped: worst cosine {worst:.5}");
    assert!(
        worst < BAR,
        "the wrong head grouping still passed ({worst})"
    );
}

/// Sliding-window attention is not implemented: a config that asks for it is refused at
/// startup, never served with full attention.
#[tokio::test]
async fn qwen3_with_a_sliding_window_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("qwen3-sliding");
    copy_dir(&models_dir().join("qwen3"), &model);
    let config_path = model.join("config.json");
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    config["use_sliding_window"] = json!(true);
    config["sliding_window"] = json!(16);
    std::fs::write(&config_path, config.to_string()).unwrap();
    let out = refuses(model.to_str().unwrap(), &[], &[]);
    assert!(
        out.contains("sliding-window attention is not implemented for qwen3"),
        "{out}"
    );
}

#[tokio::test]
async fn qwen3_on_cuda_is_a_clear_startup_error() {
    let model = models_dir().join("qwen3");
    let out = refuses(model.to_str().unwrap(), &[], &["--device", "cuda"]);
    assert!(
        out.contains("qwen3 models have no CUDA implementation"),
        "{out}"
    );
}
