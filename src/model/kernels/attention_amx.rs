//! The AMX variant of one (sequence, head) task of [`super::attention`], for bf16 precision on
//! CPUs with AMX-BF16 and heads a multiple of 32 wide (all-MiniLM's are 32, BERT-base's 64).
//!
//! Both products are [`amx::block`]s of 32 × 32 outputs:
//! - scores = Q · Kᵀ, with Q as bf16 pair rows (pre-scaled by 1/√d) and K transposed into pair
//!   rows `[d / 2][keys]`, so a head of 32 is one tile step per block;
//! - context = P · V, with the probabilities as bf16 pair rows and V as row pairs `[keys / 2][d]`.
//!
//! Scores, the softmax and its normalisation stay `f32`; only the products' operands are rounded
//! to bf16, as in the projections. Keys are padded with zeros to a multiple of 32, and padded
//! keys get probability 0.

use std::arch::x86_64::*;

use super::{
    aligned::Aligned,
    amx,
    attention::{Head, Job},
    max,
};

/// Rows and columns of one [`amx::Block`].
const B: usize = amx::BLOCK;

/// Whether [`attend_head`] runs heads `dim` wide here.
pub(super) fn usable(dim: usize) -> bool {
    dim.is_multiple_of(B) && super::isa::isa().amx_bf16
}

/// One (sequence, head), as [`super::attention`]'s `f32` task computes it, with bf16 operands.
///
/// # Safety
/// [`usable`]`(dim)` must hold; `out` must point to a `[tokens, hidden]` buffer whose
/// (task rows × head columns) block nobody else touches, and `qkv` hold the task's rows.
pub(super) unsafe fn attend_head(job: &Job, task: Head) {
    // SAFETY: AMX-BF16 implies AVX-512F and AVX-512 BF16 (`isa().amx_bf16`); the rest is
    // this function's contract.
    unsafe { body(job, task) }
}

#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn body(job: &Job, task: Head) {
    let len = task.len;
    if len == 0 {
        return;
    }
    let (dim, hidden, out) = (job.layout.dim, job.layout.out_width(), job.out);
    let (keys, d2) = (len.next_multiple_of(B), dim / 2);
    let (q, kt, v) = pack(job, task, keys);
    let mut scores = Aligned::<f32>::zeroed(B * keys);
    let mut probs = Aligned::<u32>::zeroed(B * keys / 2);
    let mut ctx = Aligned::<f32>::zeroed(B * B);
    for r0 in (0..len).step_by(B) {
        for j0 in (0..keys).step_by(B) {
            let block = amx::Block {
                x: &q[r0 * d2..(r0 + B) * d2],
                k2: d2,
                w: [&kt[j0..], &kt[j0 + amx::ROWS..]],
                ldw: keys,
                rows: B,
                cols: B,
                out: scores[j0..].as_mut_ptr(),
                ldo: keys,
            };
            // SAFETY: `usable` checked AMX; d2 is a multiple of 16; each weight tile has 16 pair
            // rows at stride `keys` from column j0 (+16) ≤ keys - 16; `scores` is B × keys.
            unsafe { amx::block(&block) };
        }
        let rows = B.min(len - r0);
        let mut inv = [0f32; B];
        let pairs = scores
            .chunks_exact_mut(keys)
            .zip(probs.chunks_exact_mut(keys / 2));
        for (r, (inv, (row, p))) in inv.iter_mut().zip(pairs).take(rows).enumerate() {
            job.add_score_terms(task, r0 + r, &mut row[..len]);
            // SAFETY: `row` is `keys` scores, `p` keys / 2 pairs, keys a multiple of 32.
            *inv = 1.0 / unsafe { softmax_pairs(row, len, p) };
        }
        for d0 in (0..dim).step_by(B) {
            let block = amx::Block {
                x: &probs,
                k2: keys / 2,
                w: [&v[d0..], &v[d0 + amx::ROWS..]],
                ldw: dim,
                rows: B,
                cols: B,
                out: ctx.as_mut_ptr(),
                ldo: B,
            };
            // SAFETY: as above: keys / 2 is a multiple of 16, each weight tile has keys / 2 pair
            // rows at stride `dim` from column d0 (+16) ≤ dim - 16; `ctx` is B × B.
            unsafe { amx::block(&block) };
            for (r, row) in ctx.chunks_exact(B).take(rows).enumerate() {
                let at = (task.start + r0 + r) * hidden + task.out + d0;
                for (t, c) in row.iter().enumerate() {
                    // SAFETY: in bounds and inside this task's block, per the contract.
                    unsafe { *out.0.add(at + t) = c * inv[r] };
                }
            }
        }
    }
}

