//! CPU kernels on raw `f32` slices for the packed blocks of [`super::blocks`]: projections from
//! pre-laid-out weight panels, per-(sequence, head) attention over a packed QKV buffer (with
//! optional relative-position score bias, sliding window or causal mask), rotary embeddings
//! rotating Q and K in that buffer (after a per-head RMSNorm where the family has q/k norms),
//! fused bias + GELU-erf, gated MLP activations (GeGLU, SwiGLU), the residual add and fused
//! residual + bias + LayerNorm or RMSNorm (in place, as candle custom ops), plus the
//! vectorisable `exp` and `erf` they need.
//!
//! candle's own CPU unary ops are scalar and single-threaded; these run over rows with rayon and
//! are compiled three times (AVX-512, AVX2+FMA, baseline) with the widest picked at run time.
//! Nothing here allocates per element or knows an architecture.

use candle_core::{bail, CpuStorage, InplaceOp1, InplaceOp2, Layout, Result, Tensor};
use rayon::prelude::*;

/// Vector width the kernels are written for (one AVX-512 register of `f32`).
const LANES: usize = 16;
/// Query rows handled together by the attention micro-kernels.
const QROWS: usize = 4;
/// Rows per rayon task in the row-wise kernels.
const ROWS_PER_TASK: usize = 8;

/// Defines `$name` to run `$body::<FMA>` compiled for the widest instruction set the CPU has.
macro_rules! dispatch {
    ($vis:vis fn $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)? => $body:ident) => {
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                fn wide($($arg: $ty),*) $(-> $ret)? { $body::<true>($($arg),*) }
                #[target_feature(enable = "avx2,fma")]
                fn narrow($($arg: $ty),*) $(-> $ret)? { $body::<true>($($arg),*) }
                let isa = $crate::model::kernels::isa::isa();
                if isa.avx512f {
                    // SAFETY: `isa` reports these features only where the CPU has them.
                    return unsafe { wide($($arg),*) };
                }
                if isa.avx2_fma {
                    // SAFETY: as above.
                    return unsafe { narrow($($arg),*) };
                }
            }
            $body::<false>($($arg),*)
        }
    };
}

/// `a * b + c`, fused when the caller was compiled with FMA (unfused `mul_add` is a libm call).
#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// `e^x` to about 1 ulp (Cephes `expf`), branch-free so that loops over it vectorise.
#[inline(always)]
pub(crate) fn exp<const FMA: bool>(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer.
    let x = x.clamp(-87.0, 88.0);
    let t = madd::<FMA>(x, std::f32::consts::LOG2_E, MAGIC);
    let n = t - MAGIC;
    let r = madd::<FMA>(n, -0.693_359_4, x);
    let r = madd::<FMA>(n, 2.121_944_4e-4, r);
    let mut p = 1.987_569_1e-4;
    p = madd::<FMA>(p, r, 1.398_2e-3);
    p = madd::<FMA>(p, r, 8.333_452e-3);
    p = madd::<FMA>(p, r, 4.166_579_6e-2);
    p = madd::<FMA>(p, r, 1.666_666_5e-1);
    p = madd::<FMA>(p, r, 0.5);
    let y = madd::<FMA>(p, r * r, r) + 1.0;
    let n_bits = t.to_bits().wrapping_sub(MAGIC.to_bits());
    y * f32::from_bits(n_bits.wrapping_add(127) << 23)
}

/// `erf(x)` with absolute error below 2e-7 (Abramowitz & Stegun 7.1.26, as PyTorch's CPU kernel).
#[inline(always)]
pub(crate) fn erf<const FMA: bool>(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / madd::<FMA>(0.327_591_1, a, 1.0);
    let mut p = 1.061_405_4;
    p = madd::<FMA>(p, t, -1.453_152);
    p = madd::<FMA>(p, t, 1.421_413_8);
    p = madd::<FMA>(p, t, -0.284_496_72);
    p = madd::<FMA>(p, t, 0.254_829_6);
    let y = 1.0 - p * t * exp::<FMA>(-a * a);
    y.copysign(x)
}

