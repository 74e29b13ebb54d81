//! The two row-wise kernels of pre-norm layers: a gated activation (GeGLU, SwiGLU) that halves
//! the width of the fused up-projection, and the residual add `x += y + bias`.

use candle_core::{bail, CpuStorage, Device, InplaceOp2, Layout, Result, Tensor};
use rayon::prelude::*;

use super::{contiguous, contiguous_mut, exp, gelu, with_slice, ROWS_PER_TASK};

/// The activation applied to the first half of a gated row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GluActivation {
    /// GELU (erf): GeGLU (ModernBERT).
    Gelu,
    /// SiLU: SwiGLU (Qwen, Llama).
    Silu,
}

/// `out = act(x[..inner] + b[..inner]) · (x[inner..] + b[inner..])` per row of a
/// `[tokens, 2 · inner]` projection: the activated half first, the gate after it (ModernBERT's
/// `Wi(x).chunk(2)` is `input, gate`; a SwiGLU fuses `gate_proj` then `up_proj` the same way).
pub struct Glu {
    /// `[2 · inner]`, zeros when the projection has no bias.
    pub bias: Vec<f32>,
    pub act: GluActivation,
}

impl Glu {
    /// Width of the output rows.
    pub fn inner(&self) -> usize {
        self.bias.len() / 2
    }

    /// `[tokens, inner]` from the `[tokens, 2 · inner]` projection `x`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (tokens, width) = x.dims2()?;
        if width != self.bias.len() || !width.is_multiple_of(2) {
            bail!("glu: rows of {width} for a bias of {}", self.bias.len());
        }
        let inner = self.inner();
        let mut out = vec![0f32; tokens * inner];
        with_slice(x, |x| {
            out.par_chunks_mut(inner * ROWS_PER_TASK)
                .zip(x.par_chunks(width * ROWS_PER_TASK))
                .for_each(|(out, x)| glu_rows(out, x, &self.bias, self.act));
        })?;
        Tensor::from_vec(out, (tokens, inner), &Device::Cpu)
    }
}

#[inline(always)]
fn silu<const FMA: bool>(x: f32) -> f32 {
    x / (1.0 + exp::<FMA>(-x))
}

#[inline(always)]
fn glu_body<const FMA: bool>(out: &mut [f32], x: &[f32], bias: &[f32], act: GluActivation) {
    let inner = bias.len() / 2;
    let (b_act, b_gate) = bias.split_at(inner);
    for (out, x) in out.chunks_exact_mut(inner).zip(x.chunks_exact(2 * inner)) {
        let (x_act, x_gate) = x.split_at(inner);
        let rows = out.iter_mut().zip(x_act.iter().zip(b_act));
        for ((o, (a, ba)), (g, bg)) in rows.zip(x_gate.iter().zip(b_gate)) {
            let a = match act {
                GluActivation::Gelu => gelu::<FMA>(a + ba),
                GluActivation::Silu => silu::<FMA>(a + ba),
            };
            *o = a * (g + bg);
        }
    }
}
dispatch!(fn glu_rows(out: &mut [f32], x: &[f32], bias: &[f32], act: GluActivation) => glu_body);

/// In place on the residual stream: `x += y + bias` (`bias` empty: `x += y`).
pub struct AddBias {
    pub bias: Vec<f32>,
}

impl InplaceOp2 for AddBias {
    fn name(&self) -> &'static str {
        "add-bias"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let ys = contiguous(s2, l2)?;
        let xs = contiguous_mut(s1, l1)?;
        if xs.len() != ys.len()
            || (!self.bias.is_empty() && !xs.len().is_multiple_of(self.bias.len()))
        {
            bail!("add-bias: {} vs {} elements", xs.len(), ys.len());
        }
        let width = if self.bias.is_empty() {
            1024
        } else {
            self.bias.len()
        };
        let step = width * ROWS_PER_TASK;
        xs.par_chunks_mut(step)
            .zip(ys.par_chunks(step))
            .for_each(|(x, y)| {
                if self.bias.is_empty() {
                    x.iter_mut().zip(y).for_each(|(x, y)| *x += y);
                    return;
                }
                for (x, y) in x.chunks_exact_mut(width).zip(y.chunks_exact(width)) {
                    for ((x, y), b) in x.iter_mut().zip(y).zip(&self.bias) {
                        *x += y + b;
                    }
                }
            });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kernels::tests::noise;

    /// GELU (erf) by candle's own op, in f64.
    fn gelu_f64(x: f64) -> f64 {
        let t = Tensor::new(&[x], &Device::Cpu).unwrap();
        t.gelu_erf().unwrap().to_vec1::<f64>().unwrap()[0]
    }

    #[test]
    fn glu_matches_the_reference() -> Result<()> {
        let (tokens, inner) = (13, 24);
        let x = noise(tokens * 2 * inner, 3, 3.0);
        for act in [GluActivation::Gelu, GluActivation::Silu] {
            let glu = Glu {
                bias: noise(2 * inner, 4, 0.5),
                act,
            };
            let t = Tensor::from_vec(x.clone(), (tokens, 2 * inner), &Device::Cpu)?;
            let got = glu.forward(&t)?.to_vec2::<f32>()?;
            for (r, row) in got.iter().enumerate() {
                for (c, g) in row.iter().enumerate() {
                    let a = (x[r * 2 * inner + c] + glu.bias[c]) as f64;
                    let gate = (x[r * 2 * inner + inner + c] + glu.bias[inner + c]) as f64;
                    let a = match act {
                        GluActivation::Gelu => gelu_f64(a),
                        GluActivation::Silu => a / (1.0 + (-a).exp()),
                    };
                    let want = a * gate;
                    assert!(
                        (*g as f64 - want).abs() < 1e-5,
                        "{act:?} {r},{c}: {g} vs {want}"
                    );
                }
            }
        }
        Ok(())
    }

    #[test]
    fn add_bias_adds_rows() -> Result<()> {
        let x = Tensor::from_vec(vec![1f32, 2., 3., 4.], (2, 2), &Device::Cpu)?;
        let y = Tensor::from_vec(vec![10f32, 20., 30., 40.], (2, 2), &Device::Cpu)?;
        x.inplace_op2(
            &y,
            &AddBias {
                bias: vec![0.5, -1.0],
            },
        )?;
        assert_eq!(
            x.to_vec2::<f32>()?,
            vec![vec![11.5, 21.0], vec![33.5, 43.0]]
        );
        x.inplace_op2(&y, &AddBias { bias: Vec::new() })?;
        assert_eq!(
            x.to_vec2::<f32>()?,
            vec![vec![21.5, 41.0], vec![63.5, 83.0]]
        );
        Ok(())
    }
}
