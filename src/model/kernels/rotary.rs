//! Rotary position embeddings in the "rotate half" form (GPT-NeoX, Llama, ModernBERT, Qwen):
//! within each head of `dim` values, value `c < dim / 2` and value `c + dim / 2` turn together
//! by the angle `position · θ^(-2c / dim)`. Applied in place to the Q and K heads of a packed
//! QKV buffer, between the projection and [`super::attention`]; positions restart at 0 with
//! every packed sequence.
//!
//! Families with q/k norms (Qwen3) RMS-normalise every Q and K head over its `dim` values in the
//! same pass, before the rotation, as transformers' `q_norm` / `k_norm` do.
//!
//! The angles follow transformers' arithmetic (an `f32` inverse frequency times an `f32`
//! position), the sines and cosines are taken in `f64` and tabled once at load.

use candle_core::{bail, CpuStorage, InplaceOp1, Layout, Result};
use rayon::prelude::*;

use super::{contiguous_mut, inverse_rms, HeadLayout};

/// Tabled `cos` and `sin` of every (position, frequency) for one base θ.
pub struct Rotary {
    half: usize,
    /// `[max_len][half]`.
    cos: Vec<f32>,
    sin: Vec<f32>,
}

impl Rotary {
    /// The table for heads `dim` wide (even), base `theta`, positions `0..max_len`.
    pub fn new(dim: usize, theta: f64, max_len: usize) -> Self {
        let half = dim / 2;
        let inv_freq: Vec<f32> = (0..half)
            .map(|c| (1.0 / theta.powf((2 * c) as f64 / dim as f64)) as f32)
            .collect();
        let mut cos = Vec::with_capacity(max_len * half);
        let mut sin = Vec::with_capacity(max_len * half);
        for p in 0..max_len {
            for f in &inv_freq {
                let angle = (p as f32 * f) as f64;
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
        Self { half, cos, sin }
    }

    /// Longest sequence the table covers.
    pub fn max_len(&self) -> usize {
        self.cos.len() / self.half.max(1)
    }

    /// Turns one head's values (`2 · half` wide) to `position`.
    #[inline(always)]
    fn rotate(&self, head: &mut [f32], position: usize) {
        let (x1, x2) = head.split_at_mut(self.half);
        let at = position * self.half;
        let (cos, sin) = (&self.cos[at..][..self.half], &self.sin[at..][..self.half]);
        for (((a, b), c), s) in x1.iter_mut().zip(x2.iter_mut()).zip(cos).zip(sin) {
            let (x, y) = (*a, *b);
            *a = x * c - y * s;
            *b = y * c + x * s;
        }
    }
}

/// Per-head RMSNorms of Q and K (Qwen3's `q_norm`, `k_norm`): each head's `dim` values are
/// scaled to unit RMS, then by the weight (one value per head column, shared by all heads).
pub struct HeadNorms {
    /// `[dim]`.
    pub q: Vec<f32>,
    /// `[dim]`.
    pub k: Vec<f32>,
    pub eps: f32,
}

/// `head = head / rms(head) * gamma` for every head of `heads` (`gamma.len()` wide each).
#[inline(always)]
fn normalize_heads_body<const FMA: bool>(heads: &mut [f32], gamma: &[f32], eps: f32) {
    for head in heads.chunks_exact_mut(gamma.len()) {
        let scale = inverse_rms::<FMA>(head, eps);
        head.iter_mut()
            .zip(gamma)
            .for_each(|(v, g)| *v = *v * scale * g);
    }
}
dispatch!(fn normalize_heads(heads: &mut [f32], gamma: &[f32], eps: f32) => normalize_heads_body);

/// In place on a `[tokens, layout.qkv_width()]` QKV projection of packed sequences of `lens`
/// tokens: adds `bias` to every row (nothing when empty), RMS-normalises every Q and K head
/// when `norms` is given, then rotates every Q and K head.
pub struct RotaryStep<'a> {
    pub rotary: &'a Rotary,
    pub lens: &'a [usize],
    pub bias: &'a [f32],
    pub norms: Option<&'a HeadNorms>,
    pub layout: HeadLayout,
}

impl InplaceOp1 for RotaryStep<'_> {
    fn name(&self) -> &'static str {
        "bias-rotary"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        let xs = contiguous_mut(storage, layout)?;
        let width = self.layout.qkv_width();
        let tokens: usize = self.lens.iter().sum();
        let longest = self.lens.iter().copied().max().unwrap_or(0);
        if xs.len() != tokens * width || self.layout.dim != 2 * self.rotary.half {
            bail!("rotary: {} values for {tokens} rows of {width}", xs.len());
        }
        if !self.bias.is_empty() && self.bias.len() != width {
            bail!("rotary: bias of {} for rows of {width}", self.bias.len());
        }
        if longest > self.rotary.max_len() {
            bail!(
                "rotary: a sequence of {longest} tokens exceeds the {} positions tabled",
                self.rotary.max_len()
            );
        }
        let dim = self.layout.dim;
        if self
            .norms
            .is_some_and(|n| n.q.len() != dim || n.k.len() != dim)
        {
            bail!("rotary: q/k norms do not match heads {dim} wide");
        }
        let positions: Vec<usize> = self.lens.iter().flat_map(|&len| 0..len).collect();
        let (q_width, rotated) = (
            self.layout.heads * dim,
            (self.layout.heads + self.layout.kv_heads) * dim,
        );
        xs.par_chunks_mut(width)
            .zip(positions.par_iter())
            .with_min_len(16)
            .for_each(|(row, &p)| {
                if !self.bias.is_empty() {
                    row.iter_mut().zip(self.bias).for_each(|(x, b)| *x += b);
                }
                if let Some(norms) = self.norms {
                    let (q, k) = row[..rotated].split_at_mut(q_width);
                    normalize_heads(q, &norms.q, norms.eps);
                    normalize_heads(k, &norms.k, norms.eps);
                }
                for head in row[..rotated].chunks_exact_mut(dim) {
                    self.rotary.rotate(head, p);
                }
            });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::*;
    use crate::model::kernels::tests::noise;

