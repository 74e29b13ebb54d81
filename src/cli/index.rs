//! `inferd index build`: embed a catalog into an index (a directory or PostgreSQL).

use std::path::PathBuf;

use clap::Args;

use super::{IndexLocation, ModelArgs, OfflineArgs};
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

    /// Index to write: a directory (created; an existing index there is replaced atomically) or
    /// postgresql://USER:PASSWORD@HOST/DB (with --name; replaced in one transaction).
    #[arg(long, env = "INFERD_INDEX_OUT", value_parser = |s: &str| Ok::<_, String>(IndexLocation::parse(s)))]
    pub out: IndexLocation,

    /// Name of the index in the database (needed with a postgresql:// `--out`): serve it as
    /// `--index NAME=postgresql://…`.
    #[arg(long, env = "INFERD_INDEX_NAME")]
    pub name: Option<String>,

    /// Default search of the index: exact (brute force) or hnsw (approximate, large catalogs).
    #[arg(long, value_enum, default_value_t = Search::Exact)]
    pub search: Search,

    #[command(flatten)]
    pub run: OfflineArgs,
}
