//! Sequence-classification heads: what a `*ForSequenceClassification` checkpoint runs on its
//! encoder's first token instead of pooling, and what the loaded model therefore *is*.
//!
//! `config.json`'s `architectures` decides ([`Task::detect`]): a bare encoder (`BertModel`, and
//! `*ForMaskedLM` / `*ForPreTraining`, whose LM heads sentence-transformers ignores too) is an
//! embedding model; a supported `*ForSequenceClassification` is a reranker (one label) or a
//! classifier (`id2label`); any other task head is a startup error listing what is supported,
//! never an embedding model by accident. The encoder itself is the family's, unchanged
//! (`super::arch`); a head reads the final hidden state of each sequence's first token
//! (`[CLS]` / `<s>`), or for ModernBERT with `classifier_pooling: "mean"` the mean over the
//! sequence:
//!
//! | architecture | head |
//! |---|---|
//! | `BertForSequenceClassification` | `bert.pooler.dense` + tanh, then `classifier` |
//! | `RobertaForSequenceClassification`, `XLMRobertaForSequenceClassification`, `CamembertForSequenceClassification` | `classifier.dense` + tanh, then `classifier.out_proj` |
//! | `ModernBertForSequenceClassification` | `classifier_pooling` (`cls` or `mean`), `head.dense` (bias if `classifier_bias`), `classifier_activation`, `head.norm` (LayerNorm, bias if `norm_bias`), then `classifier` |
//!
//! All are `out(norm(act(dense(x))))` under different names (BERT's and RoBERTa's: tanh, no
//! norm). The head is computed in f32 on the CPU (a few thousand multiply-adds per sequence next
//! to the encoder's millions). Scores (softmax, sigmoid) are the caller's choice: the head
//! returns raw logits.

use anyhow::bail;
use candle_core::{DType, Result};
use candle_nn::VarBuilder;
use serde::Serialize;
use serde_json::Value;

