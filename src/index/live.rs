//! One served index: similarity search, live writes, write-ahead-log replay and compaction.
//!
//! Readers share an `RwLock` over the store and search under its read lock; writers are
//! serialised by the log's mutex, append and fsync the record *before* applying it, and hold
//! the write lock only for the in-memory update. Compaction (after `compact_after` logged writes,
//! or on request) holds the log's mutex, so writes wait for it while searches go on.

use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, RwLock,
    },
};

use anyhow::Context;
use serde_json::Value;

use super::{
    exact::{self, Hit},
    hnsw::{self, HnswIndex},
    store::{self, Metadata, Store},
    wal::{Wal, WalRecord},
    IndexHeader, Search,
};
use super::{metrics, IndexError};

/// Metadata conditions: every field must equal one of its listed values.
#[derive(Debug, Clone, Default)]
pub struct Filter(pub Vec<(String, Vec<Value>)>);

impl Filter {
    pub fn matches(&self, metadata: &Metadata) -> bool {
        self.0
            .iter()
            .all(|(field, allowed)| metadata.get(field).is_some_and(|v| allowed.contains(v)))
    }
}

/// One similarity query against an index.
pub struct SearchSpec<'a> {
    /// Unit-length query vector.
    pub vector: &'a [f32],
    pub k: usize,
    pub filter: &'a Filter,
    /// Ids never returned.
    pub exclude: &'a HashSet<String>,
    /// Force exact search on an approximate index.
    pub exact: bool,
    /// Candidates the graph search keeps (default [`hnsw::EF_SEARCH`]); ignored by exact search.
    pub ef_search: Option<usize>,
}

/// One result.
#[derive(Debug, Clone)]
pub struct Found {
    pub id: Arc<str>,
    pub score: f32,
    pub metadata: Arc<Metadata>,
}

struct Inner {
    store: Store,
    /// Graph over `store`'s base; `None` while building or when the index is exact.
    graph: Option<Arc<HnswIndex>>,
}

struct Log {
    gen: u64,
    wal: Wal,
}

pub struct LiveIndex {
    pub name: String,
    pub header: IndexHeader,
    dir: PathBuf,
    compact_after: usize,
    inner: RwLock<Inner>,
    log: Mutex<Log>,
    /// An automatic compaction is queued or running (so writes start at most one).
    compacting: AtomicBool,
}

impl LiveIndex {
    /// Loads the index in `dir`, replays its log, and starts building its graph if it has one.
    /// `check` sees the header first, so a mismatched index is refused before vectors load.
    pub fn open(
        name: &str,
        dir: &Path,
        compact_after: usize,
        check: impl FnOnce(&IndexHeader) -> anyhow::Result<()>,
    ) -> anyhow::Result<Arc<Self>> {
        let (_, header) = store::read_header(dir)?;
        check(&header)?;
        let (gen, header, mut store) = store::load(dir)?;
        let (wal, records) = Wal::open(dir, gen)?;
        let replayed = records.len();
        for record in records {
            apply(&mut store, record);
        }
        tracing::info!(
            index = name, dir = %dir.display(), items = store.len(), generation = gen,
            replayed, search = ?header.search, "index loaded"
        );
        let index = Arc::new(Self {
            name: name.to_string(),
            header,
            dir: dir.to_path_buf(),
            compact_after,
            inner: RwLock::new(Inner { store, graph: None }),
            log: Mutex::new(Log { gen, wal }),
            compacting: AtomicBool::new(false),
        });
        index.items_changed();
        metrics::index_writable(name, true);
        index.start_graph_build();
        Ok(index)
    }

    /// Builds the HNSW graph of the current base on a background thread.
    fn start_graph_build(self: &Arc<Self>) {
        if self.header.search != Search::Hnsw {
            return;
        }
        let base = Arc::clone(self.read().store.base());
        let dim = self.header.dimensions;
        let index = Arc::clone(self);
        std::thread::spawn(move || {
            let started = std::time::Instant::now();
            let graph = Arc::new(HnswIndex::build(Arc::clone(&base), dim));
            let mut inner = index.inner.write().expect("index lock");
            // A compaction may have replaced the base meanwhile; its own build will finish.
            if Arc::ptr_eq(inner.store.base(), &base) {
                inner.graph = Some(graph);
                tracing::info!(index = %index.name, rows = base.len() / dim,
                    seconds = started.elapsed().as_secs_f64(), "HNSW graph ready");
            }
        });
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().expect("index lock")
    }