#[inline(always)]
fn gelu<const FMA: bool>(x: f32) -> f32 {
    0.5 * x * (1.0 + erf::<FMA>(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// Lane-wise sum, so the compiler may keep `LANES` partial sums in one register.
#[inline(always)]
fn sum(xs: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[inline(always)]
fn max(xs: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = a.max(v);
        }
    }
    acc.iter().fold(tail, |m, &v| m.max(v))
}

/// Replaces `xs` by `exp(xs - max)` and returns their sum; divide by it to get the softmax.
#[inline(always)]
fn exp_shifted<const FMA: bool>(xs: &mut [f32]) -> f32 {
    let m = max(xs);
    for v in xs.iter_mut() {
        *v = exp::<FMA>(*v - m);
    }
    sum(xs)
}

#[inline(always)]
fn bias_gelu_body<const FMA: bool>(rows: &mut [f32], bias: &[f32]) {
    for row in rows.chunks_exact_mut(bias.len()) {
        for (v, b) in row.iter_mut().zip(bias) {
            *v = gelu::<FMA>(*v + b);
        }
    }
}
dispatch!(pub(crate) fn bias_gelu(rows: &mut [f32], bias: &[f32]) => bias_gelu_body);

/// Row-wise `x = LayerNorm(x + y + bias)` (or RMSNorm, see [`NormKind`]); `y` and `bias` may
/// be absent.
#[inline(always)]
fn add_layer_norm_body<const FMA: bool>(xs: &mut [f32], ys: Option<&[f32]>, norm: &AddLayerNorm) {
    let n = norm.gamma.len();
    for (i, row) in xs.chunks_exact_mut(n).enumerate() {
        if let Some(ys) = ys {
            let y = &ys[i * n..(i + 1) * n];
            for ((v, y), b) in row.iter_mut().zip(y).zip(&norm.bias) {
                *v += y + b;
            }
        }
        if norm.kind == NormKind::Layer {
            let mean = sum(row) / n as f32;
            row.iter_mut().for_each(|v| *v -= mean);
        }
        let rstd = inverse_rms::<FMA>(row, norm.eps);
        for ((v, g), b) in row.iter_mut().zip(&norm.gamma).zip(&norm.beta) {
            *v = madd::<FMA>(*v * rstd, *g, *b);
        }
    }
}
dispatch!(pub(crate) fn add_layer_norm_rows(xs: &mut [f32], ys: Option<&[f32]>, norm: &AddLayerNorm) => add_layer_norm_body);

/// `1 / sqrt(mean(row²) + eps)`: LayerNorm's inverse deviation once the mean is taken out,
/// RMSNorm's scale as it is.
#[inline(always)]
pub(crate) fn inverse_rms<const FMA: bool>(row: &[f32], eps: f32) -> f32 {
    let n = row.len();
    let mut acc = [0f32; LANES];
    for c in row.chunks_exact(LANES) {
        for (a, v) in acc.iter_mut().zip(c) {
            *a = madd::<FMA>(*v, *v, *a);
        }
    }
    let tail: f32 = row
        .chunks_exact(LANES)
        .remainder()
        .iter()
        .map(|v| v * v)
        .sum();
    let var = (acc.iter().sum::<f32>() + tail) / n as f32;
    1.0 / (var + eps).sqrt()
}

/// In place: `x = gelu_erf(x + bias)` over rows of `bias.len()`.
pub struct BiasGelu {
    pub bias: Vec<f32>,
}

impl InplaceOp1 for BiasGelu {
    fn name(&self) -> &'static str {
        "bias-gelu-erf"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        let xs = contiguous_mut(storage, layout)?;
        let step = self.bias.len() * ROWS_PER_TASK;
        xs.par_chunks_mut(step)
            .for_each(|rows| bias_gelu(rows, &self.bias));
        Ok(())
    }
}

/// In place on the residual stream: `x = LayerNorm(x + y + bias) * gamma + beta`, or with
/// [`NormKind::Rms`] `x = RMSNorm(x + y + bias) * gamma + beta` (`beta` zeros in every RMSNorm
/// family).
pub struct AddLayerNorm {
    /// Bias of the projection that produced `y`; zeros for a plain LayerNorm.
    pub bias: Vec<f32>,
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
    pub eps: f32,
    pub kind: NormKind,
}

/// Which normalisation an [`AddLayerNorm`] applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NormKind {
    /// `(x - mean) / sqrt(var + eps)`: BERT, ModernBERT.
    Layer,
    /// `x / sqrt(mean(x²) + eps)`, no centring: T5, Llama, Qwen.
    Rms,
}

