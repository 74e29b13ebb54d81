//! The bf16 variant of [`super::Linear`]'s panel product, for CPUs with AVX-512 BF16
//! (`vdpbf16ps`: 32 bf16 products summed pairwise into 16 `f32` lanes per instruction, twice the
//! multiply-adds of an `f32` FMA of the same width, from half the weight bytes).
//!
//! Weights are rounded to bf16 once at load and laid out as panels `[n / NR][k / 2][NR]` of
//! 32-bit lanes, each lane holding the weights of two consecutive inputs for one output column.
//! Each call rounds its input rows to bf16 pairs the same way, and accumulates in `f32`. The
//! result is what an `f32` product of the bf16-rounded operands gives, up to summation order.

use super::{
    aligned::Aligned,
    isa::isa,
    linear::{par_tiles, NR},
};

/// Rows per register tile: 8 rows × 3 accumulators + 3 weight vectors fit the 32 registers.
pub(super) const MR: usize = 8;

/// `f32` to bf16 bits, rounding to nearest even (NaN stays NaN).
pub(super) fn bf16_bits(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return ((bits >> 16) | 0x40) as u16;
    }
    let rounded = bits.wrapping_add(0x7fff + ((bits >> 16) & 1));
    (rounded >> 16) as u16
}

/// Two bf16 values in one 32-bit lane: `lo` in the low half, as `vdpbf16ps` pairs them.
fn pair(lo: f32, hi: f32) -> u32 {
    bf16_bits(lo) as u32 | (bf16_bits(hi) as u32) << 16
}

/// Row-major `[m, k]` to `[m, k / 2]` bf16 pairs (an odd `k` pads with zero), followed by zero
/// rows up to a multiple of `rows_multiple` rows, starting on a cache line.
fn pack_rows(x: &[f32], k: usize, rows_multiple: usize) -> Aligned<u32> {
    let k2 = k.div_ceil(2);
    let m = x.len() / k.max(1);
    let mut out = Aligned::zeroed(m.next_multiple_of(rows_multiple) * k2);
    #[cfg(target_arch = "x86_64")]
    if k.is_multiple_of(32) && isa().avx512_bf16 {
        // SAFETY: AVX-512F and AVX-512 BF16 are present (`available`).
        unsafe { simd::pack_rows(x, &mut out) };
        return out;
    }
    for (row, dst) in x.chunks_exact(k).zip(out.chunks_exact_mut(k2)) {
        let mut pairs = row.chunks_exact(2);
        for (d, p) in dst.iter_mut().zip(pairs.by_ref()) {
            *d = pair(p[0], p[1]);
        }
        if let [last] = pairs.remainder() {
            dst[k2 - 1] = pair(*last, 0.0);
        }
    }
    out
}

/// A `[k, n]` weight as bf16 pair panels.
pub(super) struct Panels {
    panels: Aligned<u32>,
    k: usize,
    n: usize,
}

impl Panels {
    /// From a row-major `[k, n]` matrix (inputs × outputs).
    pub(super) fn from_slice(w: &[f32], k: usize, n: usize) -> Self {
        assert_eq!(w.len(), k * n, "weight is not [{k}, {n}]");
        let k2 = k.div_ceil(2);
        let mut panels = Aligned::zeroed(n.div_ceil(NR) * k2 * NR);
        for (p, panel) in panels.chunks_exact_mut(k2 * NR).enumerate() {
            let (c0, cols) = (p * NR, NR.min(n - p * NR));
            for (j, dst) in panel.chunks_exact_mut(NR).enumerate() {
                let at = |r: usize, c: usize| if r < k { w[r * n + c0 + c] } else { 0.0 };
                for (c, lane) in dst[..cols].iter_mut().enumerate() {
                    *lane = pair(at(2 * j, c), at(2 * j + 1, c));
                }
            }
        }
        Self { panels, k, n }
    }

    /// `x · W` for row-major `x` of `[m, k]`; returns row-major `[m, n]`. Runs on AMX where
    /// the CPU has it (and `k` is a multiple of 32), else on AVX-512 BF16.
    pub(super) fn forward_slice(&self, x: &[f32]) -> Vec<f32> {
        if self.amx_shape() && isa().amx_bf16 {
            self.forward_with(x, Kernel::Amx)
        } else {
            self.forward_with(x, Kernel::Avx512)
        }
    }

    /// Whether the AMX kernel takes this weight: whole 32-input tiles.
    fn amx_shape(&self) -> bool {
        self.k.is_multiple_of(2 * 16)
    }

