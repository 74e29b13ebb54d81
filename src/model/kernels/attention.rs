//! Multi-head self-attention over packed sequences, one rayon task per (sequence, head),
//! with AVX2+FMA register tiles for the two inner products.

use candle_core::{bail, Device, Result, Tensor};
use rayon::prelude::*;

use super::{exp_shifted, madd, with_slice, Precision, LANES, QROWS};

/// Where one (sequence, head) attention task reads and writes.
#[derive(Clone, Copy)]
pub(super) struct Head {
    /// First token row of the sequence.
    pub start: usize,
    pub len: usize,
    /// First column of the head inside a `hidden`-wide row.
    pub col: usize,
}

/// Shared output pointer; every task writes a disjoint (rows × head columns) block.
#[derive(Clone, Copy)]
pub(super) struct OutPtr(pub *mut f32);
// SAFETY: tasks write disjoint elements and the buffer outlives the parallel loop.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

/// Multi-head self-attention over packed sequences: `qkv` is `[tokens, 3 * hidden]` (projections
/// without bias), `qkv_bias` is `[3 * hidden]`; returns the `[tokens, hidden]` context. With
/// `Precision::Bf16`, heads run on AMX where [`super::attention_amx`] takes them.
pub fn attention(
    qkv: &Tensor,
    qkv_bias: &[f32],
    lens: &[usize],
    heads: usize,
    precision: Precision,
) -> Result<Tensor> {
    let (tokens, width) = qkv.dims2()?;
    let hidden = width / 3;
    if lens.iter().sum::<usize>() != tokens || hidden * 3 != width || hidden % heads != 0 {
        bail!("attention: {tokens} tokens of width {width} do not fit {lens:?} / {heads} heads");
    }
    let mut ctx = vec![0f32; tokens * hidden];
    let out = OutPtr(ctx.as_mut_ptr());
    let dim = hidden / heads;
    let mut tasks = Vec::with_capacity(lens.len() * heads);
    let mut start = 0;
    for &len in lens {
        tasks.extend((0..heads).map(|h| Head {
            start,
            len,
            col: h * dim,
        }));
        start += len;
    }
    // Longest first, so the big tasks do not straggle at the end.
    tasks.sort_by_key(|t| std::cmp::Reverse(t.len));
    let amx = precision == Precision::Bf16 && amx_usable(dim);
    with_slice(qkv, |qkv| {
        tasks.par_iter().for_each(|&task| {
            if amx {
                // SAFETY: `amx_usable(dim)` held; each task owns its block of `ctx`.
                #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
                unsafe {
                    super::attention_amx::attend_head(qkv, qkv_bias, hidden, dim, task, out)
                };
            } else {
                attend_head(qkv, qkv_bias, hidden, dim, task, out)
            }
        })
    })?;
    Tensor::from_vec(ctx, (tokens, hidden), &Device::Cpu)
}

/// Whether the AMX task runs heads `dim` wide here.
fn amx_usable(dim: usize) -> bool {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    return super::attention_amx::usable(dim);
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
    false
}

dispatch!(fn attend_head(qkv: &[f32], bias: &[f32], hidden: usize, dim: usize, task: Head, out: OutPtr) => attend_head_body);

