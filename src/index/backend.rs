//! The seam between the routes and the index backends: a directory index served from this
//! process ([`LiveIndex`]) or a shared one in PostgreSQL ([`PgIndex`]). Routes call
//! [`Backend`]'s async methods and never learn which one answers; blocking work on the
//! embedded index runs on the blocking pool here.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, RwLock},
};

use super::{
    error::IndexError,
    live::{Filter, Found, LiveIndex, SearchSpec},
    postgres::PgIndex,
    store::Metadata,
    wal::WalRecord,
    IndexHeader,
};

/// One similarity query, owned (it crosses onto a blocking thread or into a query).
#[derive(Debug, Clone)]
pub struct SearchRequest {
    /// Unit-length query vector.
    pub vector: Vec<f32>,
    pub k: usize,
    pub filter: Filter,
    /// Ids never returned.
    pub exclude: HashSet<String>,
    /// Skip the approximate graph: score every row.
    pub exact: bool,
    /// Candidates the graph search keeps; ignored by exact search.
    pub ef_search: Option<usize>,
}

/// A served index, whichever backend holds it.
#[derive(Clone)]
pub enum Backend {
    Embedded(Arc<LiveIndex>),
    Postgres(Arc<PgIndex>),
}

impl Backend {
    pub fn name(&self) -> &str {
        match self {
            Self::Embedded(i) => &i.name,
            Self::Postgres(i) => &i.name,
        }
    }

    /// Which model built the index.
    pub fn header(&self) -> &IndexHeader {
        match self {
            Self::Embedded(i) => &i.header,
            Self::Postgres(i) => &i.header,
        }
    }

    /// Whether the backend can be reached (always true for an embedded index).
    pub fn available(&self) -> bool {
        match self {
            Self::Embedded(_) => true,
            Self::Postgres(i) => i.available(),
        }
    }

    /// The stored vector and metadata of `id`.
    pub async fn item(&self, id: &str) -> Result<Option<(Vec<f32>, Metadata)>, IndexError> {
        match self {
            Self::Embedded(i) => {
                let (i, id) = (Arc::clone(i), id.to_string());
                blocking(move || Ok(i.item(&id)?)).await
            }
            Self::Postgres(i) => i.item(id).await,
        }
    }

    /// The `k` best items for `req`.
    pub async fn search(&self, req: SearchRequest) -> Result<Vec<Found>, IndexError> {
        match self {
            Self::Embedded(i) => {
                let i = Arc::clone(i);
                blocking(move || {
                    let spec = SearchSpec {
                        vector: &req.vector,
                        k: req.k,
                        filter: &req.filter,
                        exclude: &req.exclude,
                        exact: req.exact,
                        ef_search: req.ef_search,
                    };
                    Ok(i.search(&spec)?)
                })
                .await
            }
            Self::Postgres(i) => i.search(&req).await,
        }
    }

    /// Applies one write durably; returns whether the id existed.
    pub async fn write(&self, record: WalRecord) -> Result<bool, IndexError> {
        match self {
            Self::Embedded(i) => {
                let i = Arc::clone(i);
                blocking(move || i.write(record)).await
            }
            Self::Postgres(i) => i.write(record).await,
        }
    }

    /// Folds the log into a new generation; returns its number.
    pub async fn compact(&self) -> Result<u64, IndexError> {
        match self {
            Self::Embedded(i) => {
                let i = Arc::clone(i);
                blocking(move || Ok(i.compact()?)).await
            }
            Self::Postgres(i) => Err(IndexError::Unsupported(format!(
                "index {:?} lives in PostgreSQL, which maintains it (autovacuum); there is no \
                 log to compact",
                i.name
            ))),
        }
    }

    /// Live items.
    pub async fn count(&self) -> Result<usize, IndexError> {
        match self {
            Self::Embedded(i) => Ok(i.len()),
            Self::Postgres(i) => i.count().await,
        }
    }

    /// What `GET /indexes` says about the index's state.
    pub async fn describe(&self) -> Description {
        match self {
            Self::Embedded(i) => Description {
                backend: "directory",
                items: Some(i.len()),
                graph_ready: i.graph_ready(),
                graph: i.graph_source(),
                available: true,
                writable: i.writable(),
            },
            Self::Postgres(i) => Description {
                backend: "postgres",
                items: i.count().await.ok(),
                graph_ready: false,
                graph: None,
                available: i.available(),
                writable: i.available(),
            },
        }
    }
}

/// A served index's state, whichever backend holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description {
    /// `directory` or `postgres`.
    pub backend: &'static str,
    /// Live items; `None` while the backend cannot be reached.
    pub items: Option<usize>,
    /// Whether the embedded approximate graph is built.
    pub graph_ready: bool,
    /// Where the embedded graph came from (`mapped`, `built`) or `building`.
    pub graph: Option<&'static str>,
    /// Whether the backend can be reached now.
    pub available: bool,
    /// Whether writes are accepted now.
    pub writable: bool,
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, IndexError> + Send + 'static,
) -> Result<T, IndexError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| IndexError::Internal(format!("index task failed: {e}")))?
}

/// The indexes a server loaded, by name.
#[derive(Default)]
pub struct IndexSet {
    indexes: RwLock<HashMap<String, Backend>>,
}

impl IndexSet {
    pub fn insert(&self, index: Backend) {
        let mut indexes = self.indexes.write().expect("index set lock");
        indexes.insert(index.name().to_string(), index);
    }

    /// The index called `name`, or the only one when `name` is `None`.
    pub fn get(&self, name: Option<&str>) -> Result<Backend, IndexError> {
        let indexes = self.indexes.read().expect("index set lock");
        match name {
            Some(name) => indexes
                .get(name)
                .cloned()
                .ok_or_else(|| IndexError::UnknownIndex(format!("{name:?}"))),
            None if indexes.len() == 1 => Ok(indexes.values().next().expect("one").clone()),
            None if indexes.is_empty() => Err(IndexError::UnknownIndex(
                "(none loaded: start the server with --index)".into(),
            )),
            None => {
                let mut names: Vec<&str> = indexes.keys().map(String::as_str).collect();
                names.sort();
                Err(IndexError::Ambiguous(format!(
                    "several indexes are loaded; name one with `index`: {}",
                    names.join(", ")
                )))
            }
        }
    }

    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .indexes
            .read()
            .expect("index set lock")
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    }

    /// The names of indexes whose backend cannot be reached now.
    pub fn unavailable(&self) -> Vec<String> {
        let indexes = self.indexes.read().expect("index set lock");
        let mut down: Vec<String> = indexes
            .values()
            .filter(|i| !i.available())
            .map(|i| i.name().to_string())
            .collect();
        down.sort();
        down
    }
}
