//! The feed-forward half of a layer: BERT's GELU MLP, or a gated one (GeGLU, SwiGLU) whose
//! up-projection yields the activated half and the gate side by side.

use candle_core::{Result, Tensor};

use super::Weights;
use crate::model::kernels::{BiasGelu, Glu, GluActivation, Linear};

pub enum Mlp {
    /// `gelu_erf(x · W_up + b_up) · W_down` (the down bias is folded into the following norm).
    Gelu {
        up: Linear,
        act: BiasGelu,
        down: Linear,
    },
    /// `(act(x · W_a + b_a) ⊙ (x · W_g + b_g)) · W_down`, with `[W_a W_g]` one projection (the
    /// down bias is left to the residual add that follows).
    Gated { up: Linear, glu: Glu, down: Linear },
}

impl Mlp {
    /// A GELU MLP from `up` and `down` projections, returning it and the down projection's bias.
    pub fn gelu(
        up: &Weights,
        down: &Weights,
        hidden: usize,
        inner: usize,
    ) -> Result<(Self, Vec<f32>)> {
        let (up, up_bias) = up.dense(hidden, inner)?;
        let (down, down_bias) = down.dense(inner, hidden)?;
        let act = BiasGelu { bias: up_bias };
        Ok((Self::Gelu { up, act, down }, down_bias))
    }

    /// A gated MLP: `up` is the fused `[2 · inner, hidden]` projection (activated half first),
    /// `bias` whether the projections have biases. Returns it and the down projection's bias
    /// (empty without biases).
    pub fn gated(
        up: Linear,
        up_bias: Vec<f32>,
        down: &Weights,
        hidden: usize,
        act: GluActivation,
        bias: bool,
    ) -> Result<(Self, Vec<f32>)> {
        let inner = up_bias.len() / 2;
        let (down, down_bias) = if bias {
            down.dense(inner, hidden)?
        } else {
            (down.linear(inner, hidden)?, Vec::new())
        };
        let glu = Glu { bias: up_bias, act };
        Ok((Self::Gated { up, glu, down }, down_bias))
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::Gelu { up, act, down } => {
                let inner = up.forward(x)?;
                inner.inplace_op1(act)?;
                down.forward(&inner)
            }
            Self::Gated { up, glu, down } => {
                let both = up.forward(x)?;
                let inner = glu.forward(&both)?;
                drop(both);
                down.forward(&inner)
            }
        }
    }

    /// Width of the inner activation (for the batch cost model).
    pub fn inner(&self) -> usize {
        match self {
            Self::Gelu { act, .. } => act.bias.len(),
            Self::Gated { glu, .. } => glu.inner(),
        }
    }
}
