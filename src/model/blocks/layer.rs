//! The encoder layers: post-norm (BERT, RoBERTa, DistilBERT, MPNet) and pre-norm (ModernBERT),
//! and [`Layer`], either of them.

use candle_core::{Device, Result, Tensor};

use super::{Mlp, Norm, Precision, Scores, SelfAttention};
use crate::model::kernels::{with_slice, AddBias};

/// `x = LN(x + attn(x) + b_o); x = LN(x + mlp(x) + b_down)`, updating `x` in place.
pub struct PostNormLayer {
    pub attn: SelfAttention,
    /// Carries the attention output projection's bias.
    pub attn_norm: Norm,
    pub mlp: Mlp,
    /// Carries the MLP down projection's bias.
    pub mlp_norm: Norm,
}

impl PostNormLayer {
    pub fn forward(
        &self,
        x: &Tensor,
        lens: &[usize],
        scores: Scores,
        precision: Precision,
    ) -> Result<()> {
        let y = self.attn.forward(x, lens, scores, precision)?;
        x.inplace_op2(&y, &self.attn_norm)?;
        drop(y);
        x.inplace_op2(&self.mlp.forward(x)?, &self.mlp_norm)
    }
}

/// `x += attn(N₁(x)) + b_o; x += mlp(N₂(x)) + b_down`, updating `x` in place. `N₁` is absent
/// in ModernBERT's first layer (its embeddings end in a norm already).
pub struct PreNormLayer {
    pub attn_norm: Option<Norm>,
    pub attn: SelfAttention,
    /// Adds the attention output (and its projection's bias) to the residual stream.
    pub attn_residual: AddBias,
    pub mlp_norm: Norm,
    pub mlp: Mlp,
    /// Adds the MLP output (and its down projection's bias) to the residual stream.
    pub mlp_residual: AddBias,
}

impl PreNormLayer {
    pub fn forward(
        &self,
        x: &Tensor,
        lens: &[usize],
        scores: Scores,
        precision: Precision,
    ) -> Result<()> {
        let y = match &self.attn_norm {
            Some(norm) => self
                .attn
                .forward(&normed(x, norm)?, lens, scores, precision)?,
            None => self.attn.forward(x, lens, scores, precision)?,
        };
        x.inplace_op2(&y, &self.attn_residual)?;
        drop(y);
        let y = self.mlp.forward(&normed(x, &self.mlp_norm)?)?;
        x.inplace_op2(&y, &self.mlp_residual)
    }
}

/// `norm(x)` as a new tensor (`x` stays the residual stream).
fn normed(x: &Tensor, norm: &Norm) -> Result<Tensor> {
    let mut v = with_slice(x, <[f32]>::to_vec)?;
    norm.normalize(&mut v);
    Tensor::from_vec(v, x.dims2()?, &Device::Cpu)
}

/// One layer of a [`super::Stack`].
pub enum Layer {
    Post(PostNormLayer),
    Pre(PreNormLayer),
}

impl Layer {
    pub fn forward(
        &self,
        x: &Tensor,
        lens: &[usize],
        scores: Scores,
        precision: Precision,
    ) -> Result<()> {
        match self {
            Self::Post(layer) => layer.forward(x, lens, scores, precision),
            Self::Pre(layer) => layer.forward(x, lens, scores, precision),
        }
    }
}
