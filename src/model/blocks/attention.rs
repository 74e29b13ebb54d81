//! Self-attention: one fused QKV projection, per-head q/k RMSNorms and rotary embeddings where
//! the family has them, the packed attention kernel with this layer's mask (sliding window,
//! causal) and head layout (grouped-query: fewer K/V heads than query heads, heads of any width),
//! the output projection (its bias is folded into the norm or residual add that follows, see
//! [`super::PostNormLayer`] and [`super::PreNormLayer`]).

use std::sync::Arc;

use candle_core::{Result, Tensor};

use super::{HeadLayout, Precision, Scores, Weights};
use crate::model::kernels::{self, HeadNorms, Linear, Rotary, RotaryStep};

pub struct SelfAttention {
    /// `[hidden, layout.qkv_width()]`: Q, K and V side by side, so one product projects all three.
    pub qkv: Linear,
    pub qkv_bias: Vec<f32>,
    /// `[layout.out_width(), hidden]`.
    pub out: Linear,
    pub layout: HeadLayout,
    /// Rotary embeddings of Q and K (with this layer's base), applied after the QKV bias.
    pub rotary: Option<Arc<Rotary>>,
    /// Per-head RMSNorms of Q and K between the bias and the rotation (Qwen3); only with `rotary`.
    pub head_norms: Option<HeadNorms>,
    /// Sliding window: a query sees keys at most this far away (ModernBERT's local layers).
    pub window: Option<usize>,
    /// A query sees only the keys up to itself (decoder models served as encoders).
    pub causal: bool,
}

impl SelfAttention {
    /// Loads Q, K, V (`names`, each with weight and bias, under `w`) and the output projection
    /// (`out`), returning the block and the output projection's bias.
    pub fn load(
        w: &Weights,
        names: [&str; 3],
        out: &Weights,
        hidden: usize,
        layout: HeadLayout,
    ) -> Result<(Self, Vec<f32>)> {
        let (q, kv) = (layout.out_width(), layout.kv_heads * layout.dim);
        let (qkv, qkv_bias) = w.fused(&[(names[0], q), (names[1], kv), (names[2], kv)], hidden)?;
        let (out, out_bias) = out.dense(layout.out_width(), hidden)?;
        let block = Self {
            qkv,
            qkv_bias,
            out,
            layout,
            rotary: None,
            head_norms: None,
            window: None,
            causal: false,
        };
        Ok((block, out_bias))
    }

    /// `attn(x) · W_o` (without the output bias) over packed sequences of `lens` tokens.
    pub fn forward(
        &self,
        x: &Tensor,
        lens: &[usize],
        scores: Scores,
        precision: Precision,
    ) -> Result<Tensor> {
        let qkv = self.qkv.forward(x)?;
        let scores = Scores {
            window: self.window,
            causal: self.causal,
            ..scores
        };
        let ctx = match &self.rotary {
            None if self.head_norms.is_some() => {
                candle_core::bail!("q/k norms without rotary embeddings are not implemented")
            }
            None => kernels::attention(&qkv, &self.qkv_bias, lens, self.layout, scores, precision)?,
            Some(rotary) => {
                // The bias goes in before the rotation, so attention gets none of its own.
                let bias = if self.qkv_bias.iter().all(|&b| b == 0.0) {
                    &[][..]
                } else {
                    &self.qkv_bias[..]
                };
                qkv.inplace_op1(&RotaryStep {
                    rotary,
                    lens,
                    bias,
                    norms: self.head_norms.as_ref(),
                    layout: self.layout,
                })?;
                let zeros = vec![0f32; self.qkv_bias.len()];
                kernels::attention(&qkv, &zeros, lens, self.layout, scores, precision)?
            }
        };
        drop(qkv);
        self.out.forward(&ctx)
    }
}
