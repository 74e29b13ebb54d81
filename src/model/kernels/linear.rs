//! `y = x · W` for every projection of the packed blocks ([`super::super::blocks`]), from weights laid
//! out once at load as column panels `[n / NR][k][NR]`: each panel a contiguous run that a
//! register tile of `MR` rows streams through front to back, one weight vector feeding `MR` FMAs.
//!
//! Why not candle's matmul: the `gemm` crate re-packs the whole right-hand side on every call,
//! which for one short request (a handful of rows) costs more than the product itself, and it
//! was no faster for thousands of rows either. Work is split into (64-row block × panel) rayon
//! tasks, so few rows still spread over both cores and many rows reuse `x` from cache. Nothing
//! is packed per call; the output is the only allocation. CPUs without AVX2+FMA (and non-x86)
//! keep the plain weight and candle's matmul.

use candle_core::{Device, Result, Tensor};
use rayon::prelude::*;

use super::{aligned::Aligned, bf16, with_slice};

/// Output columns per panel: six 8-lane vectors.
pub(super) const NR: usize = 48;
/// Rows per register tile.
const MR: usize = 4;
/// Rows per parallel task: a block of `x` stays in cache while it meets every panel.
const ROW_BLOCK: usize = 64;

/// A projection `x · W`, its `[k, n]` weight stored as zero-padded column panels.
pub struct Linear {
    /// `[panels][k][NR]`, columns past `n` zero.
    panels: Aligned<f32>,
    k: usize,
    n: usize,
    /// The plain `[k, n]` weight for candle's matmul, instead of panels, on CPUs without
    /// AVX2+FMA (the panel kernel is written for those).
    fallback: Option<Tensor>,
    /// bf16 panels instead of `f32` ones, when asked for and the CPU has AVX-512 BF16.
    bf16: Option<bf16::Panels>,
}

/// Arithmetic of the projections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    F32,
    /// Weights and inputs rounded to bf16, accumulated in `f32`; needs AVX-512 BF16
    /// ([`super::isa::Isa::avx512_bf16`]).
    Bf16,
}

/// Output pointer shared by the panel tasks; each writes only its own panel's columns.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: tasks write disjoint columns and the buffer outlives the parallel loop.
unsafe impl Send for OutPtr {}
// SAFETY: as for Send: shared only as a base pointer for disjoint writes.
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// # Safety
    /// `offset` must stay inside the buffer.
    unsafe fn at(self, offset: usize) -> *mut f32 {
        // SAFETY: per this function's contract.
        unsafe { self.0.add(offset) }
    }
}

impl Linear {
    /// From a contiguous `[k, n]` (inputs × outputs) f32 CPU tensor.
    pub fn new(w: &Tensor, precision: Precision) -> Result<Self> {
        let (k, n) = w.dims2()?;
        let plain = |fallback, bf16| Self {
            panels: Aligned::zeroed(0),
            k,
            n,
            fallback,
            bf16,
        };
        if precision == Precision::Bf16 {
            if !super::isa::isa().avx512_bf16 {
                candle_core::bail!("bf16 projections need a CPU with AVX-512 BF16");
            }
            return with_slice(w, |w| plain(None, Some(bf16::Panels::from_slice(w, k, n))));
        }
        if !simd::available() {
            return Ok(plain(Some(w.clone()), None));
        }
        with_slice(w, |w| Self::from_slice(w, k, n))
    }

    /// `x · W` for `x` of `[m, k]`, as an `[m, n]` tensor.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if let Some(w) = &self.fallback {
            return x.matmul(w);
        }
        let m = x.dim(0)?;
        let y = match &self.bf16 {
            Some(panels) => with_slice(x, |x| panels.forward_slice(x))?,
            None => with_slice(x, |x| self.forward_slice(x))?,
        };
        Tensor::from_vec(y, (m, self.n), &Device::Cpu)
    }

    /// Lays out `w`, a row-major `[k, n]` matrix (inputs × outputs).
    fn from_slice(w: &[f32], k: usize, n: usize) -> Self {
        assert_eq!(w.len(), k * n, "weight is not [{k}, {n}]");
        let count = n.div_ceil(NR);
        let mut panels = Aligned::zeroed(count * k * NR);
        for (p, panel) in panels.chunks_exact_mut(k * NR).enumerate() {
            let (c0, cols) = (p * NR, NR.min(n - p * NR));
            for (r, dst) in panel.chunks_exact_mut(NR).enumerate() {
                dst[..cols].copy_from_slice(&w[r * n + c0..][..cols]);
            }
        }
        Self {
            panels,
            k,
            n,
            fallback: None,
            bf16: None,
        }
    }

    /// `x · W` for row-major `x` of `[m, k]`; returns row-major `[m, n]`.
    fn forward_slice(&self, x: &[f32]) -> Vec<f32> {
        let (k, n) = (self.k, self.n);
        assert_eq!(x.len() % k.max(1), 0, "input rows are not {k} wide");
        let m = x.len().checked_div(k).unwrap_or(0);
        let mut out = vec![0f32; m * n];
        if m == 0 || k == 0 {
            return out;
        }
        let panel_len = k * NR;
        par_tiles(&mut out, m, n, MR, NR, |r0, rows, p, dst| {
            let part = Tile {
                x: &x[r0 * k..(r0 + rows) * k],
                k,
                panel: &self.panels[p * panel_len..][..panel_len],
                cols: NR.min(n - p * NR),
                out: dst,
                ldo: n,
            };
            // SAFETY: panels exist only where `simd::available()` held; `par_tiles` hands each
            // task its own rows × panel columns of `out`.
            unsafe { simd::tile(&part) };
        });
        out
    }
}