/// One (sequence, head): scores = QKᵀ/√d, stable softmax, × V, written into `out`, which must
/// point to a `[tokens, hidden]` buffer whose task block nobody else touches (see [`attention`]).
#[inline(always)]
fn attend_head_body<const FMA: bool>(
    qkv: &[f32],
    bias: &[f32],
    hidden: usize,
    dim: usize,
    task: Head,
    out: OutPtr,
) {
    let len = task.len;
    if len == 0 {
        return;
    }
    let width = 3 * hidden;
    let (dp, kp) = (dim.div_ceil(LANES) * LANES, len.div_ceil(LANES) * LANES);
    let qp = len.div_ceil(QROWS) * QROWS;
    let scale = 1.0 / (dim as f32).sqrt();
    // Local copies with bias: q [qp, dim] pre-scaled, kᵀ [dim, kp], v [len, dp]; zero padding.
    let mut q = vec![0f32; qp * dim];
    let mut kt = vec![0f32; dim * kp];
    let mut v = vec![0f32; len * dp];
    // Where the head's `dim` columns of Q, K and V start inside a row (and inside the bias).
    let (qo, ko, vo) = (task.col, hidden + task.col, 2 * hidden + task.col);
    let (q_bias, k_bias, v_bias) = (&bias[qo..][..dim], &bias[ko..][..dim], &bias[vo..][..dim]);
    let rows = qkv[task.start * width..][..len * width].chunks_exact(width);
    let q_rows = q.chunks_exact_mut(dim);
    let v_rows = v.chunks_exact_mut(dp);
    // Zipped slices, no indexing: the Q and V copies vectorise; Kᵀ is a strided scatter.
    for (i, ((row, q_row), v_row)) in rows.zip(q_rows).zip(v_rows).enumerate() {
        for ((d, x), b) in q_row.iter_mut().zip(&row[qo..][..dim]).zip(q_bias) {
            *d = (x + b) * scale;
        }
        for ((d, x), b) in v_row.iter_mut().zip(&row[vo..][..dim]).zip(v_bias) {
            *d = x + b;
        }
        for ((col, x), b) in kt.chunks_exact_mut(kp).zip(&row[ko..][..dim]).zip(k_bias) {
            col[i] = x + b;
        }
    }
    let mut s = vec![0f32; QROWS * kp];
    let qb_len = QROWS * dim;
    for r0 in (0..len).step_by(QROWS) {
        let qb = &q[r0 * dim..][..qb_len];
        for j0 in (0..kp).step_by(LANES) {
            let acc = tile::<FMA>(qb, dim, dim, &kt[j0..], kp);
            for (r, a) in acc.iter().enumerate() {
                s[r * kp + j0..][..LANES].copy_from_slice(a);
            }
        }
        let mut inv = [0f32; QROWS];
        for (r, inv) in inv.iter_mut().enumerate() {
            *inv = 1.0 / exp_shifted::<FMA>(&mut s[r * kp..r * kp + len]);
        }
        for d0 in (0..dp).step_by(LANES) {
            let acc = tile::<FMA>(&s, kp, len, &v[d0..], dp);
            let cols = LANES.min(dim - d0);
            for (r, a) in acc.iter().enumerate().take(len.saturating_sub(r0)) {
                let at = (task.start + r0 + r) * hidden + task.col + d0;
                for (t, a) in a.iter().enumerate().take(cols) {
                    // SAFETY: in bounds and inside this task's block, per `attention`.
                    unsafe { *out.0.add(at + t) = a * inv[r] };
                }
            }
        }
    }
}

type Tile = [[f32; LANES]; QROWS];

/// `tile[r][t] = Σ_{c < n} a[r * a_stride + c] · b[c * b_stride + t]` for `QROWS` rows and
/// `LANES` columns: one block of scores (`a` = Q, `b` = Kᵀ) or of probabilities × V.
#[inline(always)]
fn tile<const FMA: bool>(a: &[f32], a_stride: usize, n: usize, b: &[f32], b_stride: usize) -> Tile {
    assert!(
        n <= a_stride
            && a.len() >= QROWS * a_stride
            && b.len() >= (n.max(1) - 1) * b_stride + LANES
    );
    #[cfg(target_arch = "x86_64")]
    if FMA {
        // SAFETY: `FMA` code only runs on CPUs with AVX2 and FMA (see `dispatch!`), the 512-bit
        // tile only where AVX-512F is detected; the assert above covers every index read.
        return unsafe {
            if std::arch::is_x86_feature_detected!("avx512f") {
                simd::tile512(a, a_stride, n, b, b_stride)
            } else {
                simd::tile(a, a_stride, n, b, b_stride)
            }
        };
    }
    let mut acc = [[0f32; LANES]; QROWS];
    for c in 0..n {
        let bc = &b[c * b_stride..][..LANES];
        for (r, row) in acc.iter_mut().enumerate() {
            let x = a[r * a_stride + c];
            for (acc, y) in row.iter_mut().zip(bc) {
                *acc = madd::<FMA>(x, *y, *acc);
            }
        }
    }
    acc
}

/// AVX2 + FMA register tiles (`QROWS` × two 8-wide registers), or with AVX-512 `QROWS` × one
/// 16-wide register, twice: even and odd inputs sum apart, so eight FMA chains stay in flight.
/// The compiler does not find these by itself and keeps the scalar tiles on the stack.
#[cfg(target_arch = "x86_64")]
mod simd {
    use super::{Tile, LANES, QROWS};
    use std::arch::x86_64::*;