impl AddLayerNorm {
    /// Plain row-wise LayerNorm of a packed `[rows, hidden]` buffer, in parallel.
    pub fn normalize(&self, xs: &mut [f32]) {
        xs.par_chunks_mut(self.gamma.len() * ROWS_PER_TASK)
            .for_each(|rows| add_layer_norm_rows(rows, None, self));
    }
}

/// In place: the plain LayerNorm of [`AddLayerNorm::normalize`] (the residual bias unused).
impl InplaceOp1 for AddLayerNorm {
    fn name(&self) -> &'static str {
        "layer-norm"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        self.normalize(contiguous_mut(storage, layout)?);
        Ok(())
    }
}

impl InplaceOp2 for AddLayerNorm {
    fn name(&self) -> &'static str {
        "add-bias-layer-norm"
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
        if xs.len() != ys.len() {
            bail!("add-layer-norm: {} vs {} elements", xs.len(), ys.len());
        }
        let step = self.gamma.len() * ROWS_PER_TASK;
        xs.par_chunks_mut(step)
            .zip(ys.par_chunks(step))
            .for_each(|(x, y)| add_layer_norm_rows(x, Some(y), self));
        Ok(())
    }
}

fn contiguous<'a>(storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    match (storage, layout.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((start, end))) => Ok(&v[start..end]),
        _ => bail!("packed kernels need contiguous f32 tensors"),
    }
}

fn contiguous_mut<'a>(storage: &'a mut CpuStorage, layout: &Layout) -> Result<&'a mut [f32]> {
    match (storage, layout.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((start, end))) => Ok(&mut v[start..end]),
        _ => bail!("packed kernels need contiguous f32 tensors"),
    }
}

/// Reads a contiguous f32 CPU tensor's elements without copying them.
pub fn with_slice<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        candle_core::Storage::Cpu(cpu) => Ok(f(contiguous(cpu, layout)?)),
        _ => bail!("packed kernels are CPU-only"),
    }
}

mod aligned;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod amx;
mod attention;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod attention_amx;
pub mod bf16;
mod glu;
pub mod isa;
mod linear;
mod rotary;

