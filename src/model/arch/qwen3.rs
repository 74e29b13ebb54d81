//! Qwen3, a decoder served as a bi-encoder the way Qwen3-Embedding is: token embeddings (no
//! position rows), pre-norm layers of RMSNorm → attention → residual, RMSNorm → SwiGLU MLP
//! (`gate_proj`, `up_proj`, `down_proj`) → residual, then a final RMSNorm. Attention projects
//! Q, K and V (biases only with `attention_bias`), RMS-normalises every Q and K head
//! (`q_norm`, `k_norm`), rotates them (one base for every layer), runs grouped-query heads
//! (`num_key_value_heads`) of `head_dim` values under a causal mask, and projects back with
//! `o_proj`. Pooling (`lasttoken` in Qwen3-Embedding) is the sentence-transformers pipeline's.
//!
//! Weight names are `Qwen3Model`'s, bare or under `model.` (`Qwen3ForCausalLM`). Config
//! spellings: transformers 5.x writes `rope_parameters` (`{"rope_type": "default", "rope_theta":
//! ..}`) and `layer_types`; 4.x writes `rope_theta` (and `rope_scaling`). Defaults are
//! `Qwen3Config`'s. What is not implemented is refused here, at startup: sliding-window layers
//! (`use_sliding_window`, or a `sliding_attention` layer type) and scaled rotary types.

use std::sync::Arc;

use anyhow::{bail, Context};
use candle_core::Result;
use serde::Deserialize;
use serde_json::Value;

use super::config::{DecoderConfig, EncoderConfig, LayerAttention, RotaryConfig};
use crate::model::blocks::{
    Embeddings, HeadLayout, Layer, Mlp, PositionIds, PreNormLayer, Precision, SelfAttention, Stack,
    Weights,
};
use crate::model::kernels::{AddBias, GluActivation, HeadNorms, Rotary};

/// A tensor every Qwen3 checkpoint has, to find its prefix (`model.` in causal-LM checkpoints).
pub(super) const PROBE: &str = "embed_tokens.weight";

/// transformers' defaults (`Qwen3Config`) for fields a config may leave out.
const THETA: f64 = 10_000.0;
const HEAD_DIM: usize = 128;
const KV_HEADS: usize = 32;

#[derive(Deserialize)]
struct Config {
    vocab_size: usize,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    #[serde(default = "max_positions")]
    max_position_embeddings: usize,
    #[serde(default = "rms_norm_eps")]
    rms_norm_eps: f64,
    #[serde(default)]
    attention_bias: bool,
    #[serde(default = "silu")]
    hidden_act: String,
    #[serde(default)]
    use_sliding_window: bool,
    #[serde(default)]
    layer_types: Option<Vec<String>>,
    #[serde(default = "causal")]
    is_causal: bool,
    #[serde(default)]
    pad_token_id: Option<u32>,
}

fn max_positions() -> usize {
    32_768
}
fn rms_norm_eps() -> f64 {
    1e-6
}
fn silu() -> String {
    "silu".into()
}
fn causal() -> bool {
    true
}

pub(super) fn config(json: &Value) -> anyhow::Result<EncoderConfig> {
    let c: Config = serde_json::from_value(json.clone())?;
    if !matches!(c.hidden_act.as_str(), "silu" | "swish") {
        bail!(
            "activation {:?} is not supported: Qwen3's MLP runs \"silu\" only",
            c.hidden_act
        );
    }
    refuse_sliding_window(&c)?;
    let (kv_heads, head_dim) = heads(json, &c)?;
    let theta = theta(json)?;
    Ok(EncoderConfig {
        vocab_size: c.vocab_size,
        hidden: c.hidden_size,
        layers: c.num_hidden_layers,
        heads: c.num_attention_heads,
        intermediate: c.intermediate_size,
        max_positions: c.max_position_embeddings,
        type_vocab_size: 0,
        eps: c.rms_norm_eps,
        pad_token_id: c.pad_token_id.unwrap_or(0),
        positions: PositionIds::FromZero,
        relative_buckets: None,
        rotary: Some(RotaryConfig {
            layers: vec![
                LayerAttention {
                    theta,
                    window: None
                };
                c.num_hidden_layers
            ],
            attention_bias: c.attention_bias,
            mlp_bias: false,
            norm_bias: false,
        }),
        decoder: Some(DecoderConfig {
            kv_heads,
            head_dim,
            causal: c.is_causal,
        }),
    })
}

/// Sliding-window attention is not implemented for Qwen3: refuse it rather than serve full
/// attention in its place.
fn refuse_sliding_window(c: &Config) -> anyhow::Result<()> {
    if c.use_sliding_window {
        bail!("use_sliding_window is true: sliding-window attention is not implemented for qwen3");
    }
    let types = c.layer_types.as_deref().unwrap_or_default();
    if let Some(other) = types.iter().find(|t| *t != "full_attention") {
        bail!("layer type {other:?} is not supported for qwen3 (only full_attention)");
    }
    if !types.is_empty() && types.len() != c.num_hidden_layers {
        bail!(
            "layer_types names {} layers, num_hidden_layers is {}",
            types.len(),
            c.num_hidden_layers
        );
    }
    Ok(())
}

