//! Item indexes for recommendations: vectors of a catalog's items, embedded by the served model,
//! searched for the `k` most similar.
//!
//! - [`store`]: the contiguous vector matrix, ids and metadata; on-disk generations published
//!   atomically.
//! - [`exact`]: SIMD, rayon-parallel exact top-k (the default).
//! - [`hnsw`]: the optional approximate graph.
//! - [`synthetic`]: deterministic synthetic vectors for benches and tests.
//! - [`wal`]: the write-ahead log that makes live writes durable.
//! - [`live`]: one served index: search, live writes, replay and compaction.
//! - [`build`]: `inferd index build`, a catalog embedded through the batched model.
//! - [`error`]: [`IndexError`]; [`metrics`]: items, writes and search time per index.
//!
//! An index records which model built it (name, version, weights' sha256) and is refused by a
//! server running any other weights: vectors from two models must never mix. Nothing here knows
//! HTTP.

pub mod build;
pub mod error;
pub mod exact;
pub mod hnsw;
pub mod live;
pub mod metrics;
pub mod store;
pub mod synthetic;
pub mod wal;

use serde::{Deserialize, Serialize};

pub use error::IndexError;
pub use live::{Filter, Found, IndexSet, LiveIndex, SearchSpec};

/// The on-disk format this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// How an index answers queries by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Search {
    /// Brute force over every vector: exact, and fast up to a few hundred thousand items.
    Exact,
    /// An HNSW graph: approximate, for large catalogs; built when the index loads.
    Hnsw,
}

/// What `header.json` says about an index.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IndexHeader {
    pub format: u32,
    /// Served name of the model that embedded the items.
    pub model: String,
    pub model_version: String,
    /// sha256 of the model's weights: the identity a server checks before loading the index.
    pub model_sha256: String,
    pub dimensions: usize,
    /// Items in this generation.
    pub count: usize,
    pub search: Search,
    /// Seconds since the Unix epoch when the index was first built.
    pub created_unix: u64,
}

/// Why a server refuses an index: it was built by other weights.
pub fn check_model(
    name: &str,
    header: &IndexHeader,
    model: &crate::model::ModelInfo,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        header.model_sha256 == model.sha256 && header.dimensions == model.dimensions,
        "index {name:?} was built by model {} version {} (weights sha256 {}, {} dimensions), \
         but this server runs {} version {} (weights sha256 {}, {} dimensions); vectors from \
         different models must not mix: rebuild it with `inferd index build`",
        header.model,
        header.model_version,
        header.model_sha256,
        header.dimensions,
        model.name,
        model.version,
        model.sha256,
        model.dimensions,
    );
    Ok(())
}
