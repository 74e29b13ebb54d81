//! Approximate search: an HNSW graph (the `instant-distance` crate) over an index's base rows.
//!
//! The graph points into the store's shared base matrix (no copy of the vectors). It is built
//! from the vectors when an index loads or is compacted, on a background thread; until it is
//! ready, queries run exactly. Rows written live after the base are not in the graph: they are
//! few (compaction folds them in) and are searched exactly and merged, and dead rows are
//! skipped, so live writes are visible to approximate queries at once.

use std::sync::Arc;

use instant_distance::{Builder, Hnsw, Search};

use super::exact::{dots, Hit};

/// Candidates the graph search keeps (its `ef`): the upper bound on what one query returns.
pub const EF_SEARCH: usize = 256;
const EF_CONSTRUCTION: usize = 100;

/// One row of a shared matrix, as a point the graph can measure.
#[derive(Clone)]
struct Row {
    data: Arc<[f32]>,
    row: u32,
    dim: u32,
}

impl Row {
    fn vector(&self) -> &[f32] {
        let (dim, row) = (self.dim as usize, self.row as usize);
        &self.data[row * dim..(row + 1) * dim]
    }
}

impl instant_distance::Point for Row {
    fn distance(&self, other: &Self) -> f32 {
        let mut score = [0f32];
        dots(self.vector(), other.vector(), &mut score);
        1.0 - score[0]
    }
}

/// An HNSW graph over rows `0..n` of a matrix.
pub struct HnswIndex {
    graph: Hnsw<Row>,
    dim: usize,
}

impl HnswIndex {
    /// Builds the graph over every row of `matrix` (parallel over the rayon pool; seeded, so
    /// the same vectors give the same graph).
    pub fn build(matrix: Arc<[f32]>, dim: usize) -> Self {
        let n = matrix.len() / dim;
        let points = (0..n as u32)
            .map(|row| Row {
                data: Arc::clone(&matrix),
                row,
                dim: dim as u32,
            })
            .collect();
        let (graph, _) = Builder::default()
            .ef_construction(EF_CONSTRUCTION)
            .ef_search(EF_SEARCH)
            .seed(0x1_4f3d)
            .build_hnsw(points);
        Self { graph, dim }
    }

    /// Up to [`EF_SEARCH`] rows nearest `query` that `keep` accepts, best first.
    pub fn search(&self, query: &[f32], k: usize, keep: &dyn Fn(u32) -> bool) -> Vec<Hit> {
        assert_eq!(query.len(), self.dim, "query width");
        let query = Row {
            data: Arc::from(query),
            row: 0,
            dim: self.dim as u32,
        };
        let mut search = Search::default();
        self.graph
            .search(&query, &mut search)
            .filter(|item| keep(item.point.row))
            .take(k)
            .map(|item| Hit {
                row: item.point.row,
                score: 1.0 - item.distance,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::exact::{tests::random_unit_vectors, top_k};

    #[test]
    fn recall_at_10_is_high_on_random_vectors() {
        let (n, dim) = (5000, 32);
        let matrix: Arc<[f32]> = random_unit_vectors(n, dim, 42).into();
        let hnsw = HnswIndex::build(Arc::clone(&matrix), dim);
        let queries = random_unit_vectors(50, dim, 43);
        let mut found = 0;
        for q in queries.chunks_exact(dim) {
            let exact = top_k(&matrix, 0, q, 10, &|_| true);
            let approx = hnsw.search(q, 10, &|_| true);
            found += approx
                .iter()
                .filter(|h| exact.iter().any(|e| e.row == h.row))
                .count();
        }
        let recall = found as f64 / 500.0;
        assert!(recall > 0.9, "recall@10 {recall}");
    }
}