/// `(kv_heads, head_dim)` as transformers reads them: a missing `num_key_value_heads` is 32 and
/// a `null` one the query heads; a missing `head_dim` is 128 and a `null` one `hidden / heads`.
fn heads(json: &Value, c: &Config) -> anyhow::Result<(usize, usize)> {
    let heads = c.num_attention_heads;
    let field = |name: &str, missing: usize, null: usize| match json.get(name) {
        None => Ok(missing),
        Some(Value::Null) => Ok(null),
        Some(v) => v
            .as_u64()
            .map(|n| n as usize)
            .with_context(|| format!("{name} must be a whole number, got {v}")),
    };
    let kv_heads = field("num_key_value_heads", KV_HEADS, heads)?;
    let head_dim = field("head_dim", HEAD_DIM, c.hidden_size / heads.max(1))?;
    if heads == 0 || kv_heads == 0 || !heads.is_multiple_of(kv_heads) {
        bail!("num_attention_heads {heads} is not a multiple of num_key_value_heads {kv_heads}");
    }
    if head_dim == 0 || !head_dim.is_multiple_of(2) {
        bail!("rotary embeddings need an even head_dim, got {head_dim}");
    }
    Ok((kv_heads, head_dim))
}

/// The rotary base from `rope_parameters` (5.x) or `rope_theta` (4.x), else 10000; any rotary
/// type but `default` (linear, dynamic, yarn scaling...) is refused.
fn theta(json: &Value) -> anyhow::Result<f64> {
    let number = |v: &Value, what: &str| {
        v.as_f64()
            .filter(|t| *t > 0.0)
            .with_context(|| format!("{what} must be a positive number, got {v}"))
    };
    let parameters = json.get("rope_parameters").filter(|p| !p.is_null());
    if parameters.is_some_and(|p| p.get("full_attention").is_some()) {
        bail!("rope_parameters per layer type are not supported for qwen3 (one rope_theta)");
    }
    for key in ["rope_parameters", "rope_scaling"] {
        let kind = json
            .get(key)
            .and_then(|p| p.get("rope_type").or(p.get("type")));
        if let Some(kind) = kind.filter(|k| !k.is_null()) {
            if kind.as_str() != Some("default") {
                bail!("{key} type {kind} is not supported (only \"default\")");
            }
        }
    }
    if let Some(theta) = parameters.and_then(|p| p.get("rope_theta")) {
        return number(theta, "rope_parameters.rope_theta");
    }
    match json.get("rope_theta") {
        Some(theta) => number(theta, "rope_theta"),
        None => Ok(THETA),
    }
}

pub(super) fn packed(w: &Weights, c: &EncoderConfig, precision: Precision) -> Result<Stack> {
    let (Some(r), Some(d)) = (&c.rotary, &c.decoder) else {
        candle_core::bail!("Qwen3 without its rotary and decoder config");
    };
    let h = c.hidden;
    let layout = HeadLayout {
        heads: c.heads,
        kv_heads: d.kv_heads,
        dim: d.head_dim,
    };
    let theta = r.layers.first().map_or(THETA, |l| l.theta);
    let rotary = Arc::new(Rotary::new(layout.dim, theta, c.max_positions));
    let layers = (0..c.layers)
        .map(|i| {
            let w = w.pp(format!("layers.{i}"));
            Ok(Layer::Pre(layer(
                &w,
                c,
                *d,
                layout,
                r.attention_bias,
                rotary.clone(),
            )?))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Stack {
        embeddings: Embeddings {
            word: w.vector((c.vocab_size, h), "embed_tokens.weight")?,
            positions: None,
            norm: None,
            hidden: h,
            second_type: None,
        },
        layers,
        relative: None,
        final_norm: Some(w.pp("norm").rms_norm(h, c.eps)?),
        precision,
    })
}

fn layer(
    w: &Weights,
    c: &EncoderConfig,
    d: DecoderConfig,
    layout: HeadLayout,
    bias: bool,
    rotary: Arc<Rotary>,
) -> Result<PreNormLayer> {
    let h = c.hidden;
    let (q, kv) = (layout.out_width(), layout.kv_heads * layout.dim);
    let attn = w.pp("self_attn");
    let names = [("q_proj", q), ("k_proj", kv), ("v_proj", kv)];
    let (qkv, qkv_bias) = attn.fused_with(&names, h, bias)?;
    let (out, out_bias) = attn.pp("o_proj").projection(q, h, bias)?;
    let head_norms = HeadNorms {
        q: attn.pp("q_norm").vector(layout.dim, "weight")?,
        k: attn.pp("k_norm").vector(layout.dim, "weight")?,
        eps: c.eps as f32,
    };
    let mlp = w.pp("mlp");
    let gate_up = [("gate_proj", c.intermediate), ("up_proj", c.intermediate)];
    let (up, up_bias) = mlp.fused_with(&gate_up, h, false)?;
    let (mlp, down_bias) = Mlp::gated(
        up,
        up_bias,
        &mlp.pp("down_proj"),
        h,
        GluActivation::Silu,
        false,
    )?;
    Ok(PreNormLayer {
        attn_norm: Some(w.pp("input_layernorm").rms_norm(h, c.eps)?),
        attn: SelfAttention {
            qkv,
            qkv_bias,
            out,
            layout,
            rotary: Some(rotary),
            head_norms: Some(head_norms),
            window: None,
            causal: d.causal,
        },
        attn_residual: AddBias {
            bias: if bias { out_bias } else { Vec::new() },
        },
        mlp_norm: w.pp("post_attention_layernorm").rms_norm(h, c.eps)?,
        mlp,
        mlp_residual: AddBias { bias: down_bias },
    })
}

#[cfg(test)]
mod tests;
