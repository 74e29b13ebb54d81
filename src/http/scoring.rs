//! Relevance of texts to a query, for every rerank dialect (TEI `/rerank`, Cohere `/v1/rerank`
//! and `/v2/rerank`): whichever kind of model the request reached decides how.
//!
//! - a **reranker** (a one-label `*ForSequenceClassification` cross-encoder) scores each
//!   (query, text) pair through [`Routed::classify`]: the logit, or its sigmoid;
//! - an **embedding model** scores by the cosine of normalised embeddings (a bi-encoder), the
//!   query embedded in the same request through [`Routed::embed`];
//! - a **classifier** (several labels) is refused: it has no relevance score.
//!
//! `/info`'s `rerank` field says which one a model runs. Input checks (empty query or texts,
//! over `--max-client-batch`) happen here, before admission.

use serde_json::Value;

use super::{
    embed::{check_batch, parse_texts},
    error::ApiError,
    state::AppState,
};
use crate::{
    deploy::Routed,
    model::{
        heads::{sigmoid, ModelKind},
        tokenizer::Truncation,
    },
    serving::{ClassifyInput, ClassifyRequest, EmbedRequest, Priority},
};

/// What to score: a query and the texts to score against it.
pub struct Relevance {
    pub query: String,
    pub texts: Vec<String>,
    /// The request field naming the texts (`texts`, `documents`), for messages.
    pub field: &'static str,
    pub truncation: Truncation,
    /// A reranker's raw logits instead of their sigmoid (cosines are cosines either way).
    pub raw_scores: bool,
}

/// One score per text, in the texts' order.
pub async fn relevance(
    state: &AppState,
    routed: &Routed,
    req: Relevance,
) -> Result<Vec<f32>, ApiError> {
    if req.query.is_empty() {
        return Err(ApiError::InvalidInput(
            "the query is an empty string".into(),
        ));
    }
    let handle = &routed.handle;
    handle.expect_kind(&[ModelKind::Reranker, ModelKind::Embedding], "reranking")?;
    if handle.info.kind == ModelKind::Reranker {
        return pair_scores(state, routed, req).await;
    }
    let texts = Value::from(req.texts);
    cosine_scores(
        state,
        routed,
        req.query,
        texts,
        req.field,
        req.truncation,
        None,
    )
    .await
}

/// A cross-encoder's score of each (query, text) pair.
async fn pair_scores(
    state: &AppState,
    routed: &Routed,
    req: Relevance,
) -> Result<Vec<f32>, ApiError> {
    let texts = parse_texts(
        req.field,
        Value::from(req.texts),
        state.limits.max_client_batch,
    )?;
    let inputs = texts
        .into_iter()
        .map(|text| ClassifyInput::Pair(req.query.clone(), text))
        .collect();
    let request = ClassifyRequest {
        inputs,
        truncation: req.truncation,
        deadline: state.deadline(),
        priority: Priority::Interactive,
    };
    let classified = routed.classify(request).await?;
    Ok(classified
        .logits
        .iter()
        .map(|logits| match req.raw_scores {
            true => logits[0],
            false => sigmoid(logits[0]),
        })
        .collect())
}

/// Embeds `query` with `others` in one request (with the prompt `prompt_name`, else the model's
/// default) and returns the cosine of each to the query.
pub async fn cosine_scores(
    state: &AppState,
    routed: &Routed,
    query: String,
    others: Value,
    field: &str,
    truncation: Truncation,
    prompt_name: Option<String>,
) -> Result<Vec<f32>, ApiError> {
    // The query rides in the same request, so the batch limit counts it too.
    let max = state.limits.max_client_batch.saturating_sub(1);
    let mut texts = parse_texts(field, others, max)?;
    if query.is_empty() {
        return Err(ApiError::InvalidInput(
            "the query is an empty string".into(),
        ));
    }
    texts.insert(0, query);
    let request = EmbedRequest {
        texts,
        truncation,
        normalize: true,
        deadline: state.deadline(),
        prompt_name,
        dimensions: None,
        priority: Priority::Interactive,
    };
    let embedded = routed.embed(request).await?;
    let (query, others) = embedded.vectors.split_first().expect("one vector per text");
    Ok(others
        .iter()
        .map(|v| v.iter().zip(query).map(|(a, b)| a * b).sum())
        .collect())
}

/// Indexes of `scores` best first (ties by index), at most `top_n`.
pub fn ranked(scores: &[f32], top_n: Option<usize>) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    order.truncate(top_n.unwrap_or(scores.len()));
    order
}

/// `top_n` must be between 1 and the number of texts.
pub fn check_top_n(top_n: Option<i64>, texts: usize) -> Result<Option<usize>, ApiError> {
    match top_n {
        None => Ok(None),
        Some(n) if n >= 1 && n as usize <= texts => Ok(Some(n as usize)),
        Some(n) => Err(ApiError::InvalidParameter {
            param: "top_n",
            message: format!("`top_n` must be between 1 and the {texts} documents, got {n}"),
        }),
    }
}

/// The list of texts is between 1 and `--max-client-batch` long.
pub fn check_texts(state: &AppState, field: &str, len: usize) -> Result<(), ApiError> {
    check_batch(field, len, state.limits.max_client_batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranked_is_best_first_then_by_index() {
        assert_eq!(ranked(&[0.1, 0.9, 0.9, -1.0], None), vec![1, 2, 0, 3]);
        assert_eq!(ranked(&[0.1, 0.9, 0.5], Some(2)), vec![1, 2]);
    }

    #[test]
    fn top_n_is_checked() {
        assert_eq!(check_top_n(None, 3).unwrap(), None);
        assert_eq!(check_top_n(Some(3), 3).unwrap(), Some(3));
        assert!(check_top_n(Some(0), 3).is_err());
        assert!(check_top_n(Some(4), 3).is_err());
        assert!(check_top_n(Some(-1), 3).is_err());
    }
}