    fn forward_with(&self, x: &[f32], kernel: Kernel) -> Vec<f32> {
        let (k, n) = (self.k, self.n);
        assert_eq!(x.len() % k.max(1), 0, "input rows are not {k} wide");
        let m = x.len().checked_div(k).unwrap_or(0);
        let mut out = vec![0f32; m * n];
        if m == 0 || k == 0 {
            return out;
        }
        let k2 = k.div_ceil(2);
        let panel_len = k2 * NR;
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        if kernel == Kernel::Amx {
            use super::amx;
            const B: usize = amx::BLOCK;
            let xb = pack_rows(x, k, B);
            // Column tile g (16 columns) sits in panel g / 3 at column (g % 3) * 16. An odd last
            // tile pairs with itself; its copy's columns are not written.
            let tiles = n.div_ceil(amx::ROWS);
            let tile = |g: usize| {
                let g = g.min(tiles - 1);
                &self.panels[g / (NR / 16) * panel_len + g % (NR / 16) * 16..]
            };
            par_tiles(&mut out, m, n, B, B, |r0, rows, c, dst| {
                let block = amx::Block {
                    x: &xb[r0 * k2..(r0 + B) * k2],
                    k2,
                    w: [tile(2 * c), tile(2 * c + 1)],
                    ldw: NR,
                    rows,
                    cols: B.min(n - c * B),
                    out: dst,
                    ldo: n,
                };
                // SAFETY: `Kernel::Amx` is chosen only where `isa().amx_bf16` held and
                // `amx_shape()` (k2 a multiple of 16); `par_tiles` hands each task its own rows
                // × columns of `out`.
                unsafe { amx::block(&block) }
            });
            return out;
        }
        debug_assert!(kernel == Kernel::Avx512);
        let xb = pack_rows(x, k, 1);
        par_tiles(&mut out, m, n, MR, NR, |r0, rows, p, dst| {
            let tile = Tile {
                x: &xb[r0 * k2..(r0 + rows) * k2],
                k2,
                panel: &self.panels[p * panel_len..][..panel_len],
                cols: NR.min(n - p * NR),
                out: dst,
                ldo: n,
            };
            // SAFETY: panels exist only where `isa().avx512_bf16` held (see `Linear::new`);
            // `par_tiles` hands each task its own rows × panel columns of `out`.
            unsafe { simd::tile(&tile) }
        });
        out
    }
}

/// Which instructions multiply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernel {
    Avx512,
    Amx,
}

