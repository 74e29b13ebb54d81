//! ModernBERT: token embeddings then LayerNorm (no position rows), pre-norm layers with a fused
//! `Wqkv` projection, rotary embeddings with one base for global layers and another for local
//! ones, sliding-window attention (`±local_attention / 2`) on local layers, a GeGLU MLP (`Wi`
//! yields the GELU input and the gate, `Wo` projects back), a final norm. The first layer has
//! no attention norm. No biases unless `attention_bias` / `mlp_bias` / `norm_bias` say so.
//!
//! Config spellings: transformers 4.x writes `global_attn_every_n_layers` (layer `i` is global
//! when `i % n == 0`), `global_rope_theta` and `local_rope_theta` (`null`: the global base);
//! 5.x writes `layer_types` (`full_attention` / `sliding_attention`) and `rope_parameters`
//! (`{"full_attention": {"rope_theta": ..}, "sliding_attention": {..}}`), which win when present.

use std::sync::Arc;

use anyhow::{bail, Context};
use candle_core::Result;
use serde::Deserialize;
use serde_json::Value;

use super::config::{check_activation, EncoderConfig, LayerAttention, RotaryConfig};
use crate::model::blocks::{
    Embeddings, HeadLayout, Layer, Mlp, PositionIds, PreNormLayer, Precision, SelfAttention, Stack,
    Weights,
};
use crate::model::kernels::{AddBias, GluActivation, Rotary};

/// A tensor every ModernBERT checkpoint has, to find its prefix (`model.` in task checkpoints).
pub(super) const PROBE: &str = "embeddings.tok_embeddings.weight";

/// transformers' defaults (`ModernBertConfig`).
const GLOBAL_THETA: f64 = 160_000.0;
const LOCAL_THETA: f64 = 10_000.0;
const EVERY_N: usize = 3;

#[derive(Deserialize)]
struct Config {
    vocab_size: usize,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    #[serde(default = "max_positions")]
    max_position_embeddings: usize,
    #[serde(default = "norm_eps")]
    norm_eps: f64,
    #[serde(default)]
    norm_bias: bool,
    #[serde(default)]
    attention_bias: bool,
    #[serde(default)]
    mlp_bias: bool,
    #[serde(default = "gelu")]
    hidden_activation: String,
    #[serde(default)]
    pad_token_id: Option<u32>,
    #[serde(default = "local_attention")]
    local_attention: usize,
    #[serde(default)]
    global_attn_every_n_layers: Option<usize>,
    #[serde(default)]
    layer_types: Option<Vec<String>>,
}

fn max_positions() -> usize {
    8192
}
fn norm_eps() -> f64 {
    1e-5
}
fn gelu() -> String {
    "gelu".into()
}
fn local_attention() -> usize {
    128
}

pub(super) fn config(json: &Value) -> anyhow::Result<EncoderConfig> {
    let c: Config = serde_json::from_value(json.clone())?;
    check_activation(&c.hidden_activation)?;
    if c.num_attention_heads == 0 || !c.hidden_size.is_multiple_of(c.num_attention_heads) {
        bail!(
            "hidden_size {} is not a multiple of num_attention_heads {}",
            c.hidden_size,
            c.num_attention_heads
        );
    }
    if !(c.hidden_size / c.num_attention_heads).is_multiple_of(2) {
        bail!("rotary embeddings need an even head width");
    }
    if json.get("rope_scaling").is_some_and(|v| !v.is_null()) {
        bail!("rope_scaling is not supported");
    }
    let (global_theta, local_theta) = thetas(json)?;
    let locals = local_layers(&c)?;
    let layers = locals
        .iter()
        .map(|&local| LayerAttention {
            theta: if local { local_theta } else { global_theta },
            window: local.then_some(c.local_attention / 2),
        })
        .collect();
    Ok(EncoderConfig {
        vocab_size: c.vocab_size,
        hidden: c.hidden_size,
        layers: c.num_hidden_layers,
        heads: c.num_attention_heads,
        intermediate: c.intermediate_size,
        max_positions: c.max_position_embeddings,
        type_vocab_size: 0,
        eps: c.norm_eps,
        pad_token_id: c.pad_token_id.unwrap_or(0),
        positions: PositionIds::FromZero,
        relative_buckets: None,
        rotary: Some(RotaryConfig {
            layers,
            attention_bias: c.attention_bias,
            mlp_bias: c.mlp_bias,
            norm_bias: c.norm_bias,
        }),
        decoder: None,
    })
}

/// Which layers are local (sliding window): `layer_types` when given, else every layer but
/// each `global_attn_every_n_layers`-th.
fn local_layers(c: &Config) -> anyhow::Result<Vec<bool>> {
    if let Some(types) = &c.layer_types {
        if types.len() != c.num_hidden_layers {
            bail!(
                "layer_types names {} layers, num_hidden_layers is {}",
                types.len(),
                c.num_hidden_layers
            );
        }
        return types
            .iter()
            .map(|t| match t.as_str() {
                "full_attention" => Ok(false),
                "sliding_attention" => Ok(true),
                other => bail!(
                    "layer type {other:?} is not supported (full_attention or sliding_attention)"
                ),
            })
            .collect();
    }
    let every = c.global_attn_every_n_layers.unwrap_or(EVERY_N);
    if every == 0 {
        bail!("global_attn_every_n_layers must be at least 1");
    }
    Ok((0..c.num_hidden_layers).map(|i| i % every != 0).collect())
}