use super::{arch::Family, kernels::erf};

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
    /// ModernBERT: `head.dense`, an activation and `head.norm`, then `classifier`, on the first
    /// token or the mean of the sequence (`config.json` says which).
    ModernBert,
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
const HEADS: [(&str, Family, HeadKind); 5] = [
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
    (
        "ModernBertForSequenceClassification",
        Family::ModernBert,
        HeadKind::ModernBert,
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

fn flat(t: candle_core::Tensor) -> Result<Vec<f32>> {
    t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()
}

/// `x · Wᵀ + b` with torch's `[outputs, inputs]` weight, in f32 (`b` zeros without a bias).
#[derive(Debug, Clone)]
struct Affine {
    weight: Vec<f32>,
    bias: Vec<f32>,
    inputs: usize,
}

impl Affine {
    fn load(vb: &VarBuilder, inputs: usize, outputs: usize) -> Result<Self> {
        Self::load_with(vb, inputs, outputs, true)
    }

    fn load_with(vb: &VarBuilder, inputs: usize, outputs: usize, bias: bool) -> Result<Self> {
        Ok(Self {
            weight: flat(vb.get((outputs, inputs), "weight")?)?,
            bias: match bias {
                true => flat(vb.get(outputs, "bias")?)?,
                false => vec![0.0; outputs],
            },
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

/// LayerNorm over one vector, in f32 (`b` zeros without a bias).
#[derive(Debug, Clone)]
struct Norm {
    weight: Vec<f32>,
    bias: Vec<f32>,
    eps: f32,
}

impl Norm {
    fn load(vb: &VarBuilder, width: usize, bias: bool, eps: f64) -> Result<Self> {
        Ok(Self {
            weight: flat(vb.get(width, "weight")?)?,
            bias: match bias {
                true => flat(vb.get(width, "bias")?)?,
                false => vec![0.0; width],
            },
            eps: eps as f32,
        })
    }

    fn forward(&self, x: &mut [f32]) {
        let n = x.len() as f32;
        let mean = x.iter().sum::<f32>() / n;
        let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
        let scale = 1.0 / (var + self.eps).sqrt();
        for ((v, w), b) in x.iter_mut().zip(&self.weight).zip(&self.bias) {
            *v = (*v - mean) * scale * w + b;
        }
    }
}

/// The activation between a head's dense layer and its output, by transformers' `ACT2FN` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Activation {
    Tanh,
    /// `gelu`: the exact (erf) form.
    Gelu,
    /// `gelu_new`, `gelu_pytorch_tanh`: the tanh approximation.
    GeluTanh,
    Relu,
    Silu,
}

impl Activation {
    fn parse(name: &str) -> anyhow::Result<Self> {
        Ok(match name {
            "tanh" => Self::Tanh,
            "gelu" => Self::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" => Self::GeluTanh,
            "relu" => Self::Relu,
            "silu" | "swish" => Self::Silu,
            other => bail!(
                "classifier_activation {other:?} is not supported (supported: tanh, gelu, \
                 gelu_new, gelu_pytorch_tanh, relu, silu)"
            ),
        })
    }

    fn apply(self, x: f32) -> f32 {
        match self {
            Self::Tanh => x.tanh(),
            Self::Gelu => 0.5 * x * (1.0 + erf::<false>(x * std::f32::consts::FRAC_1_SQRT_2)),
            Self::GeluTanh => {
                let inner = (2.0 / std::f32::consts::PI).sqrt() * (x + 0.044_715 * x * x * x);
                0.5 * x * (1.0 + inner.tanh())
            }
            Self::Relu => x.max(0.0),
            Self::Silu => x / (1.0 + (-x).exp()),
        }
    }
}

/// What a head reads of each sequence's final hidden states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pooling {
    /// The first token (`[CLS]`, `<s>`).
    First,
    /// The mean over every token of the sequence.
    Mean,
}

/// ModernBERT's head settings in `config.json`, with transformers' defaults.
#[derive(Debug, serde::Deserialize)]
struct ModernBertHead {
    #[serde(default = "cls")]
    classifier_pooling: String,
    #[serde(default)]
    classifier_bias: bool,
    #[serde(default = "gelu")]
    classifier_activation: String,
    #[serde(default)]
    norm_bias: bool,
    #[serde(default = "norm_eps")]
    norm_eps: f64,
}

fn cls() -> String {
    "cls".into()
}
fn gelu() -> String {
    "gelu".into()
}
fn norm_eps() -> f64 {
    1e-5
}

/// A loaded sequence-classification head: `out(norm(act(dense(pooled))))`.
#[derive(Debug, Clone)]
pub struct ClassifierHead {
    pooling: Pooling,
    dense: Affine,
    activation: Activation,
    norm: Option<Norm>,
    out: Affine,
}

impl ClassifierHead {
    /// Loads `head`'s weights from the checkpoint's root `vb` for `labels` outputs; `config` is
    /// the checkpoint's `config.json` (ModernBERT's head settings live there).
    pub fn load(
        vb: &VarBuilder,
        config: &Value,
        head: HeadKind,
        hidden: usize,
        labels: usize,
    ) -> anyhow::Result<Self> {
        let tanh_head = |dense: VarBuilder, out: VarBuilder| -> Result<Self> {
            Ok(Self {
                pooling: Pooling::First,
                dense: Affine::load(&dense, hidden, hidden)?,
                activation: Activation::Tanh,
                norm: None,
                out: Affine::load(&out, hidden, labels)?,
            })
        };
        Ok(match head {
            HeadKind::BertPooler => {
                let pooler = ["bert.pooler.dense", "pooler.dense"]
                    .map(|p| vb.pp(p))
                    .into_iter()
                    .find(|vb| vb.contains_tensor("weight"))
                    .unwrap_or_else(|| vb.pp("bert.pooler.dense"));
                tanh_head(pooler, vb.pp("classifier"))?
            }
            HeadKind::RobertaClassifier => tanh_head(
                vb.pp("classifier").pp("dense"),
                vb.pp("classifier").pp("out_proj"),
            )?,
            HeadKind::ModernBert => {
                let c: ModernBertHead = serde_json::from_value(config.clone())?;
                let pooling = match c.classifier_pooling.as_str() {
                    "cls" => Pooling::First,
                    "mean" => Pooling::Mean,
                    other => bail!(
                        "classifier_pooling {other:?} is not supported (supported: cls, mean)"
                    ),
                };
                let head = vb.pp("head");
                Self {
                    pooling,
                    dense: Affine::load_with(&head.pp("dense"), hidden, hidden, c.classifier_bias)?,
                    activation: Activation::parse(&c.classifier_activation)?,
                    norm: Some(Norm::load(
                        &head.pp("norm"),
                        hidden,
                        c.norm_bias,
                        c.norm_eps,
                    )?),
                    out: Affine::load(&vb.pp("classifier"), hidden, labels)?,
                }
            }
        })
    }

    /// How many logits it gives.
    pub fn labels(&self) -> usize {
        self.out.bias.len()
    }

    /// Logits of one sequence from its pooled final hidden state.
    pub fn forward(&self, pooled: &[f32]) -> Vec<f32> {
        let mut x = self.dense.forward(pooled);
        x.iter_mut().for_each(|v| *v = self.activation.apply(*v));
        if let Some(norm) = &self.norm {
            norm.forward(&mut x);
        }
        self.out.forward(&x)
    }

    /// Logits of every sequence of a packed batch: `hidden` is `[Σ lens, width]`.
    pub fn forward_packed(&self, hidden: &[f32], width: usize, lens: &[usize]) -> Vec<Vec<f32>> {
        let mut offset = 0;
        lens.iter()
            .map(|&len| {
                let rows = &hidden[offset * width..][..len * width];
                offset += len;
                let pooled = match self.pooling {
                    Pooling::First => rows[..width.min(rows.len())].to_vec(),
                    Pooling::Mean => mean_rows(rows, width),
                };
                self.forward(&pooled)
            })
            .collect()
    }
}

/// The mean of `rows`' `width`-wide rows (zeros for none: every sequence has special tokens).
fn mean_rows(rows: &[f32], width: usize) -> Vec<f32> {
    let mut sum = vec![0f32; width];
    for row in rows.chunks_exact(width) {
        sum.iter_mut().zip(row).for_each(|(s, v)| *s += v);
    }
    let n = (rows.len() / width).max(1) as f32;
    sum.into_iter().map(|s| s / n).collect()
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
