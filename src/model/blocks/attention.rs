//! Self-attention: one fused QKV projection, the packed attention kernel, the output
//! projection (its bias is folded into the norm that follows, see [`super::PostNormLayer`]).

use candle_core::{Result, Tensor};

use super::{HeadLayout, Precision, Scores, Weights};
use crate::model::kernels::{self, Linear};

pub struct SelfAttention {
    /// `[hidden, layout.qkv_width()]`: Q, K and V side by side, so one product projects all three.
    pub qkv: Linear,
    pub qkv_bias: Vec<f32>,
    /// `[layout.out_width(), hidden]`.
    pub out: Linear,
    pub layout: HeadLayout,
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
        let ctx = kernels::attention(&qkv, &self.qkv_bias, lens, self.layout, scores, precision)?;
        drop(qkv);
        self.out.forward(&ctx)
    }
}
