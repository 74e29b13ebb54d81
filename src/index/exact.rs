//! Exact top-k by inner product: SIMD dot products over the contiguous matrix, rows split into
//! blocks scored in parallel with rayon, each block keeping a bounded min-heap of its best `k`.
//!
//! Vectors are L2-normalised at write time, so the inner product is the cosine similarity.
//! The `keep` predicate (liveness, filters, exclusions) is only asked about rows that would
//! enter a heap, so a selective filter costs little more than the scan itself.

use std::{cmp::Ordering, collections::BinaryHeap};

use rayon::prelude::*;

/// One scored row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    pub row: u32,
    pub score: f32,
}

impl Eq for Hit {}

impl Ord for Hit {
    /// Better first: higher score, then lower row (so ties are deterministic).
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.row.cmp(&self.row))
    }
}

impl PartialOrd for Hit {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Rows one rayon task scores.
const BLOCK_ROWS: usize = 1024;
/// Below this many rows the scan runs on the calling thread.
const PARALLEL_FROM_ROWS: usize = 8 * BLOCK_ROWS;

/// The `k` best rows of `matrix` (row-major, `query.len()` wide, first row numbered
/// `first_row`) that `keep` accepts, best first.
pub fn top_k(
    matrix: &[f32],
    first_row: u32,
    query: &[f32],
    k: usize,
    keep: &(dyn Fn(u32) -> bool + Sync),
) -> Vec<Hit> {
    top_k_by(matrix, query.len(), first_row, k, keep, &|rows, out| {
        dots(rows, query, out)
    })
}

/// The `k` best rows of `matrix` (`dim` wide, of any element type) by `score`, which fills
/// one score per row of a block; `keep` is asked only about rows that would make the heap.
pub fn top_k_by<T: Sync>(
    matrix: &[T],
    dim: usize,
    first_row: u32,
    k: usize,
    keep: &(dyn Fn(u32) -> bool + Sync),
    score: &(dyn Fn(&[T], &mut [f32]) + Sync),
) -> Vec<Hit> {
    if k == 0 || dim == 0 || matrix.is_empty() {
        return Vec::new();
    }
    let block = |(b, rows): (usize, &[T])| {
        let mut heap = TopK::new(k);
        let mut scores = [0f32; BLOCK_ROWS];
        let n = rows.len() / dim;
        score(rows, &mut scores[..n]);
        let base = first_row + (b * BLOCK_ROWS) as u32;
        for (i, &score) in scores[..n].iter().enumerate() {
            let row = base + i as u32;
            if heap.admits(score) && keep(row) {
                heap.push(Hit { row, score });
            }
        }
        heap
    };
    let heap = if matrix.len() / dim < PARALLEL_FROM_ROWS {
        matrix
            .chunks(BLOCK_ROWS * dim)
            .enumerate()
            .map(block)
            .fold(TopK::new(k), TopK::merge)
    } else {
        matrix
            .par_chunks(BLOCK_ROWS * dim)
            .enumerate()
            .map(block)
            .reduce(|| TopK::new(k), TopK::merge)
    };
    heap.into_sorted()
}

/// Merges per-segment results into the overall best `k`.
pub fn merge(lists: impl IntoIterator<Item = Vec<Hit>>, k: usize) -> Vec<Hit> {
    let mut heap = TopK::new(k);
    for hit in lists.into_iter().flatten() {
        if heap.admits(hit.score) {
            heap.push(hit);
        }
    }
    heap.into_sorted()
}

/// A bounded min-heap of the best `k` hits seen.
struct TopK {
    k: usize,
    heap: BinaryHeap<std::cmp::Reverse<Hit>>,
}

impl TopK {
    fn new(k: usize) -> Self {
        Self {
            k,
            heap: BinaryHeap::with_capacity(k + 1),
        }
    }

    /// Whether a hit with `score` could enter (cheap pre-check before the `keep` predicate).
    fn admits(&self, score: f32) -> bool {
        self.heap.len() < self.k || self.heap.peek().is_some_and(|w| score >= w.0.score)
    }

    fn push(&mut self, hit: Hit) {
        self.heap.push(std::cmp::Reverse(hit));
        if self.heap.len() > self.k {
            self.heap.pop();
        }
    }

    fn merge(mut self, other: Self) -> Self {
        for hit in other.heap {
            self.push(hit.0);
        }
        self
    }

