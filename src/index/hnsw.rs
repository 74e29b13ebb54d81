//! Approximate search: an HNSW graph (the `hnsw_rs` crate) over an index's base rows.
//!
//! The graph is built from the store's base matrix when an index loads or is compacted, on a
//! background thread, inserting rows in parallel over the rayon pool; until it is ready, queries
//! run exactly. `hnsw_rs` keeps its own copy of each vector (4 B × dimensions per row, on top of
//! the store's matrix). Rows written live after the base are not in the graph: they are few
//! (compaction folds them in) and are searched exactly and merged, and dead rows are skipped, so
//! live writes are visible to approximate queries at once.

use std::sync::Arc;

use hnsw_rs::{anndists::dist::distances::Distance, hnsw::Hnsw};
use rayon::prelude::*;

use super::exact::{dots, Hit};

/// Default candidates the graph search keeps (its `ef`): the upper bound on what one query
/// returns after filtering.
pub const EF_SEARCH: usize = 256;
/// Largest `ef` a request may ask for.
pub const EF_SEARCH_MAX: usize = 2048;
/// Neighbours per node on the upper layers (twice this on layer 0).
pub const M: usize = 16;
/// Candidates kept while inserting a node.
pub const EF_CONSTRUCTION: usize = 100;
/// Layers the graph may have (`hnsw_rs` allows at most 16).
const MAX_LAYERS: usize = 16;
/// Rows inserted per parallel batch (bounds the id list held at once).
const INSERT_BATCH: usize = 65_536;

/// Cosine distance of unit vectors, `1 − a·b`, with the crate's AVX2+FMA dot product.
/// Clamped at 0: rounding can make `a·a` exceed 1 and the graph requires distances ≥ 0.
#[derive(Clone, Copy, Default)]
pub struct CosineUnit;

impl Distance<f32> for CosineUnit {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        let mut score = [0f32];
        dots(a, b, &mut score);
        (1.0 - score[0]).max(0.0)
    }
}

/// Graph parameters.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    pub m: usize,
    pub ef_construction: usize,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            m: M,
            ef_construction: EF_CONSTRUCTION,
        }
    }
}

/// An HNSW graph over rows `0..n` of a matrix.
pub struct HnswIndex {
    graph: Hnsw<'static, f32, CosineUnit>,
    dim: usize,
}

impl HnswIndex {
    /// Builds the graph over every row of `matrix` with the default [`Params`] (parallel over
    /// the rayon pool; insertion order varies between runs, so graphs can differ slightly).
    pub fn build(matrix: Arc<[f32]>, dim: usize) -> Self {
        Self::build_with(&matrix, dim, Params::default())
    }

    /// Builds the graph over every row of `matrix` with `params`.
    pub fn build_with(matrix: &[f32], dim: usize, params: Params) -> Self {
        assert!(dim > 0 && matrix.len().is_multiple_of(dim), "matrix width");
        let n = matrix.len() / dim;
        let graph = Hnsw::new(
            params.m,
            n.max(1),
            MAX_LAYERS,
            params.ef_construction,
            CosineUnit,
        );
        // Rows one by one until the graph has an entry point and a few layers, then in
        // parallel (the first insertions contend on the same few nodes).
        let serial = n.min(1000);
        for (row, v) in matrix[..serial * dim].chunks_exact(dim).enumerate() {
            graph.insert_slice((v, row));
        }
        for start in (serial..n).step_by(INSERT_BATCH) {
            let end = (start + INSERT_BATCH).min(n);
            (start..end)
                .into_par_iter()
                .for_each(|row| graph.insert_slice((&matrix[row * dim..(row + 1) * dim], row)));
        }
        Self { graph, dim }
    }

