//! The feed-forward half of a layer.

use candle_core::{Result, Tensor};

use super::Weights;
use crate::model::kernels::{BiasGelu, Linear};

pub enum Mlp {
    /// `gelu_erf(x · W_up + b_up) · W_down` (the down bias is folded into the following norm).
    Gelu {
        up: Linear,
        act: BiasGelu,
        down: Linear,
    },
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

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::Gelu { up, act, down } => {
                let inner = up.forward(x)?;
                inner.inplace_op1(act)?;
                down.forward(&inner)
            }
        }
    }

    /// Width of the inner activation (for the batch cost model).
    pub fn inner(&self) -> usize {
        match self {
            Self::Gelu { act, .. } => act.bias.len(),
        }
    }
}
