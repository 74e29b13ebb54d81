//! The architecture layer: which family a `config.json` describes, and one module per family
//! composing the shared packed blocks of [`super::blocks`].
//!
//! `model_type` picks the family (`architectures` when it is absent); anything else is a
//! startup error naming what is supported — never a silent fallback to BERT (an XLM-R served as
//! BERT gives wrong vectors without any error). Each family module has the same shape:
//! - `config(&json)`: its config, read tolerantly (transformers 4.x and 5.x spellings);
//! - `packed(weights, &config)`: the CPU [`Stack`];
//! - where candle-transformers has the family as an encoder, `padded(vb, &config)`: the CUDA
//!   model ([`padded::Padded`]). Families without one refuse `--device cuda` at startup (MPNet,
//!   ModernBERT; and Qwen3, whose candle-transformers model is a generator with a KV cache and
//!   no padding mask, untested here as an encoder).
//!
//! Adding a family: a module here, a [`Family`] variant, a row in [`Family::ALL`]. Heads that
//! replace pooling (sequence classification) plug in after [`Stack::forward`], beside
//! [`super::pooling`], not here.

mod bert;
mod config;
mod distilbert;
mod modernbert;
mod mpnet;
pub mod padded;
mod qwen3;

use anyhow::{bail, Context};
use candle_core::{Device, Result};
use candle_nn::VarBuilder;
use serde_json::Value;

use super::blocks::{Precision, Stack, Weights};
pub use config::EncoderConfig;
use padded::Padded;

/// The model families inferd implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Bert,
    /// RoBERTa, XLM-RoBERTa and CamemBERT: BERT layers, positions after `pad_token_id`, one
    /// token type.
    Roberta,
    DistilBert,
    MpNet,
    /// Pre-norm, rotary (two bases), sliding-window local layers, GeGLU.
    ModernBert,
    /// A decoder served as an encoder: causal, grouped-query, q/k norms, RMSNorm, SwiGLU.
    Qwen3,
}

impl Family {
    /// `(model_type, architectures class prefix, family)` for every supported spelling.
    const ALL: [(&'static str, &'static str, Family); 8] = [
        ("bert", "Bert", Family::Bert),
        ("roberta", "Roberta", Family::Roberta),
        ("xlm-roberta", "XLMRoberta", Family::Roberta),
        ("camembert", "Camembert", Family::Roberta),
        ("distilbert", "DistilBert", Family::DistilBert),
        ("mpnet", "MPNet", Family::MpNet),
        ("modernbert", "ModernBert", Family::ModernBert),
        ("qwen3", "Qwen3", Family::Qwen3),
    ];

    /// The family of a parsed `config.json`.
    pub fn detect(config: &Value) -> anyhow::Result<(Self, String)> {
        let supported = || {
            Self::ALL
                .iter()
                .map(|(t, _, _)| *t)
                .collect::<Vec<_>>()
                .join(", ")
        };
        if let Some(model_type) = config.get("model_type").and_then(Value::as_str) {
            let normalized = model_type.replace('_', "-").to_ascii_lowercase();
            return match Self::ALL.iter().find(|(t, _, _)| *t == normalized) {
                Some((t, _, family)) => Ok((*family, t.to_string())),
                None => bail!(
                    "model_type {model_type:?} is not supported; inferd serves: {}",
                    supported()
                ),
            };
        }
        let classes: Vec<&str> = config
            .get("architectures")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        // Longest prefix first: `XLMRobertaModel` must not match `Roberta`.
        let mut by_prefix = Self::ALL.to_vec();
        by_prefix.sort_by_key(|(_, prefix, _)| std::cmp::Reverse(prefix.len()));
        for class in &classes {
            if let Some((t, _, family)) = by_prefix.iter().find(|(_, p, _)| class.starts_with(p)) {
                return Ok((*family, t.to_string()));
            }
        }
        bail!(
            "config.json names no supported model_type (architectures {classes:?}); inferd serves: {}",
            supported()
        )
    }

    /// Whether `--device cuda` can run this family (candle-transformers has it).
    pub fn runs_on_cuda(self) -> bool {
        !matches!(self, Self::MpNet | Self::ModernBert | Self::Qwen3)
    }

    /// Whether candle-transformers' CUDA model takes f16/bf16 weights. Its DistilBERT computes
    /// the softmax in f32 and multiplies that by V in the weights' dtype, which fails unless
    /// both are f32.
    pub fn cuda_half_precision(self) -> bool {
        !matches!(
            self,
            Self::DistilBert | Self::MpNet | Self::ModernBert | Self::Qwen3
        )
    }
}

/// One loaded encoder: the family, its config, and the forward for the chosen device.
pub struct Architecture {
    pub family: Family,
    /// The `model_type` as served (`xlm-roberta`, not just "the RoBERTa family").
    pub model_type: String,
    pub config: EncoderConfig,
    pub forward: Forward,
}

pub enum Forward {
    /// CPU: padding-free.
    Packed(Stack),
    /// CUDA: candle-transformers' model, padded to the batch's longest sequence.
    Padded(Padded),
}

impl Architecture {
    /// Reads `config.json` (already parsed) and builds the forward on `device`.
    pub fn load(
        json: &Value,
        vb: VarBuilder,
        device: &Device,
        precision: Precision,
    ) -> anyhow::Result<Self> {
        let (family, model_type) = Family::detect(json)?;
        let config = match family {
            Family::Bert | Family::Roberta => bert::config(json, family),
            Family::DistilBert => distilbert::config(json),
            Family::MpNet => mpnet::config(json),
            Family::ModernBert => modernbert::config(json),
            Family::Qwen3 => qwen3::config(json),
        }
        .with_context(|| format!("reading the {model_type} config"))?;
        let forward = if device.is_cpu() {
            Forward::Packed(packed(family, vb, &config, precision)?)
        } else {
            Forward::Padded(padded::load(family, vb, &config)?)
        };
        Ok(Self {
            family,
            model_type,
            config,
            forward,
        })
    }

    /// Longest sequence the model takes.
    pub fn max_len(&self) -> usize {
        self.config.max_len()
    }
}

fn packed(
    family: Family,
    vb: VarBuilder,
    config: &EncoderConfig,
    precision: Precision,
) -> Result<Stack> {
    match family {
        Family::Bert | Family::Roberta => {
            let w = Weights::new(vb, &["bert", "roberta"], bert::PROBE, precision);
            let mut stack = bert::packed(&w, config, precision)?;
            if family == Family::Roberta {
                // One token type, whatever the tokenizer says about a pair's second text.
                stack.embeddings.second_type = None;
            }
            Ok(stack)
        }
        Family::DistilBert => {
            let w = Weights::new(vb, &["distilbert"], bert::PROBE, precision);
            distilbert::packed(&w, config, precision)
        }
        Family::MpNet => {
            let w = Weights::new(vb, &["mpnet"], bert::PROBE, precision);
            mpnet::packed(&w, config, precision)
        }
        Family::ModernBert => {
            let w = Weights::new(vb, &["model"], modernbert::PROBE, precision);
            modernbert::packed(&w, config, precision)
        }
        Family::Qwen3 => {
            let w = Weights::new(vb, &["model"], qwen3::PROBE, precision);
            qwen3::packed(&w, config, precision)
        }
    }
}

#[cfg(test)]
mod test_weights;
#[cfg(test)]
mod tests;
