//! One index generation in memory: the int8 codes of its base rows (mapped), the exact f32
//! vectors (on disk, read on demand), rows written live since (a small f32 tail), and the
//! packed ids and metadata.
//!
//! Searches scan or walk the codes and rescore their best candidates with the exact vectors,
//! read with `pread` from the generation's `vectors.f32`. That copy lives in the kernel's page
//! cache, not in the process: keeping it in RAM would cost 1,536 bytes per item (384-d f32) and
//! mapping it would count every page a rescore touched as the process's RSS, while a rescore
//! reads only a few dozen rows. Rows written live go to the tail (f32, exact search; compaction
//! folds them into a new generation). A write to an existing id appends a new row and marks
//! the old one dead, so row numbers never move until compaction.

use std::{fs::File, os::unix::fs::FileExt, sync::Arc};

use anyhow::Context;
use serde_json::{Map, Value};

use super::{
    exact::{self, dots, Hit},
    items::{metadata_text, Items},
    quant::{Codes, Prepared, Scale},
};

/// Metadata of one item: the catalog line's fields other than `id` and `text`.
pub type Metadata = Map<String, Value>;

/// Where the exact vectors of the base rows are read from.
pub enum Exact {
    /// A generation's `vectors.f32`, read row by row.
    File(File),
    /// In memory (stores built in process, tests).
    Memory(Vec<f32>),
}

/// The immutable rows of a generation: codes for search, exact vectors for rescoring.
pub struct Base {
    pub codes: Codes,
    pub exact: Exact,
}

impl Base {
    pub fn rows(&self) -> usize {
        self.codes.rows()
    }

    /// Copies row `row`'s exact vector into `out`.
    pub fn read(&self, row: u32, out: &mut [f32]) -> anyhow::Result<()> {
        let dim = out.len();
        match &self.exact {
            Exact::Memory(m) => {
                out.copy_from_slice(&m[row as usize * dim..(row as usize + 1) * dim])
            }
            Exact::File(file) => {
                let bytes: &mut [u8] = bytemuck::cast_slice_mut(out);
                file.read_exact_at(bytes, row as u64 * dim as u64 * 4)
                    .context("reading an exact vector from vectors.f32")?;
                if cfg!(target_endian = "big") {
                    out.iter_mut()
                        .for_each(|x| *x = f32::from_bits(x.to_bits().swap_bytes()));
                }
            }
        }
        Ok(())
    }
}

/// Items, their vectors and metadata; rows are append-only until compaction.
pub struct Store {
    dim: usize,
    base: Arc<Base>,
    tail: Vec<f32>,
    items: Items,
}

impl Store {
    /// A store over `base` whose rows are `items` (one per base row, in order).
    pub fn new(dim: usize, base: Base, mut items: Items) -> Self {
        assert_eq!(base.rows(), items.rows(), "one item per base row");
        items.seal();
        Self {
            dim,
            base: Arc::new(base),
            tail: Vec::new(),
            items,
        }
    }

    /// A store whose base is `vectors` (row-major, `dim` wide, kept in memory).
    pub fn from_parts(
        dim: usize,
        vectors: Vec<f32>,
        items: Vec<(String, Metadata)>,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(dim > 0, "dimension must be positive");
        anyhow::ensure!(
            vectors.len() == items.len() * dim,
            "{} vectors of {dim} floats expected, found {} floats",
            items.len(),
            vectors.len()
        );
        let mut packed = Items::default();
        for (id, metadata) in &items {
            packed.push(id, &metadata_text(metadata))?;
        }
        let codes = Codes::from_f32(&vectors, dim, Scale::PerDimension);
        let base = Base {
            codes,
            exact: Exact::Memory(vectors),
        };
        Ok(Self::new(dim, base, packed))
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Rows in the immutable base (what the approximate graph covers).
    pub fn base_rows(&self) -> usize {
        self.base.rows()
    }

    pub fn base(&self) -> &Arc<Base> {
        &self.base
    }

    pub fn tail(&self) -> &[f32] {
        &self.tail
    }

    pub fn items(&self) -> &Items {
        &self.items
    }

    /// Live items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Rows ever allocated, dead ones included.
    pub fn rows_allocated(&self) -> usize {
        self.items.rows()
    }

    pub fn row_of(&self, id: &str) -> Option<u32> {
        self.items.row_of(id)
    }

    pub fn is_alive(&self, row: u32) -> bool {
        self.items.is_alive(row)
    }

    pub fn id(&self, row: u32) -> &str {
        self.items.id(row)
    }

    pub fn metadata(&self, row: u32) -> Metadata {
        self.items.metadata(row)
    }

    /// Row `row`'s exact vector.
    pub fn vector(&self, row: u32) -> anyhow::Result<Vec<f32>> {
        let mut out = vec![0f32; self.dim];
        let base = self.base_rows();
        if (row as usize) < base {
            self.base.read(row, &mut out)?;
        } else {
            let r = row as usize - base;
            out.copy_from_slice(&self.tail[r * self.dim..(r + 1) * self.dim]);
        }
        Ok(out)
    }

    /// Adds or replaces `id`; returns whether it existed.
    pub fn upsert(&mut self, id: &str, vector: &[f32], metadata: &Metadata) -> bool {
        assert_eq!(vector.len(), self.dim, "vector width");
        let existed = self.remove(id);
        self.tail.extend_from_slice(vector);
        self.items
            .push(id, &metadata_text(metadata))
            .expect("the id was just removed");
        existed
    }

    /// Marks `id` dead; returns whether it existed.
    pub fn remove(&mut self, id: &str) -> bool {
        self.items.remove(id).is_some()
    }

    /// The `n` base rows `keep` accepts with the best code scores (a full int8 scan).
    pub fn scan_codes(
        &self,
        query: &Prepared,
        n: usize,
        keep: &(dyn Fn(u32) -> bool + Sync),
    ) -> Vec<u32> {
        let codes = &self.base.codes;
        exact::top_k_by(codes.all(), self.dim, 0, n, keep, &|rows, out| {
            query.score_rows(rows, out)
        })
        .into_iter()
        .map(|h| h.row)
        .collect()
    }

    /// `rows` (base rows) scored exactly against `query`, best first.
    pub fn rescore(&self, query: &[f32], rows: &[u32]) -> anyhow::Result<Vec<Hit>> {
        let mut v = vec![0f32; self.dim];
        let mut hits = Vec::with_capacity(rows.len());
        for &row in rows {
            self.base.read(row, &mut v)?;
            let mut score = [0f32];
            dots(&v, query, &mut score);
            hits.push(Hit {
                row,
                score: score[0],
            });
        }
        hits.sort_by(|a, b| b.cmp(a));
        Ok(hits)
    }

    /// Bytes held in memory (packed items, tail, and the codes), approximately.
    pub fn approx_bytes(&self) -> usize {
        let exact = match &self.base.exact {
            Exact::Memory(m) => m.len() * 4,
            Exact::File(_) => 0,
        };
        self.items.bytes() + self.tail.capacity() * 4 + self.base.codes.bytes() + exact
    }
}
