//! Multi-head self-attention over packed sequences, one rayon task per (sequence, head),
//! with AVX2+FMA register tiles for the two inner products.
//!
//! What varies between architectures enters through two small types, so a new family adds a
//! field rather than a new kernel:
//! - [`HeadLayout`]: where each head's Q, K and V sit in a packed QKV row. `kv_heads < heads` is
//!   grouped-query attention (query head `h` reads K/V head `h / (heads / kv_heads)`).
//! - [`Scores`]: what is added to (or masks) the scaled scores `QKᵀ/√d` before the softmax:
//!   MPNet's [`RelativeBias`], a sliding window (ModernBERT's local layers: query `i` sees keys
//!   `j` with `|i - j| <= window`) and causal masking (key `j <= i`). Masked keys get a score of
//!   [`MASKED`], whose exponential is 0 (or below 2e-38) in both the f32 and the AMX softmax.
//!
//! Rotary embeddings are not attention's business: they rotate Q and K in the packed QKV
//! buffer before this runs (see [`super::rotary`]).

use candle_core::{bail, Device, Result, Tensor};
use rayon::prelude::*;

use super::{exp_shifted, madd, with_slice, Precision, LANES, QROWS};

/// Where the heads sit in one packed QKV row: Q of `heads` heads, then K of `kv_heads` heads,
/// then V of `kv_heads` heads, each head `dim` wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadLayout {
    pub heads: usize,
    pub kv_heads: usize,
    pub dim: usize,
}

impl HeadLayout {
    /// Multi-head attention with as many K/V heads as query heads, splitting `hidden`.
    pub fn multi_head(hidden: usize, heads: usize) -> Self {
        Self {
            heads,
            kv_heads: heads,
            dim: hidden / heads.max(1),
        }
    }

    /// Width of a packed QKV row.
    pub fn qkv_width(&self) -> usize {
        (self.heads + 2 * self.kv_heads) * self.dim
    }

    /// Width of a context row (all query heads).
    pub fn out_width(&self) -> usize {
        self.heads * self.dim
    }

    /// The (sequence, head) task for query head `h`: its Q, K and V columns in a QKV row.
    fn task(&self, start: usize, len: usize, h: usize) -> Head {
        let kv = h / (self.heads / self.kv_heads);
        let k0 = self.heads * self.dim;
        Head {
            start,
            len,
            q: h * self.dim,
            k: k0 + kv * self.dim,
            v: k0 + (self.kv_heads + kv) * self.dim,
            out: h * self.dim,
            head: h,
        }
    }
}

/// An additive score bias by relative position (`key - query`), one value per head and
/// distance: MPNet's bucketed relative attention bias, shared by every layer. Built once at
/// load for distances up to `max_len - 1` either way.
pub struct RelativeBias {
    /// `[heads][2 * max_len - 1]`, distance `d` at `d + max_len - 1`.
    values: Vec<f32>,
    max_len: usize,
}

impl RelativeBias {
    /// `value(head, distance)` for every head below `heads` and distance in
    /// `-(max_len - 1)..=max_len - 1`.
    pub fn new(heads: usize, max_len: usize, value: impl Fn(usize, i64) -> f32) -> Self {
        let span = 2 * max_len.max(1) - 1;
        let mut values = Vec::with_capacity(heads * span);
        for h in 0..heads {
            let first = 1 - max_len.max(1) as i64;
            values.extend((0..span).map(|d| value(h, first + d as i64)));
        }
        Self {
            values,
            max_len: max_len.max(1),
        }
    }

    /// The bias of query `i` against keys `0..len` of head `head` (`i < len <= max_len`).
    pub(super) fn row(&self, head: usize, i: usize, len: usize) -> &[f32] {
        let span = 2 * self.max_len - 1;
        let at = head * span + self.max_len - 1 - i;
        &self.values[at..at + len]
    }

    fn covers(&self, heads: usize, len: usize) -> bool {
        len <= self.max_len && self.values.len() >= heads * (2 * self.max_len - 1)
    }
}

/// What is added to the scaled scores before the softmax; the default adds nothing.
#[derive(Clone, Copy, Default)]
pub struct Scores<'a> {
    pub relative: Option<&'a RelativeBias>,
    /// Sliding window: query `i` sees only keys `j` with `|i - j| <= window`.
    pub window: Option<usize>,
    /// Causal: query `i` sees only keys `j <= i`.
    pub causal: bool,
}