/// The (global, local) rotary bases, from `rope_parameters` (5.x) or `global_rope_theta` and
/// `local_rope_theta` (4.x), else transformers' defaults.
fn thetas(json: &Value) -> anyhow::Result<(f64, f64)> {
    let number = |v: &Value, what: &str| {
        v.as_f64()
            .filter(|t| *t > 0.0)
            .with_context(|| format!("{what} must be a positive number, got {v}"))
    };
    let from_parameters = |kind: &str| -> anyhow::Result<Option<f64>> {
        let Some(p) = json.get("rope_parameters").and_then(|p| p.get(kind)) else {
            return Ok(None);
        };
        if let Some(t) = p.get("rope_type").and_then(Value::as_str) {
            if t != "default" {
                bail!("rope_type {t:?} ({kind}) is not supported (only \"default\")");
            }
        }
        p.get("rope_theta")
            .map(|v| number(v, &format!("rope_parameters.{kind}.rope_theta")))
            .transpose()
    };
    let global = match from_parameters("full_attention")? {
        Some(t) => t,
        None => match json.get("global_rope_theta") {
            Some(v) => number(v, "global_rope_theta")?,
            None => GLOBAL_THETA,
        },
    };
    let local = match from_parameters("sliding_attention")? {
        Some(t) => t,
        None => match json.get("local_rope_theta") {
            Some(Value::Null) => global,
            Some(v) => number(v, "local_rope_theta")?,
            None => LOCAL_THETA,
        },
    };
    Ok((global, local))
}

pub(super) fn packed(w: &Weights, c: &EncoderConfig, precision: Precision) -> Result<Stack> {
    let Some(r) = &c.rotary else {
        candle_core::bail!("ModernBERT without its rotary config");
    };
    let (h, max_len) = (c.hidden, c.max_positions);
    let layout = HeadLayout::multi_head(h, c.heads);
    // One table per distinct base (two in every real config), shared by the layers using it.
    let mut tables: Vec<(f64, Arc<Rotary>)> = Vec::new();
    let mut table = |theta: f64| {
        if let Some((_, t)) = tables.iter().find(|(b, _)| *b == theta) {
            return t.clone();
        }
        let t = Arc::new(Rotary::new(layout.dim, theta, max_len));
        tables.push((theta, t.clone()));
        t
    };
    let mut layers = Vec::with_capacity(c.layers);
    for (i, attention) in r.layers.iter().enumerate() {
        let rotary = table(attention.theta);
        let layer = layer(&w.pp(format!("layers.{i}")), c, r, i, *attention, rotary)?;
        layers.push(Layer::Pre(layer));
    }
    let embeddings = w.pp("embeddings");
    Ok(Stack {
        embeddings: Embeddings {
            word: embeddings.vector((c.vocab_size, h), "tok_embeddings.weight")?,
            positions: None,
            norm: Some(embeddings.pp("norm").norm(h, c.eps, r.norm_bias)?),
            hidden: h,
            second_type: None,
        },
        layers,
        relative: None,
        final_norm: Some(w.pp("final_norm").norm(h, c.eps, r.norm_bias)?),
        precision,
    })
}

fn layer(
    w: &Weights,
    c: &EncoderConfig,
    r: &RotaryConfig,
    index: usize,
    attention: LayerAttention,
    rotary: Arc<Rotary>,
) -> Result<PreNormLayer> {
    let h = c.hidden;
    let layout = HeadLayout::multi_head(h, c.heads);
    let attn = w.pp("attn");
    let (qkv, qkv_bias) = attn
        .pp("Wqkv")
        .projection(h, layout.qkv_width(), r.attention_bias)?;
    let (out, out_bias) = attn
        .pp("Wo")
        .projection(layout.out_width(), h, r.attention_bias)?;
    let mlp = w.pp("mlp");
    let (up, up_bias) = mlp.pp("Wi").projection(h, 2 * c.intermediate, r.mlp_bias)?;
    let (mlp, down_bias) = Mlp::gated(
        up,
        up_bias,
        &mlp.pp("Wo"),
        h,
        GluActivation::Gelu,
        r.mlp_bias,
    )?;
    Ok(PreNormLayer {
        // transformers' first layer has `attn_norm = Identity`.
        attn_norm: match index {
            0 => None,
            _ => Some(w.pp("attn_norm").norm(h, c.eps, r.norm_bias)?),
        },
        attn: SelfAttention {
            qkv,
            qkv_bias,
            out,
            layout,
            rotary: Some(rotary),
            head_norms: None,
            window: attention.window,
            causal: false,
        },
        attn_residual: AddBias {
            bias: if r.attention_bias {
                out_bias
            } else {
                Vec::new()
            },
        },
        mlp_norm: w.pp("mlp_norm").norm(h, c.eps, r.norm_bias)?,
        mlp,
        mlp_residual: AddBias { bias: down_bias },
    })
}

#[cfg(test)]
mod tests;
