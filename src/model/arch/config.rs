//! The encoder hyper-parameters every family here shares, read from `config.json`.

use anyhow::bail;
use serde::Deserialize;
use serde_json::Value;

use crate::model::blocks::PositionIds;

/// What the blocks need to know, whichever spelling the config used.
#[derive(Debug, Clone, PartialEq)]
pub struct EncoderConfig {
    pub vocab_size: usize,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub intermediate: usize,
    pub max_positions: usize,
    /// 0 when the family has no token-type table.
    pub type_vocab_size: usize,
    pub eps: f64,
    pub pad_token_id: u32,
    pub positions: PositionIds,
    /// MPNet: rows of the shared relative attention bias table.
    pub relative_buckets: Option<usize>,
    /// Rotary pre-norm families (ModernBERT, Qwen3): each layer's attention and which
    /// projections and norms have biases; `None` for the absolute-position families.
    pub rotary: Option<RotaryConfig>,
    /// Decoder families served as encoders (Qwen3): grouped-query heads, their width, the mask.
    pub decoder: Option<DecoderConfig>,
}

/// What a decoder's config says about attention beyond [`EncoderConfig::heads`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecoderConfig {
    /// K/V heads (`num_key_value_heads`); fewer than query heads is grouped-query attention.
    pub kv_heads: usize,
    /// Width of every head (`head_dim`), which need not be `hidden / heads`.
    pub head_dim: usize,
    /// Each token sees only itself and the tokens before it (`is_causal`, true unless a config
    /// says otherwise, as transformers reads it).
    pub causal: bool,
}

/// What a rotary pre-norm family's config says beyond the shared fields.
#[derive(Debug, Clone, PartialEq)]
pub struct RotaryConfig {
    /// One per layer.
    pub layers: Vec<LayerAttention>,
    pub attention_bias: bool,
    pub mlp_bias: bool,
    pub norm_bias: bool,
}

/// One layer's attention: its rotary base and, for a local layer, its sliding window (a query
/// sees keys at most `window` positions away).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerAttention {
    pub theta: f64,
    pub window: Option<usize>,
}

impl EncoderConfig {
    /// Longest sequence the position table allows.
    pub fn max_len(&self) -> usize {
        self.positions.capacity(self.max_positions)
    }
}

/// BERT-style field names (BERT, RoBERTa, XLM-R, CamemBERT, MPNet). Fields transformers 5.x
/// stopped writing have the 4.x defaults.
#[derive(Deserialize)]
pub(super) struct BertStyle {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    #[serde(default)]
    pub type_vocab_size: Option<usize>,
    #[serde(default = "layer_norm_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub pad_token_id: Option<u32>,
    #[serde(default = "gelu")]
    pub hidden_act: String,
    #[serde(default)]
    pub position_embedding_type: Option<String>,
    #[serde(default)]
    pub relative_attention_num_buckets: Option<usize>,
}

fn layer_norm_eps() -> f64 {
    1e-12
}

fn gelu() -> String {
    "gelu".into()
}

impl BertStyle {
    pub fn read(json: &Value) -> anyhow::Result<Self> {
        let c: Self = serde_json::from_value(json.clone())?;
        check_activation(&c.hidden_act)?;
        if let Some(kind) = c.position_embedding_type.as_deref() {
            if kind != "absolute" {
                bail!("position_embedding_type {kind:?} is not supported (only \"absolute\")");
            }
        }
        if c.num_attention_heads == 0 || !c.hidden_size.is_multiple_of(c.num_attention_heads) {
            bail!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                c.hidden_size,
                c.num_attention_heads
            );
        }
        Ok(c)
    }
}

impl BertStyle {
    /// The shared fields; the family decides positions, padding id and token types.
    pub fn encoder(
        &self,
        positions: PositionIds,
        pad_token_id: u32,
        type_vocab_size: usize,
    ) -> EncoderConfig {
        EncoderConfig {
            vocab_size: self.vocab_size,
            hidden: self.hidden_size,
            layers: self.num_hidden_layers,
            heads: self.num_attention_heads,
            intermediate: self.intermediate_size,
            max_positions: self.max_position_embeddings,
            type_vocab_size,
            eps: self.layer_norm_eps,
            pad_token_id,
            positions,
            relative_buckets: None,
            rotary: None,
            decoder: None,
        }
    }
}

/// The MLP activation must be the erf GELU the packed MLP computes.
pub(super) fn check_activation(act: &str) -> anyhow::Result<()> {
    if act != "gelu" {
        bail!("activation {act:?} is not supported: the packed encoder runs \"gelu\" (erf) only");
    }
    Ok(())
}