/// The score of a masked key: finite, so that the AMX `exp2` (which turns `-inf - -inf` into
/// NaN) still gives exactly 0, and far below any real score.
pub(super) const MASKED: f32 = -1e30;

impl Scores<'_> {
    /// The keys `lo..hi` query `i` of a `len`-token sequence sees.
    #[inline(always)]
    fn visible(&self, i: usize, len: usize) -> (usize, usize) {
        let (mut lo, mut hi) = (0, len);
        if let Some(w) = self.window {
            lo = i.saturating_sub(w);
            hi = hi.min(i.saturating_add(w).saturating_add(1));
        }
        if self.causal {
            hi = hi.min(i + 1);
        }
        (lo, hi)
    }
}

/// Where one (sequence, head) attention task reads and writes.
#[derive(Clone, Copy)]
pub(super) struct Head {
    /// First token row of the sequence.
    pub start: usize,
    pub len: usize,
    /// First column of the head's Q, K and V inside a QKV row, and of its context columns.
    pub q: usize,
    pub k: usize,
    pub v: usize,
    pub out: usize,
    /// Query head index (for per-head score terms).
    pub head: usize,
}

/// Shared output pointer; every task writes a disjoint (rows × head columns) block.
#[derive(Clone, Copy)]
pub(super) struct OutPtr(pub *mut f32);
// SAFETY: tasks write disjoint elements and the buffer outlives the parallel loop.
unsafe impl Send for OutPtr {}
// SAFETY: as for Send: shared only as a base pointer for disjoint writes.
unsafe impl Sync for OutPtr {}

/// Everything a task reads, shared by all tasks of one call.
pub(super) struct Job<'a> {
    pub qkv: &'a [f32],
    pub bias: &'a [f32],
    pub layout: HeadLayout,
    pub scores: Scores<'a>,
    pub out: OutPtr,
}

impl Job<'_> {
    /// Adds the per-head score terms to the scores of query `i` against keys `0..row.len()`.
    #[inline(always)]
    pub(super) fn add_score_terms(&self, task: Head, i: usize, row: &mut [f32]) {
        let len = row.len();
        if let Some(rel) = self.scores.relative {
            for (s, b) in row.iter_mut().zip(rel.row(task.head, i, len)) {
                *s += b;
            }
        }
        let (lo, hi) = self.scores.visible(i, len);
        row[..lo].fill(MASKED);
        row[hi..].fill(MASKED);
    }
}