    pub fn len(&self) -> usize {
        self.read().store.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the approximate graph is built (always false for exact indexes).
    pub fn graph_ready(&self) -> bool {
        self.read().graph.is_some()
    }

    /// The stored vector and metadata of `id`.
    pub fn item(&self, id: &str) -> Option<(Vec<f32>, Arc<Metadata>)> {
        let inner = self.read();
        let row = inner.store.row_of(id)?;
        Some((
            inner.store.vector(row).to_vec(),
            Arc::clone(inner.store.metadata(row)),
        ))
    }

    /// Bytes held per live item, approximately (the graph not included).
    pub fn bytes_per_item(&self) -> f64 {
        let inner = self.read();
        inner.store.approx_bytes() as f64 / inner.store.len().max(1) as f64
    }

    /// The `k` best items for `spec`. CPU-bound: call from a blocking thread.
    pub fn search(&self, spec: &SearchSpec<'_>) -> Vec<Found> {
        let inner = self.read();
        let store = &inner.store;
        let exclude: HashSet<u32> = spec
            .exclude
            .iter()
            .filter_map(|id| store.row_of(id))
            .collect();
        let keep = |row: u32| {
            store.is_alive(row)
                && !exclude.contains(&row)
                && spec.filter.matches(store.metadata(row))
        };
        let base_rows = store.base_rows() as u32;
        let tail = exact::top_k(store.tail(), base_rows, spec.vector, spec.k, &keep);
        let approx = match &inner.graph {
            Some(graph) if !spec.exact => {
                let ef = spec.ef_search.unwrap_or(hnsw::EF_SEARCH);
                let hits = graph.search_ef(spec.vector, spec.k, ef, &keep);
                // A selective filter can leave the graph's candidates short: fall back to exact.
                (hits.len() >= spec.k.min(store.len())).then_some(hits)
            }
            _ => None,
        };
        let base =
            approx.unwrap_or_else(|| exact::top_k(store.base(), 0, spec.vector, spec.k, &keep));
        exact::merge([base, tail], spec.k)
            .into_iter()
            .map(|Hit { row, score }| Found {
                id: Arc::clone(store.id(row)),
                score,
                metadata: Arc::clone(store.metadata(row)),
            })
            .collect()
    }

    /// Logs and applies one write; returns whether the id existed before. Blocking (fsync).
    /// A write the log could not make durable is not applied: the index stays as it was.
    pub fn write(self: &Arc<Self>, record: WalRecord) -> Result<bool, IndexError> {
        let mut log = self.log.lock().expect("log lock");
        if let Err(err) = log.wal.append(&record) {
            drop(log);
            tracing::error!(index = %self.name, error = %err, "item write refused: not durable");
            metrics::index_write_failed(&self.name, err.read_only);
            return Err(IndexError::StorageUnavailable);
        }
        metrics::index_writable(&self.name, true);
        let existed = apply(&mut self.inner.write().expect("index lock").store, record);
        let due = log.wal.records() >= self.compact_after;
        drop(log);
        self.items_changed();
        if due && !self.compacting.swap(true, Ordering::AcqRel) {
            let index = Arc::clone(self);
            std::thread::spawn(move || {
                if let Err(err) = index.compact() {
                    tracing::error!(index = %index.name, error = %format!("{err:#}"), "compaction failed");
                }
                index.compacting.store(false, Ordering::Release);
            });
        }
        Ok(existed)
    }

    /// Folds the log into a new generation and starts a fresh log. Blocking.
    pub fn compact(self: &Arc<Self>) -> anyhow::Result<u64> {
        let mut log = self.log.lock().expect("log lock");
        if log.wal.records() == 0 {
            return Ok(log.gen);
        }
        let started = std::time::Instant::now();
        let compacted = self.read().store.compacted();
        let gen = store::publish(&self.dir, &self.header, &compacted)
            .with_context(|| format!("compacting index {}", self.name))?;
        // The new generation holds every write: from here on nothing may fail, or writes would
        // go to the old generation's log, which `publish` removed.
        let wal = Wal::open(&self.dir, gen).map_or_else(
            |err| {
                tracing::error!(index = %self.name, error = %format!("{err:#}"),
                    "could not create the new generation's log; the next write retries");
                Wal::pending(&self.dir, gen)
            },
            |(wal, _)| wal,
        );
        let folded = log.wal.records();
        *log = Log { gen, wal };
        *self.inner.write().expect("index lock") = Inner {
            store: compacted,
            graph: None,
        };
        drop(log);
        tracing::info!(index = %self.name, generation = gen, folded,
            seconds = started.elapsed().as_secs_f64(), "index compacted");
        self.start_graph_build();
        Ok(gen)
    }

    /// Whether writes are accepted (false while a failed log append could not be undone).
    pub fn writable(&self) -> bool {
        self.log.lock().expect("log lock").wal.writable()
    }

    fn items_changed(&self) {
        metrics::index_items(&self.name, self.len());
    }
}

/// Applies a logged write to the store; returns whether the id existed.
fn apply(store: &mut Store, record: WalRecord) -> bool {
    match record {
        WalRecord::Upsert {
            id,
            metadata,
            vector,
        } => store.upsert(&id, &vector, metadata),
        WalRecord::Delete { id } => store.remove(&id),
    }
}

/// The indexes a server loaded, by name.
#[derive(Default)]
pub struct IndexSet {
    indexes: RwLock<HashMap<String, Arc<LiveIndex>>>,
}

impl IndexSet {
    pub fn insert(&self, index: Arc<LiveIndex>) {
        let mut indexes = self.indexes.write().expect("index set lock");
        indexes.insert(index.name.clone(), index);
    }