/// Runs `tile(r0, rows, c, out)` over every register tile of an `[m, n]` product written to
/// `out`: `rows` ≤ `mr` rows from `r0` times the `nc` columns from `c * nc` (a panel, for
/// `nc = NR`), `out` pointing at the tile's first element (row stride `n`). Task t is row block
/// t / column blocks times column block t % column blocks, so a block of `x` stays in cache
/// while it meets every column, and few rows still split over columns. Each call gets elements
/// no other call touches.
pub(super) fn par_tiles(
    out: &mut [f32],
    m: usize,
    n: usize,
    mr: usize,
    nc: usize,
    tile: impl Fn(usize, usize, usize, *mut f32) + Sync,
) {
    assert_eq!(out.len(), m * n);
    let ptr = OutPtr(out.as_mut_ptr());
    let count = n.div_ceil(nc);
    (0..m.div_ceil(ROW_BLOCK) * count)
        .into_par_iter()
        .for_each(|t| {
            let (b, c) = (t / count, t % count);
            for r0 in (b * ROW_BLOCK..m.min((b + 1) * ROW_BLOCK)).step_by(mr) {
                // SAFETY: row r0 < m and column c * nc < n exist in `out`.
                tile(r0, mr.min(m - r0), c, unsafe { ptr.at(r0 * n + c * nc) });
            }
        });
}

/// One register tile: `rows = x.len() / k` (≤ `MR`) rows times one panel, stored to `out` at
/// row stride `ldo`, first `cols` columns only. `out` must be valid for those writes and nobody
/// else may touch them meanwhile (true in [`Linear::forward_slice`]: panels own their columns).
struct Tile<'a> {
    x: &'a [f32],
    k: usize,
    panel: &'a [f32],
    cols: usize,
    out: *mut f32,
    ldo: usize,
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use std::arch::x86_64::*;

    use super::{Tile, MR, NR};

    /// Whether the CPU runs [`tile`].
    pub(super) fn available() -> bool {
        crate::model::kernels::isa::isa().avx2_fma
    }

    /// One tile: 512-bit FMAs where the CPU has AVX-512F (Intel cores with two 512-bit FMA
    /// ports run them at twice the 256-bit rate; Zen 4 splits them in halves and loses
    /// nothing), else 256-bit AVX2+FMA.
    ///
    /// # Safety
    /// The CPU must have AVX2 and FMA ([`available`]); `t` must obey [`Tile`]'s contract.
    pub(super) unsafe fn tile(t: &Tile) {
        if crate::model::kernels::isa::isa().avx512f {
            // SAFETY: checked just above, and AVX2+FMA by the caller.
            unsafe { wide(t) }
        } else {
            // SAFETY: AVX2+FMA by the caller.
            unsafe { narrow(t) }
        }
    }

    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn wide(t: &Tile) {
        // SAFETY: features as enabled here; contract passed on from `tile`.
        unsafe {
            match t.x.len() / t.k {
                1 => rows512::<1>(t),
                2 => rows512::<2>(t),
                3 => rows512::<3>(t),
                _ => rows512::<MR>(t),
            }
        }
    }

    /// The 256-bit tile.
    ///
    /// # Safety
    /// As [`tile`]'s.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn narrow(t: &Tile) {
        // SAFETY: as in `wide`.
        unsafe { pick(t) }
    }

    #[inline(always)]
    unsafe fn pick(t: &Tile) {
        // SAFETY: contract passed on from `tile`.
        unsafe {
            match t.x.len() / t.k {
                1 => rows::<1>(t),
                2 => rows::<2>(t),
                3 => rows::<3>(t),
                _ => rows::<MR>(t),
            }
        }
    }

    /// `R` rows times one panel in `$lanes`-wide registers: per input `kk`, one `NR`-wide
    /// weight row (`NR / $lanes` vectors) meets `R` broadcast inputs. One body for the 256-bit
    /// (`rows`) and 512-bit (`rows512`) kernels.
    macro_rules! rows_kernel {
        ($name:ident, $lanes:literal, $zero:ident, $load:ident, $set1:ident, $fma:ident, $store:ident) => {
            #[inline(always)]
            unsafe fn $name<const R: usize>(t: &Tile) {
                const V: usize = NR / $lanes;
                let k = t.k;
                assert!(t.x.len() == R * k && t.panel.len() >= k * NR && t.cols <= NR);
                let (x, w) = (t.x.as_ptr(), t.panel.as_ptr());
                // SAFETY: kk < k keeps `w` reads inside the panel and `x` reads inside R rows
                // (asserted above); the stores stay in row i < R, columns < cols of the tile's
                // block, which `Tile`'s contract makes ours; the CPU features per the caller.
                unsafe {
                    let mut acc = [[$zero(); V]; R];
                    for kk in 0..k {
                        let wk = w.add(kk * NR);
                        let mut wv = [$zero(); V];
                        for (v, wv) in wv.iter_mut().enumerate() {
                            *wv = $load(wk.add(v * $lanes));
                        }
                        for (i, acc) in acc.iter_mut().enumerate() {
                            let a = $set1(*x.add(i * k + kk));
                            for (acc, wv) in acc.iter_mut().zip(wv) {
                                *acc = $fma(a, wv, *acc);
                            }
                        }
                    }
                    for (i, acc) in acc.iter().enumerate() {
                        let out = t.out.add(i * t.ldo);
                        if t.cols == NR {
                            for (v, acc) in acc.iter().enumerate() {
                                $store(out.add(v * $lanes), *acc);
                            }
                        } else {
                            let mut row = [0f32; NR];
                            for (v, acc) in acc.iter().enumerate() {
                                $store(row.as_mut_ptr().add(v * $lanes), *acc);
                            }
                            std::ptr::copy_nonoverlapping(row.as_ptr(), out, t.cols);
                        }
                    }
                }
            }
        };
    }

    rows_kernel!(
        rows,
        8,
        _mm256_setzero_ps,
        _mm256_loadu_ps,
        _mm256_set1_ps,
        _mm256_fmadd_ps,
        _mm256_storeu_ps
    );
    rows_kernel!(
        rows512,
        16,
        _mm512_setzero_ps,
        _mm512_loadu_ps,
        _mm512_set1_ps,
        _mm512_fmadd_ps,
        _mm512_storeu_ps
    );
}