    fn into_sorted(self) -> Vec<Hit> {
        let mut hits: Vec<Hit> = self.heap.into_iter().map(|r| r.0).collect();
        hits.sort_by(|a, b| b.cmp(a));
        hits
    }
}

/// `out[i] = rows[i] · query`, compiled for AVX2+FMA when the CPU has it.
pub fn dots(rows: &[f32], query: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2,fma")]
        fn avx2(rows: &[f32], query: &[f32], out: &mut [f32]) {
            dots_body::<true>(rows, query, out)
        }
        if crate::model::isa().avx2_fma {
            // SAFETY: `isa` reports AVX2 + FMA only where the CPU has them.
            return unsafe { avx2(rows, query, out) };
        }
    }
    dots_body::<false>(rows, query, out)
}

#[inline(always)]
fn dots_body<const FMA: bool>(rows: &[f32], query: &[f32], out: &mut [f32]) {
    for (row, o) in rows.chunks_exact(query.len()).zip(out) {
        *o = dot::<FMA>(row, query);
    }
}

/// Sixteen independent accumulators: two 8-wide registers the compiler keeps in flight.
#[inline(always)]
fn dot<const FMA: bool>(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 16;
    let mut acc = [0f32; LANES];
    let (ac, bc) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ac.zip(bc) {
        for i in 0..LANES {
            acc[i] = if FMA {
                x[i].mul_add(y[i], acc[i])
            } else {
                x[i] * y[i] + acc[i]
            };
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Deterministic pseudo-random unit vectors: the synthetic module's uniform set.
    pub(crate) fn random_unit_vectors(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        crate::index::synthetic::uniform_unit_vectors(n, dim, seed)
    }

    fn brute_force(m: &[f32], q: &[f32], k: usize, keep: impl Fn(u32) -> bool) -> Vec<Hit> {
        let mut all: Vec<Hit> = m
            .chunks_exact(q.len())
            .enumerate()
            .map(|(i, r)| Hit {
                row: i as u32,
                score: r
                    .iter()
                    .zip(q)
                    .map(|(x, y)| *x as f64 * *y as f64)
                    .sum::<f64>() as f32,
            })
            .filter(|h| keep(h.row))
            .collect();
        all.sort_by(|a, b| b.cmp(a));
        all.truncate(k);
        all
    }

    #[test]
    fn top_k_equals_brute_force_on_random_vectors() {
        for (n, dim, k) in [(1, 8, 10), (100, 7, 5), (3000, 33, 10), (20_000, 64, 50)] {
            let m = random_unit_vectors(n, dim, n as u64);
            for q_seed in 0..3 {
                let q = random_unit_vectors(1, dim, 1000 + q_seed);
                let got = top_k(&m, 0, &q, k, &|_| true);
                let want = brute_force(&m, &q, k, |_| true);
                assert_eq!(got.len(), want.len().min(k));
                for (g, w) in got.iter().zip(&want) {
                    assert_eq!(g.row, w.row, "n={n} dim={dim}");
                    assert!((g.score - w.score).abs() < 1e-5);
                }
            }
        }
    }

    #[test]
    fn filter_and_offset_are_respected() {
        let m = random_unit_vectors(10_000, 16, 7);
        let q = random_unit_vectors(1, 16, 8);
        let even = |r: u32| r.is_multiple_of(2);
        let got = top_k(&m, 0, &q, 20, &even);
        let want = brute_force(&m, &q, 20, even);
        assert_eq!(
            got.iter().map(|h| h.row).collect::<Vec<_>>(),
            want.iter().map(|h| h.row).collect::<Vec<_>>()
        );
        let shifted = top_k(&m, 500, &q, 3, &|_| true);
        assert_eq!(shifted[0].row, want_row0(&m, &q) + 500);
    }

    fn want_row0(m: &[f32], q: &[f32]) -> u32 {
        brute_force(m, q, 1, |_| true)[0].row
    }

    #[test]
    fn merge_keeps_the_best_across_segments() {
        let a = vec![Hit { row: 1, score: 0.9 }, Hit { row: 2, score: 0.1 }];
        let b = vec![Hit { row: 7, score: 0.5 }];
        let rows: Vec<u32> = merge([a, b], 2).iter().map(|h| h.row).collect();
        assert_eq!(rows, [1, 7]);
    }
}