/// The head's Q (with bias, scaled by 1/√d) as pair rows `[keys][d / 2]`, K (with bias) as
/// transposed pair rows `[d / 2][keys]` and V (with bias) as row pairs `[keys / 2][d]`, each
/// zero past the sequence's `len` tokens.
#[target_feature(enable = "avx512f,avx512bf16")]
fn pack(job: &Job, task: Head, keys: usize) -> (Aligned<u32>, Aligned<u32>, Aligned<u32>) {
    let (qkv, bias, dim) = (job.qkv, job.bias, job.layout.dim);
    let (len, d2, width) = (task.len, dim / 2, job.layout.qkv_width());
    let mut q = Aligned::zeroed(keys * d2);
    let mut kt = Aligned::zeroed(d2 * keys);
    let mut v = Aligned::zeroed(keys / 2 * dim);
    let (qo, ko, vo) = (task.q, task.k, task.v);
    let scale = 1.0 / (dim as f32).sqrt();
    let mut k_row = vec![0u32; d2];
    let rows = qkv[task.start * width..][..len * width].chunks_exact(width);
    for (i, row) in rows.enumerate() {
        let q_row = &mut q[i * d2..][..d2];
        // SAFETY: every range below is `dim` values inside `row` and `bias`, or `d2` pairs.
        unsafe {
            biased_pairs(&row[qo..][..dim], &bias[qo..][..dim], scale, q_row);
            biased_pairs(&row[ko..][..dim], &bias[ko..][..dim], 1.0, &mut k_row);
            let v_row = &mut v[i / 2 * dim..][..dim];
            half_pairs(&row[vo..][..dim], &bias[vo..][..dim], i % 2, v_row);
        }
        for (c, &pair) in k_row.iter().enumerate() {
            kt[c * keys + i] = pair;
        }
    }
    (q, kt, v)
}

/// `out[c] = pair((x[2c] + b[2c]) · scale, (x[2c + 1] + b[2c + 1]) · scale)`, rounded to
/// nearest even; `x.len()` is a multiple of 32 and `out` half as long.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn biased_pairs(x: &[f32], b: &[f32], scale: f32, out: &mut [u32]) {
    assert!(x.len().is_multiple_of(32) && b.len() == x.len() && out.len() * 2 == x.len());
    let scale = _mm512_set1_ps(scale);
    for ((x, b), out) in x
        .chunks_exact(32)
        .zip(b.chunks_exact(32))
        .zip(out.chunks_exact_mut(16))
    {
        // SAFETY: 32 values of `x` and `b`, 16 pairs of `out`, per the chunking.
        unsafe {
            let lo = _mm512_add_ps(_mm512_loadu_ps(x.as_ptr()), _mm512_loadu_ps(b.as_ptr()));
            let hi = _mm512_add_ps(
                _mm512_loadu_ps(x[16..].as_ptr()),
                _mm512_loadu_ps(b[16..].as_ptr()),
            );
            let pairs = _mm512_cvtne2ps_pbh(_mm512_mul_ps(hi, scale), _mm512_mul_ps(lo, scale));
            _mm512_storeu_si512(
                out.as_mut_ptr().cast(),
                std::mem::transmute::<__m512bh, __m512i>(pairs),
            );
        }
    }
}

/// Puts `x + b` rounded to bf16 into the low (`half` 0) or high (`half` 1) halves of the pairs
/// `out`, one per value; `x.len()` is a multiple of 16.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn half_pairs(x: &[f32], b: &[f32], half: usize, out: &mut [u32]) {
    assert!(x.len().is_multiple_of(16) && b.len() == x.len() && out.len() == x.len());
    let shift = _mm512_set1_epi32(16 * half as i32);
    for ((x, b), out) in x
        .chunks_exact(16)
        .zip(b.chunks_exact(16))
        .zip(out.chunks_exact_mut(16))
    {
        // SAFETY: 16 values of `x`, `b` and `out`, per the chunking.
        unsafe {
            let sum = _mm512_add_ps(_mm512_loadu_ps(x.as_ptr()), _mm512_loadu_ps(b.as_ptr()));
            let bits = std::mem::transmute::<__m256bh, __m256i>(_mm512_cvtneps_pbh(sum));
            let lanes = _mm512_sllv_epi32(_mm512_cvtepu16_epi32(bits), shift);
            let dst = out.as_mut_ptr().cast::<__m512i>();
            _mm512_storeu_si512(dst, _mm512_or_si512(_mm512_loadu_si512(dst), lanes));
        }
    }
}

