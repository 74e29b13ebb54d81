//! Sequence-classification heads: what a `*ForSequenceClassification` checkpoint runs on its
//! encoder's first token instead of pooling, and what the loaded model therefore *is*.
//!
//! `config.json`'s `architectures` decides ([`Task::detect`]): a bare encoder (`BertModel`, and
//! `*ForMaskedLM` / `*ForPreTraining`, whose LM heads sentence-transformers ignores too) is an
//! embedding model; a supported `*ForSequenceClassification` is a reranker (one label) or a
//! classifier (`id2label`); any other task head is a startup error listing what is supported,
//! never an embedding model by accident. The encoder itself is the family's, unchanged
//! (`super::arch`); a head only reads the final hidden state of each sequence's first token
//! (`[CLS]` / `<s>`):
//!
//! | architecture | head |
//! |---|---|
//! | `BertForSequenceClassification` | `bert.pooler.dense` + tanh, then `classifier` |
//! | `RobertaForSequenceClassification`, `XLMRobertaForSequenceClassification`, `CamembertForSequenceClassification` | `classifier.dense` + tanh, then `classifier.out_proj` |
//!
//! Both are `out(tanh(dense(x)))` under different names. The head is computed in f32 on the CPU
//! (a few thousand multiply-adds per sequence next to the encoder's millions). Scores
//! (softmax, sigmoid) are the caller's choice: the head returns raw logits.

use anyhow::bail;
use candle_core::{DType, Result};
use candle_nn::VarBuilder;
use serde::Serialize;
use serde_json::Value;

use super::arch::Family;

/// What a loaded model serves, as TEI's `/info` `model_type` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// A bi-encoder: pooled (and maybe normalised) vectors.
    Embedding,
    /// A cross-encoder with one label: one relevance logit per (query, text) pair.
    Reranker,
    /// A sequence classifier with `id2label`: one logit per label.
    Classifier,
}

impl ModelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Embedding => "embedding",
            Self::Reranker => "reranker",
            Self::Classifier => "classifier",
        }
    }
}

/// Which names a head's two layers have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadKind {
    /// BERT: the pooler (`pooler.dense`, beside the encoder) and `classifier`.
    BertPooler,
    /// RoBERTa family: `classifier.dense` and `classifier.out_proj`.
    RobertaClassifier,
}

/// What `config.json` says the model does.
#[derive(Debug, Clone, PartialEq)]
pub enum Task {
    Embedding,
    /// Sequence classification: the head and the labels in id order.
    Classification {
        head: HeadKind,
        labels: Vec<String>,
    },
}

/// The `*ForSequenceClassification` classes served, with their family and head.
const HEADS: [(&str, Family, HeadKind); 4] = [
    (
        "BertForSequenceClassification",
        Family::Bert,
        HeadKind::BertPooler,
    ),
    (
        "RobertaForSequenceClassification",
        Family::Roberta,
        HeadKind::RobertaClassifier,
    ),
    (
        "XLMRobertaForSequenceClassification",
        Family::Roberta,
        HeadKind::RobertaClassifier,
    ),
    (
        "CamembertForSequenceClassification",
        Family::Roberta,
        HeadKind::RobertaClassifier,
    ),
];

/// Task heads an embedding model may carry: the encoder is used, the head ignored.
const IGNORED_HEADS: [&str; 2] = ["ForMaskedLM", "ForPreTraining"];

impl Task {
    /// The task of a parsed `config.json` whose encoder is of `family`.
    pub fn detect(config: &Value, family: Family) -> anyhow::Result<Self> {
        let classes: Vec<&str> = config
            .get("architectures")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for class in classes {
            if let Some((_, head_family, head)) = HEADS.iter().find(|(c, _, _)| *c == class) {
                if *head_family != family {
                    bail!("architecture {class} does not match the config's model_type");
                }
                return Ok(Self::Classification {
                    head: *head,
                    labels: labels(config)?,
                });
            }
            let ignored = IGNORED_HEADS.iter().any(|h| class.ends_with(h));
            if class.contains("For") && !ignored {
                bail!(
                    "architecture {class} is not supported; inferd serves encoders (`*Model`, \
                     `*ForMaskedLM`) as embedding models and these heads: {}",
                    HEADS.map(|(c, _, _)| c).join(", ")
                );
            }
        }
        Ok(Self::Embedding)
    }

