//! Reading tensors for the blocks: f32 vectors, projections laid out for the kernels, norms.

use candle_core::{DType, Result, Tensor};
use candle_nn::VarBuilder;

use super::super::kernels::{AddLayerNorm, Linear, NormKind, Precision};

/// A family's weights: a `VarBuilder` already past the checkpoint's prefix (`bert.`, ...).
#[derive(Clone)]
pub struct Weights<'a> {
    pub vb: VarBuilder<'a>,
    pub precision: Precision,
}

/// A norm (LayerNorm or RMSNorm) applied to the residual stream, fused with the residual add and
/// the bias of the projection whose output is added.
pub type Norm = AddLayerNorm;

impl<'a> Weights<'a> {
    /// Descends into the first of `prefixes` that holds `probe` (else stays at the root), so a
    /// checkpoint saved from a task model (`bert.embeddings...`) loads like a bare one.
    pub fn new(vb: VarBuilder<'a>, prefixes: &[&str], probe: &str, precision: Precision) -> Self {
        let vb = prefixes
            .iter()
            .map(|prefix| vb.pp(*prefix))
            .find(|vb| vb.contains_tensor(probe))
            .unwrap_or(vb);
        Self { vb, precision }
    }

    pub fn pp(&self, name: impl ToString) -> Self {
        Self {
            vb: self.vb.pp(name.to_string()),
            precision: self.precision,
        }
    }

    /// Any tensor as a flat f32 vector.
    pub fn flat(t: &Tensor) -> Result<Vec<f32>> {
        flat(t)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.vb.contains_tensor(name)
    }

    /// A tensor of `shape` as a flat f32 vector.
    pub fn vector(&self, shape: impl Into<candle_core::Shape>, name: &str) -> Result<Vec<f32>> {
        flat(&self.vb.get(shape, name)?)
    }

    pub fn tensor(&self, shape: impl Into<candle_core::Shape>, name: &str) -> Result<Tensor> {
        self.vb.get(shape, name)
    }

    /// The `[outputs, inputs]` weight at `weight` (torch's `nn.Linear` layout), as `x · W`.
    pub fn linear(&self, inputs: usize, outputs: usize) -> Result<Linear> {
        Linear::new(
            &transposed(&self.vb.get((outputs, inputs), "weight")?)?,
            self.precision,
        )
    }

    /// [`Self::linear`] and its bias.
    pub fn dense(&self, inputs: usize, outputs: usize) -> Result<(Linear, Vec<f32>)> {
        Ok((self.linear(inputs, outputs)?, self.vector(outputs, "bias")?))
    }

    /// [`Self::linear`] and its bias when `bias`, else zeros (families whose configs switch
    /// projection biases on and off).
    pub fn projection(
        &self,
        inputs: usize,
        outputs: usize,
        bias: bool,
    ) -> Result<(Linear, Vec<f32>)> {
        match bias {
            true => self.dense(inputs, outputs),
            false => Ok((self.linear(inputs, outputs)?, vec![0.0; outputs])),
        }
    }

    /// Several `[outputs_i, inputs]` projections side by side as one `x · [W_1 W_2 ...]`, with
    /// their biases concatenated (Q, K and V fused into one product).
    pub fn fused(&self, parts: &[(&str, usize)], inputs: usize) -> Result<(Linear, Vec<f32>)> {
        self.fused_with(parts, inputs, true)
    }

    /// [`Self::fused`]; without `bias` the projections have none and the bias is zeros (Qwen3's
    /// Q/K/V, a SwiGLU's gate and up projections).
    pub fn fused_with(
        &self,
        parts: &[(&str, usize)],
        inputs: usize,
        bias: bool,
    ) -> Result<(Linear, Vec<f32>)> {
        let mut ws = Vec::with_capacity(parts.len());
        let mut biases = Vec::new();
        for (name, outputs) in parts {
            let vb = self.vb.pp(*name);
            ws.push(vb.get((*outputs, inputs), "weight")?);
            match bias {
                true => biases.extend(flat(&vb.get(*outputs, "bias")?)?),
                false => biases.extend(std::iter::repeat_n(0.0, *outputs)),
            }
        }
        let w = transposed(&Tensor::cat(&ws, 0)?)?;
        Ok((Linear::new(&w, self.precision)?, biases))
    }

    /// A LayerNorm over `n` features with a `weight` and, when `bias`, a `bias` (else none),
    /// not fused with a residual add (pre-norm layers, final norms).
    pub fn norm(&self, n: usize, eps: f64, bias: bool) -> Result<Norm> {
        Ok(AddLayerNorm {
            bias: Vec::new(),
            gamma: self.vector(n, "weight")?,
            beta: match bias {
                true => self.vector(n, "bias")?,
                false => vec![0.0; n],
            },
            eps: eps as f32,
            kind: NormKind::Layer,
        })
    }

    /// An RMSNorm over `n` features with a `weight` (no bias), not fused with a residual add
    /// (pre-norm layers, final norms).
    pub fn rms_norm(&self, n: usize, eps: f64) -> Result<Norm> {
        Ok(AddLayerNorm {
            bias: Vec::new(),
            gamma: self.vector(n, "weight")?,
            beta: vec![0.0; n],
            eps: eps as f32,
            kind: NormKind::Rms,
        })
    }

    /// A LayerNorm (`weight`, `bias`) over `n` features, to be fused with `residual_bias`.
    pub fn layer_norm(&self, n: usize, eps: f64, residual_bias: Vec<f32>) -> Result<Norm> {
        Ok(AddLayerNorm {
            bias: residual_bias,
            gamma: self.vector(n, "weight")?,
            beta: self.vector(n, "bias")?,
            eps: eps as f32,
            kind: NormKind::Layer,
        })
    }
}

fn transposed(w: &Tensor) -> Result<Tensor> {
    w.to_dtype(DType::F32)?.t()?.contiguous()
}

fn flat(t: &Tensor) -> Result<Vec<f32>> {
    t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()
}