/// Multi-head self-attention over packed sequences: `qkv` is `[tokens, layout.qkv_width()]`
/// (projections without bias), `qkv_bias` is `[layout.qkv_width()]`; returns the
/// `[tokens, layout.out_width()]` context. With `Precision::Bf16`, heads run on AMX where
/// [`super::attention_amx`] takes them.
pub fn attention(
    qkv: &Tensor,
    qkv_bias: &[f32],
    lens: &[usize],
    layout: HeadLayout,
    scores: Scores,
    precision: Precision,
) -> Result<Tensor> {
    let (tokens, width) = qkv.dims2()?;
    let HeadLayout {
        heads,
        kv_heads,
        dim,
    } = layout;
    let fits = kv_heads > 0 && heads.is_multiple_of(kv_heads) && dim > 0;
    if lens.iter().sum::<usize>() != tokens || width != layout.qkv_width() || !fits {
        bail!("attention: {tokens} tokens of width {width} do not fit {lens:?} / {layout:?}");
    }
    if qkv_bias.len() != width {
        bail!("attention: bias of {} for rows of {width}", qkv_bias.len());
    }
    let longest = lens.iter().copied().max().unwrap_or(0);
    if scores.relative.is_some_and(|r| !r.covers(heads, longest)) {
        bail!("attention: relative bias does not cover {heads} heads × {longest} tokens");
    }
    let hidden = layout.out_width();
    let mut ctx = vec![0f32; tokens * hidden];
    let out = OutPtr(ctx.as_mut_ptr());
    let mut tasks = Vec::with_capacity(lens.len() * heads);
    let mut start = 0;
    for &len in lens {
        tasks.extend((0..heads).map(|h| layout.task(start, len, h)));
        start += len;
    }
    // Longest first, so the big tasks do not straggle at the end.
    tasks.sort_by_key(|t| std::cmp::Reverse(t.len));
    let amx = precision == Precision::Bf16 && amx_usable(dim);
    with_slice(qkv, |qkv| {
        let job = Job {
            qkv,
            bias: qkv_bias,
            layout,
            scores,
            out,
        };
        tasks.par_iter().for_each(|&task| {
            if amx {
                // SAFETY: `amx_usable(dim)` held; each task owns its block of `ctx`.
                #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
                unsafe {
                    super::attention_amx::attend_head(&job, task)
                };
            } else {
                attend_head(&job, task)
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

dispatch!(fn attend_head(job: &Job, task: Head) => attend_head_body);

/// One (sequence, head): scores = QKᵀ/√d, stable softmax, × V, written into `out`, which must
/// point to a `[tokens, hidden]` buffer whose task block nobody else touches (see [`attention`]).
#[inline(always)]
fn attend_head_body<const FMA: bool>(job: &Job, task: Head) {
    let len = task.len;
    if len == 0 {
        return;
    }
    let (dim, width, hidden) = (
        job.layout.dim,
        job.layout.qkv_width(),
        job.layout.out_width(),
    );
    let (qkv, bias, out) = (job.qkv, job.bias, job.out);
    let (dp, kp) = (dim.div_ceil(LANES) * LANES, len.div_ceil(LANES) * LANES);
    let qp = len.div_ceil(QROWS) * QROWS;
    let scale = 1.0 / (dim as f32).sqrt();
    // Local copies with bias: q [qp, dim] pre-scaled, kᵀ [dim, kp], v [len, dp]; zero padding.
    let mut q = vec![0f32; qp * dim];
    let mut kt = vec![0f32; dim * kp];
    let mut v = vec![0f32; len * dp];
    // Where the head's `dim` columns of Q, K and V start inside a row (and inside the bias).
    let (qo, ko, vo) = (task.q, task.k, task.v);
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
            let row = &mut s[r * kp..r * kp + len];
            if r0 + r < len {
                job.add_score_terms(task, r0 + r, row);
            }
            *inv = 1.0 / exp_shifted::<FMA>(row);
        }
        for d0 in (0..dp).step_by(LANES) {
            let acc = tile::<FMA>(&s, kp, len, &v[d0..], dp);
            let cols = LANES.min(dim - d0);
            for (r, a) in acc.iter().enumerate().take(len.saturating_sub(r0)) {
                let at = (task.start + r0 + r) * hidden + task.out + d0;
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
            if super::isa::isa().avx512f {
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

    /// See [`super::tile`].
    ///
    /// # Safety
    /// The CPU must have AVX2 and FMA, and every index read must be in bounds (`super::tile`
    /// asserts it).
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
        // SAFETY: the features are this function's contract; `super::tile` asserted that every
        // `a[r * a_stride + c]` and `b[c * b_stride..][..16]` read here is in bounds.
        unsafe {
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
    }

    /// See [`super::tile`].
    ///
    /// # Safety
    /// The CPU must have AVX-512F, and every index read must be in bounds (`super::tile` asserts
    /// it).
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
        // SAFETY: as in `tile`: features by contract, every read asserted in bounds by
        // `super::tile`; the stores write the local `out`.
        unsafe {
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
    }

    /// The accumulators, lane pairs summed, as a plain tile.
    ///
    /// # Safety
    /// The CPU must have AVX (implied by the callers' AVX2).
    #[inline(always)]
    unsafe fn store(acc: &[[__m256; 2]; QROWS]) -> Tile {
        let mut out = [[0f32; LANES]; QROWS];
        for (o, a) in out.iter_mut().zip(acc) {
            // SAFETY: each row of `out` holds 16 floats: two 8-float stores at 0 and 8.
            unsafe {
                _mm256_storeu_ps(o.as_mut_ptr(), a[0]);
                _mm256_storeu_ps(o.as_mut_ptr().add(8), a[1]);
            }
        }
        out
    }
}

#[cfg(test)]
pub(super) mod tests;