    /// See [`super::tile`]; the caller guarantees every index is in bounds.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn tile(
        a: &[f32],
        a_stride: usize,
        n: usize,
        b: &[f32],
        b_stride: usize,
    ) -> Tile {
        let mut acc = [[_mm256_setzero_ps(); 2]; QROWS];
        let (a, b) = (a.as_ptr(), b.as_ptr());
        for c in 0..n {
            let bc = b.add(c * b_stride);
            let (b0, b1) = (_mm256_loadu_ps(bc), _mm256_loadu_ps(bc.add(8)));
            for (r, row) in acc.iter_mut().enumerate() {
                let x = _mm256_broadcast_ss(&*a.add(r * a_stride + c));
                row[0] = _mm256_fmadd_ps(x, b0, row[0]);
                row[1] = _mm256_fmadd_ps(x, b1, row[1]);
            }
        }
        store(&acc)
    }

    /// See [`super::tile`]; the caller guarantees every index is in bounds.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn tile512(
        a: &[f32],
        a_stride: usize,
        n: usize,
        b: &[f32],
        b_stride: usize,
    ) -> Tile {
        let mut acc = [[_mm512_setzero_ps(); 2]; QROWS];
        let (a, b) = (a.as_ptr(), b.as_ptr());
        let mut c = 0;
        while c + 1 < n {
            let b0 = _mm512_loadu_ps(b.add(c * b_stride));
            let b1 = _mm512_loadu_ps(b.add((c + 1) * b_stride));
            for (r, row) in acc.iter_mut().enumerate() {
                let ar = a.add(r * a_stride + c);
                row[0] = _mm512_fmadd_ps(_mm512_set1_ps(*ar), b0, row[0]);
                row[1] = _mm512_fmadd_ps(_mm512_set1_ps(*ar.add(1)), b1, row[1]);
            }
            c += 2;
        }
        if c < n {
            let b0 = _mm512_loadu_ps(b.add(c * b_stride));
            for (r, row) in acc.iter_mut().enumerate() {
                row[0] = _mm512_fmadd_ps(_mm512_set1_ps(*a.add(r * a_stride + c)), b0, row[0]);
            }
        }
        let mut out = [[0f32; LANES]; QROWS];
        for (o, a) in out.iter_mut().zip(&acc) {
            _mm512_storeu_ps(o.as_mut_ptr(), _mm512_add_ps(a[0], a[1]));
        }
        out
    }

    #[inline(always)]
    unsafe fn store(acc: &[[__m256; 2]; QROWS]) -> Tile {
        let mut out = [[0f32; LANES]; QROWS];
        for (o, a) in out.iter_mut().zip(acc) {
            _mm256_storeu_ps(o.as_mut_ptr(), a[0]);
            _mm256_storeu_ps(o.as_mut_ptr().add(8), a[1]);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kernels::tests::noise;

    #[test]
    fn attention_matches_reference() -> Result<()> {
        let (heads, dim) = (3, 24); // a head width that is not a multiple of the vector width
        let hidden = heads * dim;
        let lens = [1usize, 5, 17, 40, 0, 9];
        let tokens: usize = lens.iter().sum();
        let qkv = noise(tokens * 3 * hidden, 7, 2.0);
        let bias = noise(3 * hidden, 8, 0.5);
        let t = Tensor::from_vec(qkv.clone(), (tokens, 3 * hidden), &Device::Cpu)?;
        let got = attention(&t, &bias, &lens, heads, Precision::F32)?.to_vec2::<f32>()?;
        let at = |row: usize, col: usize| (qkv[row * 3 * hidden + col] + bias[col]) as f64;
        let mut start = 0;
        for &len in &lens {
            for h in 0..heads {
                for i in 0..len {
                    let scores: Vec<f64> = (0..len)
                        .map(|j| {
                            let qk = (0..dim).map(|c| {
                                at(start + i, h * dim + c) * at(start + j, hidden + h * dim + c)
                            });
                            qk.sum::<f64>() / (dim as f64).sqrt()
                        })
                        .collect();
                    let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
                    let total: f64 = e.iter().sum();
                    for c in 0..dim {
                        let want: f64 = (0..len)
                            .map(|j| e[j] / total * at(start + j, 2 * hidden + h * dim + c))
                            .sum();
                        let g = got[start + i][h * dim + c] as f64;
                        assert!(
                            (g - want).abs() < 1e-5,
                            "seq@{start} head {h} row {i} col {c}: {g} vs {want}"
                        );
                    }
                }
            }
            start += len;
        }
        Ok(())
    }
}