    /// Rows in the graph.
    pub fn len(&self) -> usize {
        self.graph.get_nb_point()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Up to `k` of the [`EF_SEARCH`] rows nearest `query` that `keep` accepts, best first.
    pub fn search(&self, query: &[f32], k: usize, keep: &dyn Fn(u32) -> bool) -> Vec<Hit> {
        self.search_ef(query, k, EF_SEARCH, keep)
    }

    /// Up to `k` of the `ef` (at least `k`) rows nearest `query` that `keep` accepts, best first.
    /// A larger `ef` finds more of the true neighbours and takes longer.
    pub fn search_ef(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        keep: &dyn Fn(u32) -> bool,
    ) -> Vec<Hit> {
        assert_eq!(query.len(), self.dim, "query width");
        if k == 0 {
            return Vec::new();
        }
        let ef = ef.max(k);
        // Every candidate the search kept, nearest first; the filter applies after, as the
        // crate's in-search filter can walk much of the graph when it rejects many rows.
        self.graph
            .search(query, ef, ef)
            .into_iter()
            .map(|n| Hit {
                row: n.d_id as u32,
                score: 1.0 - n.distance,
            })
            .filter(|h| keep(h.row))
            .take(k)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{
        exact::{tests::random_unit_vectors, top_k},
        synthetic,
    };

    fn recall_at_10(matrix: &[f32], dim: usize, hnsw: &HnswIndex, queries: &[f32]) -> f64 {
        let mut found = 0;
        let mut wanted = 0;
        for q in queries.chunks_exact(dim) {
            let exact = top_k(matrix, 0, q, 10, &|_| true);
            let approx = hnsw.search(q, 10, &|_| true);
            wanted += exact.len();
            found += approx
                .iter()
                .filter(|h| exact.iter().any(|e| e.row == h.row))
                .count();
        }
        found as f64 / wanted as f64
    }

    #[test]
    fn recall_at_10_is_high_on_random_vectors() {
        let (n, dim) = (5000, 32);
        let matrix: Arc<[f32]> = random_unit_vectors(n, dim, 42).into();
        let hnsw = HnswIndex::build(Arc::clone(&matrix), dim);
        assert_eq!(hnsw.len(), n);
        let queries = random_unit_vectors(50, dim, 43);
        let recall = recall_at_10(&matrix, dim, &hnsw, &queries);
        assert!(recall > 0.9, "recall@10 {recall}");
    }

    #[test]
    fn matches_exact_top_k_on_clustered_vectors() {
        let (n, dim) = (20_000, 64);
        let mixture = synthetic::Mixture::new(dim, 200, 0.5, 7);
        let matrix: Arc<[f32]> = mixture.sample(n, 8).into();
        let hnsw = HnswIndex::build(Arc::clone(&matrix), dim);
        let queries = mixture.sample(100, 9);
        let recall = recall_at_10(&matrix, dim, &hnsw, &queries);
        assert!(recall >= 0.9, "recall@10 {recall}");
        // Scores are the exact cosine of the rows returned, best first.
        let q = &queries[..dim];
        let hits = hnsw.search(q, 10, &|_| true);
        assert_eq!(hits.len(), 10);
        for pair in hits.windows(2) {
            assert!(pair[0].score >= pair[1].score);
        }
        for h in &hits {
            let row = &matrix[h.row as usize * dim..(h.row as usize + 1) * dim];
            let dot: f32 = row.iter().zip(q).map(|(a, b)| a * b).sum();
            assert!((dot - h.score).abs() < 1e-4);
        }
    }

    #[test]
    fn keep_filters_and_ef_bounds_the_candidates() {
        let (n, dim) = (3000, 16);
        let matrix: Arc<[f32]> = random_unit_vectors(n, dim, 5).into();
        let hnsw = HnswIndex::build(Arc::clone(&matrix), dim);
        let q = random_unit_vectors(1, dim, 6);
        let even = hnsw.search(&q, 10, &|row| row % 2 == 0);
        assert_eq!(even.len(), 10);
        assert!(even.iter().all(|h| h.row % 2 == 0));
        // ef = k: at most k candidates, so a filter rejecting half leaves fewer than k.
        let narrow = hnsw.search_ef(&q, 10, 10, &|row| row % 2 == 0);
        assert!(narrow.len() <= 10);
        assert!(hnsw.search(&q, 0, &|_| true).is_empty());
        let single = HnswIndex::build(Arc::from(&matrix[..dim]), dim);
        let hit = single.search(&matrix[..dim], 5, &|_| true);
        assert_eq!(hit.len(), 1);
        assert_eq!(hit[0].row, 0);
    }
}
