//! Item indexes for recommendations: vectors of a catalog's items, embedded by the served model,
//! searched for the `k` most similar.
//!
//! - [`store`]: one generation in memory: int8 codes, exact vectors on disk, the live tail.
//! - [`items`]: ids and metadata, packed; [`filter`]: metadata filters on their JSON text.
//! - [`generation`]: on-disk generations, written and published atomically, and loaded.
//! - [`mapped`]: checksummed, memory-mapped files.
//! - [`quant`]: int8 scalar quantization and its integer dot product.
//! - [`exact`]: SIMD, rayon-parallel top-k over a matrix (the scan of exact search).
//! - [`graph`]: the optional approximate graph (HNSW over the codes), persisted per generation.
//! - [`synthetic`]: deterministic synthetic vectors for benches and tests.
//! - [`wal`]: the write-ahead log that makes live writes durable.
//! - [`live`]: one served index: search, live writes, replay and compaction.
//! - [`build`]: `inferd index build`, a catalog embedded through the batched model.
//! - [`postgres`]: the shared backend, PostgreSQL + pgvector, for replicas.
//! - [`backend`]: the seam routes call, whichever backend holds the index.
//! - [`error`]: [`IndexError`]; [`metrics`]: items, writes and search time per index.
//!
//! An index records which model built it (name, version, weights' sha256) and is refused by a
//! server running any other weights: vectors from two models must never mix. Nothing here knows
//! HTTP.

pub mod backend;
pub mod build;
pub mod error;
pub mod exact;
pub mod filter;
pub mod generation;
pub mod graph;
pub mod items;
pub mod live;
pub mod mapped;
pub mod metrics;
pub mod postgres;
pub mod quant;
pub mod store;
pub mod synthetic;
pub mod wal;

use serde::{Deserialize, Serialize};

pub use backend::{Backend, IndexSet, SearchRequest};
pub use error::IndexError;
pub use live::{Filter, Found, LiveIndex, SearchSpec, Tuning};

/// Where an index lives.
#[derive(Clone, PartialEq, Eq)]
pub enum IndexLocation {
    /// A directory written by `inferd index build` (served from this process).
    Dir(std::path::PathBuf),
    /// A PostgreSQL database with pgvector (`postgresql://…`), shared by replicas.
    Postgres(String),
}

impl IndexLocation {
    pub fn parse(s: &str) -> Self {
        if postgres::schema::is_url(s) {
            Self::Postgres(s.to_string())
        } else {
            Self::Dir(std::path::PathBuf::from(s))
        }
    }
}

impl std::fmt::Debug for IndexLocation {
    /// URLs print without their password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Dir(dir) => write!(f, "{}", dir.display()),
            Self::Postgres(url) => f.write_str(&postgres::schema::redact(url)),
        }
    }
}

/// The on-disk format this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// How an index answers queries by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Search {
    /// Brute force over every vector: exact, and fast up to a few hundred thousand items.
    Exact,
    /// An HNSW graph: approximate, for large catalogs; built with the index and stored in it.
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
