//! The post-norm encoder layer of BERT, RoBERTa, DistilBERT and MPNet.

use candle_core::{Result, Tensor};

use super::{Mlp, Norm, Precision, Scores, SelfAttention};

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