pub use attention::{attention, HeadLayout, RelativeBias, Scores};
pub use glu::{AddBias, Glu, GluActivation};
pub use linear::{Linear, Precision};
pub use rotary::{HeadNorms, Rotary, RotaryStep};

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Says on the test run's stderr that `test` did not run and why. Written to the stream
    /// directly: libtest swallows `eprintln!` of passing tests, so a skip would look like a pass.
    pub(super) fn skip(test: &str, reason: &str) {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {reason}");
    }

    /// Deterministic values in roughly [-scale, scale].
    pub(super) fn noise(n: usize, seed: u64, scale: f32) -> Vec<f32> {
        let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
            })
            .collect()
    }

    #[test]
    fn exp_is_accurate() {
        for x in (-8700..=8800).map(|i| i as f32 * 0.01) {
            let want = (x as f64).exp();
            for got in [exp::<false>(x), exp::<true>(x)] {
                let rel = ((got as f64 - want) / want).abs();
                assert!(rel < 5e-7, "exp({x}) = {got}, want {want}");
            }
        }
        assert!(exp::<false>(-1000.0) < 1e-37);
    }

    #[test]
    fn gelu_matches_candle_gelu_erf() -> Result<()> {
        let xs: Vec<f32> = (-12000..=12000).map(|i| i as f32 * 1e-3).collect();
        let want = Tensor::new(xs.as_slice(), &Device::Cpu)?
            .gelu_erf()?
            .to_vec1::<f32>()?;
        let mut got = xs.clone();
        bias_gelu(&mut got, &[0.0; 1]);
        let mut unfused = xs.clone();
        bias_gelu_body::<false>(&mut unfused, &[0.0; 1]);
        for ((g, u), w) in got.iter().zip(&unfused).zip(&want) {
            assert!(
                (g - w).abs() < 1e-6 && (u - w).abs() < 1e-6,
                "{g} {u} vs {w}"
            );
        }
        Ok(())
    }

    #[test]
    fn softmax_is_stable_and_matches_reference() {
        for (len, scale) in [(1, 1.0), (7, 3.0), (16, 1.0), (200, 30.0), (33, 1000.0)] {
            let xs = noise(len, len as u64, scale);
            let m = xs.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
            let e: Vec<f64> = xs.iter().map(|&v| (v as f64 - m).exp()).collect();
            let total: f64 = e.iter().sum();
            let mut got = xs.clone();
            let inv = 1.0 / exp_shifted::<false>(&mut got);
            for (g, e) in got.iter().zip(&e) {
                assert!(((g * inv) as f64 - e / total).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn add_layer_norm_matches_reference() {
        let n = 40;
        let norm = AddLayerNorm {
            bias: noise(n, 1, 0.5),
            gamma: noise(n, 2, 1.0),
            beta: noise(n, 3, 1.0),
            eps: 1e-12,
            kind: NormKind::Layer,
        };
        let (x, y) = (noise(3 * n, 4, 5.0), noise(3 * n, 5, 5.0));
        let mut got = x.clone();
        add_layer_norm_rows(&mut got, Some(&y), &norm);
        for r in 0..3 {
            let v: Vec<f64> = (0..n)
                .map(|i| (x[r * n + i] + y[r * n + i] + norm.bias[i]) as f64)
                .collect();
            let mean = v.iter().sum::<f64>() / n as f64;
            let var = v.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
            for i in 0..n {
                let want = (v[i] - mean) / (var + 1e-12).sqrt() * norm.gamma[i] as f64
                    + norm.beta[i] as f64;
                assert!(
                    (got[r * n + i] as f64 - want).abs() < 1e-5,
                    "{} vs {want}",
                    got[r * n + i]
                );
            }
        }
    }

    #[test]
    fn rms_norm_matches_reference() {
        let n = 40;
        let norm = AddLayerNorm {
            bias: noise(n, 6, 0.5),
            gamma: noise(n, 7, 1.0),
            beta: vec![0.0; n],
            eps: 1e-6,
            kind: NormKind::Rms,
        };
        let (x, y) = (noise(3 * n, 8, 5.0), noise(3 * n, 9, 5.0));
        let mut got = x.clone();
        add_layer_norm_rows(&mut got, Some(&y), &norm);
        for r in 0..3 {
            let v: Vec<f64> = (0..n)
                .map(|i| (x[r * n + i] + y[r * n + i] + norm.bias[i]) as f64)
                .collect();
            let ms = v.iter().map(|v| v * v).sum::<f64>() / n as f64;
            for i in 0..n {
                let want = v[i] / (ms + 1e-6).sqrt() * norm.gamma[i] as f64;
                let g = got[r * n + i] as f64;
                assert!((g - want).abs() < 1e-5, "{g} vs {want}");
            }
        }
    }
}
