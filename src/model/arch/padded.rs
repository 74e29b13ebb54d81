//! The CUDA forward: candle-transformers' model of the family on a batch padded to its own
//! longest sequence, the attention mask keeping padding out of attention (and of pooling).
//! Only families candle-transformers implements are here ([`super::Family::runs_on_cuda`]).

use anyhow::bail;
use candle_core::{DType, Result, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::{bert, distilbert, xlm_roberta};

use super::{config::EncoderConfig, Family};

pub enum Padded {
    Bert(bert::BertModel),
    /// RoBERTa, XLM-R and CamemBERT: candle's XLM-R model computes positions after padding.
    Roberta(xlm_roberta::XLMRobertaModel),
    DistilBert(distilbert::DistilBertModel),
}

/// Descends into the first of `prefixes` holding the embeddings (task checkpoints).
fn descend<'a>(vb: VarBuilder<'a>, prefixes: &[&str]) -> VarBuilder<'a> {
    prefixes
        .iter()
        .map(|p| vb.pp(*p))
        .find(|vb| vb.contains_tensor(super::bert::PROBE))
        .unwrap_or(vb)
}

pub fn load(family: Family, vb: VarBuilder, c: &EncoderConfig) -> anyhow::Result<Padded> {
    Ok(match family {
        Family::Bert => {
            let config = bert::Config {
                vocab_size: c.vocab_size,
                hidden_size: c.hidden,
                num_hidden_layers: c.layers,
                num_attention_heads: c.heads,
                intermediate_size: c.intermediate,
                max_position_embeddings: c.max_positions,
                type_vocab_size: c.type_vocab_size,
                layer_norm_eps: c.eps,
                pad_token_id: c.pad_token_id as usize,
                ..bert::Config::default()
            };
            Padded::Bert(bert::BertModel::load(descend(vb, &["bert"]), &config)?)
        }
        Family::Roberta => {
            let config = xlm_roberta::Config {
                hidden_size: c.hidden,
                layer_norm_eps: c.eps,
                attention_probs_dropout_prob: 0.0,
                hidden_dropout_prob: 0.0,
                num_attention_heads: c.heads,
                position_embedding_type: "absolute".into(),
                intermediate_size: c.intermediate,
                hidden_act: candle_nn::Activation::Gelu,
                num_hidden_layers: c.layers,
                vocab_size: c.vocab_size,
                max_position_embeddings: c.max_positions,
                type_vocab_size: c.type_vocab_size,
                pad_token_id: c.pad_token_id,
            };
            let vb = descend(vb, &["roberta"]);
            Padded::Roberta(xlm_roberta::XLMRobertaModel::new(&config, vb)?)
        }
        Family::DistilBert => {
            // Its fields are private: build it the way it is read, from config.json names.
            let config: distilbert::Config = serde_json::from_value(serde_json::json!({
                "vocab_size": c.vocab_size, "dim": c.hidden, "n_layers": c.layers,
                "n_heads": c.heads, "hidden_dim": c.intermediate, "activation": "gelu",
                "max_position_embeddings": c.max_positions, "initializer_range": 0.02,
                "pad_token_id": c.pad_token_id, "model_type": "distilbert",
            }))?;
            let vb = descend(vb, &["distilbert"]);
            Padded::DistilBert(distilbert::DistilBertModel::load(vb, &config)?)
        }
        Family::MpNet | Family::ModernBert | Family::Qwen3 => bail!(
            "{family:?} has no CUDA implementation (no candle-transformers encoder for it); run it with --device cpu"
        ),
    })
}

impl Padded {
    /// `[batch, longest, hidden]` states of `ids` under `mask` (1 = token, 0 = padding).
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let types = ids.zeros_like()?;
        match self {
            Self::Bert(m) => m.forward(ids, &types, Some(mask)),
            Self::Roberta(m) => m.forward(ids, mask, &types, None, None, None),
            Self::DistilBert(m) => {
                // DistilBERT's mask marks what to hide, broadcast over heads and query rows.
                let hide = mask
                    .eq(0u32)?
                    .to_dtype(DType::U8)?
                    .unsqueeze(1)?
                    .unsqueeze(1)?;
                m.forward(ids, &hide)
            }
        }
    }
}