/// The unnormalised softmax of the first `len` of the `keys` scores in `row`: `exp(s - max)`
/// rounded into bf16 pairs of consecutive keys in `out` (0 past `len`). Returns the sum of the
/// `f32` exponentials, by which the caller divides. `row.len()` is a multiple of 32.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn softmax_pairs(row: &[f32], len: usize, out: &mut [u32]) -> f32 {
    assert!(row.len().is_multiple_of(32) && out.len() * 2 == row.len() && len <= row.len());
    let m = _mm512_set1_ps(max(&row[..len]) * std::f32::consts::LOG2_E);
    let mut sum = _mm512_setzero_ps();
    for (c, (x, out)) in row
        .chunks_exact(32)
        .zip(out.chunks_exact_mut(16))
        .enumerate()
    {
        let live = |from: usize| {
            let n = len.saturating_sub(32 * c + from).min(16);
            ((1u32 << n) - 1) as u16
        };
        // SAFETY: 32 scores in, 16 pairs out, per the chunking.
        unsafe {
            let lo = _mm512_maskz_mov_ps(live(0), exp2_shifted(_mm512_loadu_ps(x.as_ptr()), m));
            let hi =
                _mm512_maskz_mov_ps(live(16), exp2_shifted(_mm512_loadu_ps(x[16..].as_ptr()), m));
            sum = _mm512_add_ps(sum, _mm512_add_ps(lo, hi));
            let pairs = _mm512_cvtne2ps_pbh(hi, lo);
            _mm512_storeu_si512(
                out.as_mut_ptr().cast(),
                std::mem::transmute::<__m512bh, __m512i>(pairs),
            );
        }
    }
    _mm512_reduce_add_ps(sum)
}

/// `2^(x · log2 e - m) = e^x / 2^m` per lane, to about 3e-6 relative: `2^f` for the fraction
/// `f` in [-½, ½] by its degree-5 Taylor polynomial, scaled by `2^n` for the nearest integer
/// `n` (`vscalefps` flushes far-negative inputs to 0, so no clamping). Plenty for probabilities
/// rounded to bf16 (2^-9), at half the instructions of [`super::exp`].
#[inline]
#[target_feature(enable = "avx512f")]
fn exp2_shifted(x: __m512, m: __m512) -> __m512 {
    const C: [f32; 6] = [
        1.0,
        std::f32::consts::LN_2,
        0.240_226_5,
        0.055_504_11,
        0.009_618_129,
        0.001_333_355_8,
    ];
    let t = _mm512_fmsub_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E), m);
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(t);
    let f = _mm512_sub_ps(t, n);
    let mut p = _mm512_set1_ps(C[5]);
    for c in C[..5].iter().rev() {
        p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(*c));
    }
    _mm512_scalef_ps(p, n)
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Result, Tensor};

    use super::super::{
        attention,
        attention::{
            tests::{reference, relative_value},
            HeadLayout, RelativeBias, Scores,
        },
        tests::{noise, skip},
        Precision,
    };

    #[test]
    fn matches_the_f64_reference() -> Result<()> {
        if !super::usable(32) {
            skip(
                "attention_amx::matches_the_f64_reference",
                "this CPU (or OS) has no AMX-BF16",
            );
            return Ok(());
        }
        for (heads, kv_heads, dim, with_bias) in [
            (3, 3, 32, false),
            (2, 2, 64, false),
            (2, 2, 64, true),
            (4, 2, 32, true),
        ] {
            let layout = HeadLayout {
                heads,
                kv_heads,
                dim,
            };
            let width = layout.qkv_width();
            let lens = [1usize, 5, 31, 32, 33, 0, 200, 64];
            let tokens: usize = lens.iter().sum();
            let qkv = noise(tokens * width, 11, 1.5);
            let bias = noise(width, 12, 0.5);
            let rel = RelativeBias::new(heads, 200, |h, d| relative_value(h, d) as f32);
            let zero = |_: usize, _: i64| 0.0;
            let value: &dyn Fn(usize, i64) -> f64 = if with_bias { &relative_value } else { &zero };
            let scores = Scores {
                relative: with_bias.then_some(&rel),
                ..Scores::default()
            };
            let want = reference(&qkv, &bias, &lens, layout, value);
            let t = Tensor::from_vec(qkv, (tokens, width), &Device::Cpu)?;
            let got = attention(&t, &bias, &lens, layout, scores, Precision::Bf16)?;
            for (row, (g, w)) in got.to_vec2::<f32>()?.iter().zip(&want).enumerate() {
                let w: Vec<f32> = w.iter().map(|&x| x as f32).collect();
                let dot: f32 = g.iter().zip(&w).map(|(g, w)| g * w).sum();
                let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
                let cos = dot / (norm(g) * norm(&w));
                let err = g
                    .iter()
                    .zip(&w)
                    .map(|(g, w)| (g - w).abs())
                    .fold(0f32, f32::max);
                assert!(
                    cos > 0.9995 && err < 0.02,
                    "{layout:?} bias {with_bias} row {row}: cos {cos}, err {err}"
                );
            }
        }
        Ok(())
    }
}
