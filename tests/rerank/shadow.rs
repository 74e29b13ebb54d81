//! Shadow traffic for rerankers: the candidate scores the same (query, text) pairs, and agreement
//! is the rank correlation of both versions' scores. Sharp both ways: identical weights agree
//! fully, unrelated weights (another random reranker) do not, so a window that compared the live
//! scores with themselves, or with shuffled pairs, would fail one of the two.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use serde_json::{json, Value};

use super::model_dir;
use crate::{
    common::{
        lifecycle::{start, TOKEN},
        TestServer,
    },
    lifecycle::agreement_of,
};

/// A manifest `tiny` whose versions are copies of the tiny rerankers named beside them.
fn reranker_manifest(dir: &Path, versions: &[(&str, &str)]) {
    let mut text = format!(
        "name = \"tiny\"\nversion = \"{}\"\n[model]\ndimensions = 1\nmax_seq_length = 264\n\
         pooling = \"none\"\nnormalize = false\n",
        versions[0].0
    );
    for (label, source) in versions {
        let to = dir.join(label);
        std::fs::create_dir_all(&to).unwrap();
        for entry in std::fs::read_dir(model_dir(source)).unwrap() {
            let from = entry.unwrap().path();
            std::fs::copy(&from, to.join(from.file_name().unwrap())).unwrap();
        }
        let sha = inferd::model::manifest::sha256_file(&to.join("model.safetensors")).unwrap();
        text += &format!(
            "\n[[versions]]\nversion = \"{label}\"\nlocal_dir = \"{label}\"\n\
             [versions.sha256]\n\"model.safetensors\" = \"{sha}\"\n"
        );
    }
    std::fs::write(dir.join("tiny.toml"), text).unwrap();
}

/// Sends `/rerank` requests of distinct pairs until `version`'s shadow window holds `n`.
async fn shadow_samples(server: &TestServer, version: &str, n: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 0.. {
        let texts: Vec<String> = (0..4)
            .map(|j| {
                format!(
                    "passage {i}-{j} about {}",
                    ["cats", "rust", "rain", "maps"][j]
                )
            })
            .collect();
        let body = json!({"query": format!("question {i}"), "texts": texts});
        let (code, answer) = server.post_json("/rerank", body).await;
        assert_eq!(code, 200, "{answer}");
        let (s, agreement) = agreement_of(server, version).await;
        if agreement["samples"].as_u64().unwrap_or(0) >= n {
            return agreement;
        }
        assert!(Instant::now() < deadline, "no shadow samples: {s}");
    }
    unreachable!()
}

#[tokio::test]
async fn reranker_shadow_agreement_is_the_rank_correlation_of_scores() {
    let dir = tempfile::tempdir().unwrap();
    reranker_manifest(
        dir.path(),
        &[
            ("v1", "bert-reranker"),
            ("same", "bert-reranker"),
            ("other", "xlm-roberta-reranker"),
        ],
    );
    let server = start(dir.path(), &["--dtype", "f32"]).await;
    for (candidate, agrees) in [("same", true), ("other", false)] {
        let (code, body) = server
            .admin(
                Some(TOKEN),
                "/admin/load",
                Some(json!({"model": "tiny", "version": candidate})),
            )
            .await;
        assert_eq!(code, 200, "{body}");
        let (code, body) = server
            .admin(
                Some(TOKEN),
                "/admin/shadow",
                Some(json!({"model": format!("tiny@{candidate}"), "sample_rate": 1.0})),
            )
            .await;
        assert_eq!(code, 200, "{body}");
        let agreement = shadow_samples(&server, candidate, 16).await;
        assert_eq!(agreement["mean_cosine"], Value::Null, "{agreement}");
        assert_eq!(agreement["topk_overlap"], Value::Null, "{agreement}");
        let r = agreement["rank_correlation"].as_f64().unwrap();
        match agrees {
            true => assert!(r > 0.999, "{candidate}: {agreement}"),
            false => assert!(r < 0.9, "{candidate}: {agreement}"),
        }
    }
    // Below the gate: promotion is refused, as for embedders.
    let (code, body) = server
        .admin(
            Some(TOKEN),
            "/admin/promote",
            Some(json!({"model": "tiny@other"})),
        )
        .await;
    assert_eq!(code, 409, "{body}");
}