/// `x.len() / k2` (≤ [`MR`]) rows of bf16 pairs times one panel, stored to `out` at row stride
/// `ldo`, first `cols` columns only; `out` must be valid for those writes and ours alone.
struct Tile<'a> {
    x: &'a [u32],
    k2: usize,
    panel: &'a [u32],
    cols: usize,
    out: *mut f32,
    ldo: usize,
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use std::arch::x86_64::*;

    use super::{Tile, MR, NR};

    const V: usize = NR / 16;

    /// [`super::pack_rows`] for rows whose width is a multiple of 32: consecutive bf16 values
    /// are the pairs, so a row converts in order, 16 at a time (`vcvtneps2bf16` rounds to
    /// nearest even, as [`super::bf16_bits`] does).
    ///
    /// # Safety
    /// The CPU must have AVX-512F and AVX-512 BF16 ([`super::isa::Isa::avx512_bf16`]).
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn pack_rows(x: &[f32], out: &mut [u32]) {
        assert!(x.len().is_multiple_of(32) && out.len() >= x.len() / 2);
        // SAFETY: chunk c reads x[16c..16c + 16] and writes 32 bytes at out[8c..8c + 8], both
        // inside the buffers (x.len() a multiple of 32, out at least half as long).
        unsafe {
            let (src, dst) = (x.as_ptr(), out.as_mut_ptr());
            for c in 0..x.len() / 16 {
                let v = _mm512_cvtneps_pbh(_mm512_loadu_ps(src.add(16 * c)));
                _mm256_storeu_si256(
                    dst.add(8 * c).cast(),
                    std::mem::transmute::<__m256bh, __m256i>(v),
                );
            }
        }
    }

    /// # Safety
    /// The CPU must have AVX-512F and AVX-512 BF16; `t` must obey [`Tile`]'s contract.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn tile(t: &Tile) {
        // SAFETY: contract passed on.
        unsafe {
            match t.x.len() / t.k2 {
                1 => rows::<1>(t),
                2 => rows::<2>(t),
                3 => rows::<3>(t),
                4 => rows::<4>(t),
                5 => rows::<5>(t),
                6 => rows::<6>(t),
                7 => rows::<7>(t),
                _ => rows::<MR>(t),
            }
        }
    }

    #[inline(always)]
    unsafe fn rows<const R: usize>(t: &Tile) {
        let k2 = t.k2;
        assert!(t.x.len() == R * k2 && t.panel.len() >= k2 * NR && t.cols <= NR);
        let (x, w) = (t.x.as_ptr(), t.panel.as_ptr());
        // SAFETY: j < k2 keeps the reads inside the panel and the R rows (asserted above); the
        // stores stay in rows < R and columns < cols, which `Tile`'s contract makes ours.
        unsafe {
            let mut acc = [[_mm512_setzero_ps(); V]; R];
            for j in 0..k2 {
                let wj = w.add(j * NR);
                let mut wv = [_mm512_setzero_si512(); V];
                for (v, wv) in wv.iter_mut().enumerate() {
                    *wv = _mm512_loadu_si512(wj.add(v * 16).cast());
                }
                for (i, acc) in acc.iter_mut().enumerate() {
                    let a: __m512bh =
                        std::mem::transmute(_mm512_set1_epi32(*x.add(i * k2 + j) as i32));
                    for (acc, wv) in acc.iter_mut().zip(wv) {
                        *acc =
                            _mm512_dpbf16_ps(*acc, a, std::mem::transmute::<__m512i, __m512bh>(wv));
                    }
                }
            }
            for (i, acc) in acc.iter().enumerate() {
                let out = t.out.add(i * t.ldo);
                for (v, acc) in acc.iter().enumerate() {
                    let left = t.cols.saturating_sub(v * 16).min(16);
                    if left == 16 {
                        _mm512_storeu_ps(out.add(v * 16), *acc);
                    } else if left > 0 {
                        _mm512_mask_storeu_ps(out.add(v * 16), (1u16 << left) - 1, *acc);
                    }
                }
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod simd {
    use super::Tile;

    /// # Safety
    /// Never sound to call: bf16 panels exist only on x86-64.
    pub(super) unsafe fn tile(_: &Tile) {
        unreachable!("bf16 panels are built only where the x86-64 kernel runs")
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{noise, skip};
    use super::*;

    fn round(x: f32) -> f64 {
        f32::from_bits((bf16_bits(x) as u32) << 16) as f64
    }

    #[test]
    fn vector_packing_equals_scalar_rounding() {
        if !isa().avx512_bf16 {
            skip(
                "bf16::vector_packing_equals_scalar_rounding",
                "this CPU has no AVX-512 BF16",
            );
            return;
        }
        let mut x = noise(64 * 3, 9, 3.0);
        x[5] = 1.0 + 1.0 / 256.0; // a tie
        x[6] = -0.0;
        let want: Vec<u32> = x.chunks_exact(2).map(|p| pair(p[0], p[1])).collect();
        assert_eq!(*pack_rows(&x, 64, 1), *want);
    }

    #[test]
    fn rounds_to_nearest_even() {
        assert_eq!(bf16_bits(1.0), 0x3f80);
        // 1 + 2^-8 is halfway between 1 and the next bf16: ties go to the even 1.0.
        assert_eq!(bf16_bits(1.0 + 1.0 / 256.0), 0x3f80);
        assert_eq!(bf16_bits(1.0 + 3.0 / 256.0), 0x3f82);
        assert!(f32::from_bits((bf16_bits(f32::NAN) as u32) << 16).is_nan());
    }

    #[test]
    fn amx_matches_the_avx512_kernel() {
        if !isa().amx_bf16 {
            skip(
                "bf16::amx_matches_the_avx512_kernel",
                "this CPU (or OS) has no AMX-BF16",
            );
            return;
        }
        for (s, &(m, k, n)) in [(1, 32, 48), (9, 384, 1152), (16, 64, 97), (37, 1536, 384)]
            .iter()
            .enumerate()
        {
            let x = noise(m * k, 50 + s as u64, 1.0);
            let panels = Panels::from_slice(&noise(k * n, 60 + s as u64, 0.5), k, n);
            assert!(panels.amx_shape());
            let amx = panels.forward_with(&x, Kernel::Amx);
            let avx = panels.forward_with(&x, Kernel::Avx512);
            assert_eq!(amx.len(), m * n);
            for (a, b) in amx.iter().zip(&avx) {
                assert!(
                    (a - b).abs() <= 1e-4 * (k as f32).sqrt(),
                    "{m}x{k}x{n}: {a} vs {b}"
                );
            }
            // A row's result does not depend on the rows batched with it.
            let alone = panels.forward_with(&x[(m - 1) * k..], Kernel::Amx);
            assert_eq!(alone, amx[(m - 1) * n..], "{m}x{k}x{n}");
        }
    }

    #[test]
    fn matches_product_of_rounded_operands() {
        if !isa().avx512_bf16 {
            skip(
                "bf16::matches_product_of_rounded_operands",
                "this CPU has no AVX-512 BF16",
            );
            return;
        }
        for (s, &(m, k, n)) in [
            (1, 1, 1),
            (1, 384, 1152),
            (9, 33, 50),
            (17, 1536, 384),
            (3, 7, 97),
        ]
        .iter()
        .enumerate()
        {
            let x = noise(m * k, 30 + s as u64, 1.0);
            let w = noise(k * n, 40 + s as u64, 0.5);
            let got = Panels::from_slice(&w, k, n).forward_slice(&x);
            for i in 0..m {
                for j in 0..n {
                    let want: f64 = (0..k)
                        .map(|c| round(x[i * k + c]) * round(w[c * n + j]))
                        .sum();
                    let g = got[i * n + j] as f64;
                    assert!(
                        (g - want).abs() <= 1e-5 * (k as f64).sqrt(),
                        "{m}x{k}x{n}: {g} vs {want}"
                    );
                }
            }
        }
    }
}