    /// The index called `name`, or the only one when `name` is `None`.
    pub fn get(&self, name: Option<&str>) -> Result<Arc<LiveIndex>, IndexError> {
        let indexes = self.indexes.read().expect("index set lock");
        match name {
            Some(name) => indexes
                .get(name)
                .cloned()
                .ok_or_else(|| IndexError::UnknownIndex(format!("{name:?}"))),
            None if indexes.len() == 1 => Ok(Arc::clone(indexes.values().next().expect("one"))),
            None if indexes.is_empty() => Err(IndexError::UnknownIndex(
                "(none loaded: start the server with --index)".into(),
            )),
            None => Err(IndexError::Ambiguous(format!(
                "several indexes are loaded; name one with `index`: {}",
                self.names().join(", ")
            ))),
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::FORMAT_VERSION;

    fn header(search: Search) -> IndexHeader {
        IndexHeader {
            format: FORMAT_VERSION,
            model: "m".into(),
            model_version: "v".into(),
            model_sha256: "ab".into(),
            dimensions: 2,
            count: 0,
            search,
            created_unix: 0,
        }
    }

    fn meta(section: &str) -> Metadata {
        let mut m = Metadata::new();
        m.insert("section".into(), section.into());
        m
    }

    fn upsert(id: &str, v: [f32; 2], section: &str) -> WalRecord {
        WalRecord::Upsert {
            id: id.into(),
            metadata: meta(section),
            vector: v.to_vec(),
        }
    }

    fn ids(index: &LiveIndex, q: [f32; 2], k: usize, filter: &Filter) -> Vec<String> {
        let spec = SearchSpec {
            vector: &q,
            k,
            filter,
            exclude: &HashSet::new(),
            exact: false,
            ef_search: None,
        };
        index
            .search(&spec)
            .iter()
            .map(|f| f.id.to_string())
            .collect()
    }

    #[test]
    fn writes_survive_reopen_and_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let base = Store::from_parts(
            2,
            vec![1.0, 0.0, 0.0, 1.0],
            vec![("x".into(), meta("a")), ("y".into(), meta("b"))],
        )
        .unwrap();
        store::publish(dir.path(), &header(Search::Exact), &base).unwrap();
        let index = LiveIndex::open("t", dir.path(), 1000, |_| Ok(())).unwrap();
        index.write(upsert("z", [0.6, 0.8], "a")).unwrap();
        index.write(WalRecord::Delete { id: "y".into() }).unwrap();
        index.write(upsert("x", [-1.0, 0.0], "b")).unwrap();
        let all = Filter::default();
        assert_eq!(ids(&index, [1.0, 0.0], 5, &all), ["z", "x"]);
        drop(index);

        let index = LiveIndex::open("t", dir.path(), 1000, |_| Ok(())).unwrap();
        assert_eq!(ids(&index, [1.0, 0.0], 5, &all), ["z", "x"]);
        let only_a = Filter(vec![("section".into(), vec!["a".into()])]);
        assert_eq!(ids(&index, [1.0, 0.0], 5, &only_a), ["z"]);
        index.compact().unwrap();
        assert_eq!(store::current_generation(dir.path()).unwrap(), Some(2));
        assert!(!Wal::path_for(dir.path(), 1).exists());
        drop(index);

        let index = LiveIndex::open("t", dir.path(), 1000, |_| Ok(())).unwrap();
        assert_eq!(ids(&index, [1.0, 0.0], 5, &all), ["z", "x"]);
        assert_eq!(index.header.count, 2);
    }

    #[test]
    fn a_refusing_check_stops_the_load() {
        let dir = tempfile::tempdir().unwrap();
        let empty = Store::from_parts(2, vec![], vec![]).unwrap();
        store::publish(dir.path(), &header(Search::Exact), &empty).unwrap();
        let err = LiveIndex::open("t", dir.path(), 10, |_| anyhow::bail!("other model"));
        assert!(err.is_err());
        assert!(LiveIndex::open("t", Path::new("/nonexistent"), 10, |_| Ok(())).is_err());
    }
}