#[cfg(not(target_arch = "x86_64"))]
mod simd {
    use super::Tile;

    pub(super) fn available() -> bool {
        false
    }

    /// # Safety
    /// Never sound to call: panels exist only on x86-64.
    pub(super) unsafe fn tile(_: &Tile) {
        unreachable!("panels are built only where the x86-64 kernel runs")
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{noise, skip};
    use super::*;

    fn reference(x: &[f32], w: &[f32], k: usize, n: usize) -> Vec<f32> {
        let m = x.len() / k;
        let mut out = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k)
                    .map(|c| x[i * k + c] as f64 * w[c * n + j] as f64)
                    .sum::<f64>() as f32;
            }
        }
        out
    }

    #[test]
    fn matches_reference_on_odd_shapes() {
        if !simd::available() {
            skip(
                "linear::matches_reference_on_odd_shapes",
                "no AVX2+FMA, projections use candle's matmul",
            );
            return;
        }
        let shapes = [(1, 1, 1), (1, 384, 1152), (7, 33, 50), (8, 16, 48)];
        let more = [(9, 40, 97), (17, 5, 200), (13, 1536, 384), (3, 2, 47)];
        for (s, &(m, k, n)) in shapes.iter().chain(&more).enumerate() {
            let x = noise(m * k, 10 + s as u64, 1.0);
            let w = noise(k * n, 20 + s as u64, 0.5);
            let want = reference(&x, &w, k, n);
            let weights = Linear::from_slice(&w, k, n);
            let got = weights.forward_slice(&x);
            assert_eq!(got.len(), m * n);
            let tol = 1e-5 * (k as f32).sqrt();
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() <= tol, "{m}x{k}x{n}: {g} vs {w}");
            }
            // The AVX2-only build of the same tile, as on CPUs without AVX-512VL.
            #[cfg(target_arch = "x86_64")]
            {
                let mut narrow = vec![0f32; m * n];
                for r0 in (0..m).step_by(MR) {
                    for (p, panel) in weights.panels.chunks_exact(k * NR).enumerate() {
                        let part = Tile {
                            x: &x[r0 * k..(r0 + MR.min(m - r0)) * k],
                            k,
                            panel,
                            cols: NR.min(n - p * NR),
                            out: narrow[r0 * n + p * NR..].as_mut_ptr(),
                            ldo: n,
                        };
                        // SAFETY: AVX2+FMA checked above; `part` covers rows and columns
                        // inside `narrow` that nothing else touches.
                        unsafe { simd::narrow(&part) };
                    }
                }
                assert_eq!(narrow, got, "{m}x{k}x{n}: AVX2 build differs");
            }
        }
    }

    #[test]
    fn empty_inputs() {
        let w = Linear::from_slice(&noise(12, 1, 1.0), 3, 4);
        assert!(w.forward_slice(&[]).is_empty());
    }
}