    pub fn kind(&self) -> ModelKind {
        match self {
            Self::Embedding => ModelKind::Embedding,
            Self::Classification { labels, .. } if labels.len() == 1 => ModelKind::Reranker,
            Self::Classification { .. } => ModelKind::Classifier,
        }
    }

    /// The labels in id order (empty for an embedding model).
    pub fn labels(&self) -> &[String] {
        match self {
            Self::Embedding => &[],
            Self::Classification { labels, .. } => labels,
        }
    }
}

/// `id2label` in id order; without it, `num_labels` (transformers' default 2) `LABEL_i`s.
fn labels(config: &Value) -> anyhow::Result<Vec<String>> {
    if let Some(map) = config.get("id2label").and_then(Value::as_object) {
        let mut labels = vec![None; map.len()];
        for (id, label) in map {
            let slot = id.parse::<usize>().ok().and_then(|i| labels.get_mut(i));
            match (slot, label.as_str()) {
                (Some(slot), Some(label)) => *slot = Some(label.to_string()),
                _ => bail!("id2label must map the ids 0..{} to names", map.len()),
            }
        }
        let labels: Option<Vec<String>> = labels.into_iter().collect();
        return match labels {
            Some(labels) if !labels.is_empty() => Ok(labels),
            _ => bail!("id2label must map the ids 0..n to names"),
        };
    }
    let n = config
        .get("num_labels")
        .and_then(Value::as_u64)
        .unwrap_or(2) as usize;
    if n == 0 {
        bail!("num_labels must be at least 1");
    }
    Ok((0..n).map(|i| format!("LABEL_{i}")).collect())
}

/// `x · Wᵀ + b` with torch's `[outputs, inputs]` weight, in f32.
#[derive(Debug, Clone)]
struct Affine {
    weight: Vec<f32>,
    bias: Vec<f32>,
    inputs: usize,
}

impl Affine {
    fn load(vb: &VarBuilder, inputs: usize, outputs: usize) -> Result<Self> {
        let flat = |t: candle_core::Tensor| -> Result<Vec<f32>> {
            t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()
        };
        Ok(Self {
            weight: flat(vb.get((outputs, inputs), "weight")?)?,
            bias: flat(vb.get(outputs, "bias")?)?,
            inputs,
        })
    }

    fn forward(&self, x: &[f32]) -> Vec<f32> {
        self.weight
            .chunks_exact(self.inputs)
            .zip(&self.bias)
            .map(|(row, b)| row.iter().zip(x).map(|(w, x)| w * x).sum::<f32>() + b)
            .collect()
    }
}

/// A loaded sequence-classification head: `out(tanh(dense(first token)))`.
#[derive(Debug, Clone)]
pub struct ClassifierHead {
    dense: Affine,
    out: Affine,
}

impl ClassifierHead {
    /// Loads `head`'s weights from the checkpoint's root `vb` for `labels` outputs.
    pub fn load(vb: &VarBuilder, head: HeadKind, hidden: usize, labels: usize) -> Result<Self> {
        let (dense, out) = match head {
            HeadKind::BertPooler => {
                let pooler = ["bert.pooler.dense", "pooler.dense"]
                    .map(|p| vb.pp(p))
                    .into_iter()
                    .find(|vb| vb.contains_tensor("weight"))
                    .unwrap_or_else(|| vb.pp("bert.pooler.dense"));
                (pooler, vb.pp("classifier"))
            }
            HeadKind::RobertaClassifier => (
                vb.pp("classifier").pp("dense"),
                vb.pp("classifier").pp("out_proj"),
            ),
        };
        Ok(Self {
            dense: Affine::load(&dense, hidden, hidden)?,
            out: Affine::load(&out, hidden, labels)?,
        })
    }

    /// How many logits it gives.
    pub fn labels(&self) -> usize {
        self.out.bias.len()
    }

    /// Logits of one sequence from its first token's final hidden state.
    pub fn forward(&self, first_token: &[f32]) -> Vec<f32> {
        let mut pooled = self.dense.forward(first_token);
        pooled.iter_mut().for_each(|v| *v = v.tanh());
        self.out.forward(&pooled)
    }
}

/// `e^x / Σ e^x`, shifted by the maximum so large logits do not overflow.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|x| (x - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

#[cfg(test)]
mod tests;
