//! DistilBERT: BERT's layer under its own names (`q_lin`, `sa_layer_norm`, `ffn.lin1`, ...),
//! positions from 0, no token types, LayerNorm eps fixed at 1e-12.

use anyhow::bail;
use candle_core::Result;
use serde::Deserialize;
use serde_json::Value;

use super::config::{check_activation, EncoderConfig};
use crate::model::blocks::{
    HeadLayout, Layer, Mlp, PositionIds, PostNormLayer, Precision, SelfAttention, Stack, Weights,
};

/// transformers' `DistilBertConfig` names.
#[derive(Deserialize)]
struct Config {
    vocab_size: usize,
    dim: usize,
    n_layers: usize,
    n_heads: usize,
    hidden_dim: usize,
    max_position_embeddings: usize,
    #[serde(default = "gelu")]
    activation: String,
    #[serde(default)]
    pad_token_id: Option<u32>,
}

fn gelu() -> String {
    "gelu".into()
}

const EPS: f64 = 1e-12;

pub(super) fn config(json: &Value) -> anyhow::Result<EncoderConfig> {
    let c: Config = serde_json::from_value(json.clone())?;
    check_activation(&c.activation)?;
    if c.n_heads == 0 || !c.dim.is_multiple_of(c.n_heads) {
        bail!("dim {} is not a multiple of n_heads {}", c.dim, c.n_heads);
    }
    Ok(EncoderConfig {
        vocab_size: c.vocab_size,
        hidden: c.dim,
        layers: c.n_layers,
        heads: c.n_heads,
        intermediate: c.hidden_dim,
        max_positions: c.max_position_embeddings,
        type_vocab_size: 0,
        eps: EPS,
        pad_token_id: c.pad_token_id.unwrap_or(0),
        positions: PositionIds::FromZero,
        relative_buckets: None,
        rotary: None,
        decoder: None,
    })
}

pub(super) fn packed(w: &Weights, c: &EncoderConfig, precision: Precision) -> Result<Stack> {
    let layers = (0..c.layers)
        .map(|i| layer(&w.pp(format!("transformer.layer.{i}")), c).map(Layer::Post))
        .collect::<Result<_>>()?;
    Ok(Stack {
        embeddings: super::bert::embeddings(&w.pp("embeddings"), c, false)?,
        layers,
        relative: None,
        final_norm: None,
        precision,
    })
}

fn layer(w: &Weights, c: &EncoderConfig) -> Result<PostNormLayer> {
    let (h, attn) = (c.hidden, w.pp("attention"));
    let (attn_block, attn_bias) = SelfAttention::load(
        &attn,
        ["q_lin", "k_lin", "v_lin"],
        &attn.pp("out_lin"),
        h,
        HeadLayout::multi_head(h, c.heads),
    )?;
    let ffn = w.pp("ffn");
    let (mlp, mlp_bias) = Mlp::gelu(&ffn.pp("lin1"), &ffn.pp("lin2"), h, c.intermediate)?;
    Ok(PostNormLayer {
        attn: attn_block,
        attn_norm: w.pp("sa_layer_norm").layer_norm(h, c.eps, attn_bias)?,
        mlp,
        mlp_norm: w.pp("output_layer_norm").layer_norm(h, c.eps, mlp_bias)?,
    })
}