    /// transformers' `apply_rotary_pos_emb` in f64 for one head at `position`.
    fn reference(head: &[f32], position: usize, theta: f64) -> Vec<f64> {
        let (dim, half) = (head.len(), head.len() / 2);
        let angle = |c: usize| position as f64 / theta.powf((2 * (c % half)) as f64 / dim as f64);
        (0..dim)
            .map(|c| {
                let rotated = if c < half {
                    -(head[c + half] as f64)
                } else {
                    head[c - half] as f64
                };
                head[c] as f64 * angle(c).cos() + rotated * angle(c).sin()
            })
            .collect()
    }

    #[test]
    fn rotates_q_and_k_per_sequence_and_leaves_v() -> Result<()> {
        let layout = HeadLayout {
            heads: 4,
            kv_heads: 2,
            dim: 8,
        };
        let (width, lens, theta) = (layout.qkv_width(), [3usize, 0, 70, 1], 500.0);
        let tokens: usize = lens.iter().sum();
        let x = noise(tokens * width, 9, 2.0);
        let bias = noise(width, 10, 0.5);
        let rotary = Rotary::new(layout.dim, theta, 80);
        let t = Tensor::from_vec(x.clone(), (tokens, width), &Device::Cpu)?;
        t.inplace_op1(&RotaryStep {
            rotary: &rotary,
            lens: &lens,
            bias: &bias,
            norms: None,
            layout,
        })?;
        let got = t.to_vec2::<f32>()?;
        let positions: Vec<usize> = lens.iter().flat_map(|&l| 0..l).collect();
        for (r, (row, &p)) in got.iter().zip(&positions).enumerate() {
            let biased: Vec<f32> = (0..width).map(|c| x[r * width + c] + bias[c]).collect();
            for h in 0..layout.heads + 2 * layout.kv_heads {
                let cols = h * layout.dim..(h + 1) * layout.dim;
                let want: Vec<f64> = if h < layout.heads + layout.kv_heads {
                    reference(&biased[cols.clone()], p, theta)
                } else {
                    biased[cols.clone()].iter().map(|&v| v as f64).collect()
                };
                for (g, w) in row[cols].iter().zip(&want) {
                    assert!((*g as f64 - w).abs() < 1e-4, "row {r} head {h}: {g} vs {w}");
                }
            }
        }
        let too_long = RotaryStep {
            rotary: &rotary,
            lens: &[81],
            bias: &[],
            norms: None,
            layout,
        };
        let t = Tensor::zeros((81, width), candle_core::DType::F32, &Device::Cpu)?;
        assert!(t.inplace_op1(&too_long).is_err());
        Ok(())
    }

    #[test]
    fn normalises_q_and_k_heads_before_rotating() -> Result<()> {
        let layout = HeadLayout {
            heads: 4,
            kv_heads: 2,
            dim: 24,
        };
        let (width, lens, theta) = (layout.qkv_width(), [5usize, 30], 10_000.0);
        let tokens: usize = lens.iter().sum();
        let x = noise(tokens * width, 11, 3.0);
        let bias = noise(width, 12, 0.5);
        let norms = HeadNorms {
            q: noise(layout.dim, 13, 1.0),
            k: noise(layout.dim, 14, 1.0),
            eps: 1e-6,
        };
        let rotary = Rotary::new(layout.dim, theta, 64);
        let t = Tensor::from_vec(x.clone(), (tokens, width), &Device::Cpu)?;
        t.inplace_op1(&RotaryStep {
            rotary: &rotary,
            lens: &lens,
            bias: &bias,
            norms: Some(&norms),
            layout,
        })?;
        let got = t.to_vec2::<f32>()?;
        let positions: Vec<usize> = lens.iter().flat_map(|&l| 0..l).collect();
        for (r, (row, &p)) in got.iter().zip(&positions).enumerate() {
            let biased: Vec<f32> = (0..width).map(|c| x[r * width + c] + bias[c]).collect();
            for h in 0..layout.heads + 2 * layout.kv_heads {
                let cols = h * layout.dim..(h + 1) * layout.dim;
                let head = &biased[cols.clone()];
                let want: Vec<f64> = if h < layout.heads + layout.kv_heads {
                    let gamma = if h < layout.heads { &norms.q } else { &norms.k };
                    let ms = head.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / 24.0;
                    let normed: Vec<f32> = head
                        .iter()
                        .zip(gamma)
                        .map(|(&v, &g)| (v as f64 / (ms + 1e-6).sqrt() * g as f64) as f32)
                        .collect();
                    reference(&normed, p, theta)
                } else {
                    head.iter().map(|&v| v as f64).collect()
                };
                for (g, w) in row[cols].iter().zip(&want) {
                    assert!((*g as f64 - w).abs() < 1e-4, "row {r} head {h}: {g} vs {w}");
                }
            }
        }
        Ok(())
    }
}
