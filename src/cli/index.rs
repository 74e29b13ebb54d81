//! `inferd index build`: embed a catalog into an index directory.

use std::path::PathBuf;

use clap::Args;

use super::{ModelArgs, OfflineArgs};
use crate::index::Search;

/// Options of `inferd index build`.
#[derive(Debug, Clone, Args)]
pub struct IndexBuildConfig {
    /// The model to embed with; a server refuses the index under other weights.
    #[command(flatten)]
    pub load: ModelArgs,

    /// Catalog: JSON lines `{"id", "text", ...metadata}`, gzipped when it ends in `.gz`.
    #[arg(long)]
    pub catalog: PathBuf,

    /// Index directory to write (created; an existing index there is replaced atomically).
    #[arg(long)]
    pub out: PathBuf,

    /// Default search of the index: exact (brute force) or hnsw (approximate, large catalogs).
    #[arg(long, value_enum, default_value_t = Search::Exact)]
    pub search: Search,

    #[command(flatten)]
    pub run: OfflineArgs,
}
