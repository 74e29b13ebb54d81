//! One served index: similarity search, live writes, write-ahead-log replay and compaction.
//!
//! Readers share an `RwLock` over the store and search under its read lock; writers are
//! serialised by the log's mutex, append and fsync the record *before* applying it, and hold
//! the write lock only for the in-memory update.
//!
//! A search scores the int8 codes — through the HNSW graph, or by scanning every row when the
//! index is exact, the graph is not ready, a request says `exact`, or a filter leaves the graph
//! short of `k` — keeps the best [`rescored`] candidates, and rescores them against the exact
//! f32 vectors; rows written live since the generation are scored exactly and merged.
//!
//! Compaction (after `compact_after` logged writes, or on request) writes the live rows as a
//! new generation *while holding the log* (writes wait, searches go on), then releases it to
//! quantize and build the graph; writes meanwhile go to the current log as usual and are also
//! kept aside. It then takes the log again, writes those writes as the new generation's log,
//! publishes the generation and swaps it in. A crash anywhere leaves the old generation and
//! its complete log, or the new one and its log (see [`super::generation`]).

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, RwLock,
    },
    time::{Duration, Instant},
};

use anyhow::Context;

pub use super::filter::Filter;
use super::{
    exact::{self, Hit},
    generation::{self, GraphLoad, Writer},
    graph::{Graph, Params, EF_SEARCH},
    store::{Metadata, Store},
    wal::{Wal, WalRecord},
    IndexHeader,
};
use super::{metrics, IndexError};

/// Candidates rescored with the exact vectors for a query wanting `k`: enough that int8
/// rounding cannot push a true top-`k` item out (measured in `benches/index.rs`).
pub fn rescored(k: usize) -> usize {
    (4 * k).max(40)
}

/// One similarity query against an index.
pub struct SearchSpec<'a> {
    /// Unit-length query vector.
    pub vector: &'a [f32],
    pub k: usize,
    pub filter: &'a Filter,
    /// Ids never returned.
    pub exclude: &'a HashSet<String>,
    /// Skip the approximate graph: score every row.
    pub exact: bool,
    /// Candidates the graph search keeps (default [`EF_SEARCH`]); ignored by exact search.
    pub ef_search: Option<usize>,
}

/// One result.
#[derive(Debug, Clone)]
pub struct Found {
    pub id: String,
    pub score: f32,
    pub metadata: Metadata,
}

/// Where an index's graph stands.
enum GraphState {
    /// The index is exact.
    Unused,
    /// Being built in the background (queries scan the codes meanwhile).
    Building,
    Ready(Arc<Graph>, &'static str),
}

struct Inner {
    store: Store,
    /// Graph over `store`'s base.
    graph: GraphState,
}

struct Log {
    gen: u64,
    wal: Wal,
    /// Writes logged while a compaction builds the next generation (they go into its log).
    capture: Option<Vec<WalRecord>>,
}

/// How an index compacts.
#[derive(Debug, Clone, Default)]
pub struct Tuning {
    /// Logged writes after which the log is folded into a new generation.
    pub compact_after: usize,
    /// Fault injection: sleep this long in the middle of each compaction.
    pub debug_compact_delay: Option<Duration>,
}

pub struct LiveIndex {
    pub name: String,
    pub header: IndexHeader,
    dir: PathBuf,
    tuning: Tuning,
    inner: RwLock<Inner>,
    log: Mutex<Log>,
    /// An automatic compaction is queued or running (so writes start at most one).
    compacting: AtomicBool,
    /// One compaction at a time (automatic or requested).
    compaction: Mutex<()>,
}

impl LiveIndex {
    /// Loads the index in `dir`, replays its log, and maps its graph (or starts rebuilding it
    /// when it is missing or damaged). `check` sees the header first, so a mismatched index is
    /// refused before vectors load.
    pub fn open(
        name: &str,
        dir: &Path,
        tuning: Tuning,
        check: impl FnOnce(&IndexHeader) -> anyhow::Result<()>,
    ) -> anyhow::Result<Arc<Self>> {
        let started = Instant::now();
        let (_, header) = generation::read_header(dir)?;
        check(&header)?;
        let loaded = generation::load(dir)?;
        let gen = loaded.gen;
        generation::remove_other(dir, gen);
        let mut store = loaded.store;
        let (wal, records) = Wal::open(dir, gen)?;
        let replayed = records.len();
        for record in records {
            apply(&mut store, record);
        }
        let graph = graph_state(name, loaded.graph);
        tracing::info!(
            index = name, dir = %dir.display(), items = store.len(), generation = gen,
            replayed, search = ?header.search, seconds = started.elapsed().as_secs_f64(),
            "index loaded"
        );
        let rebuild = matches!(graph, GraphState::Building);
        let index = Arc::new(Self {
            name: name.to_string(),
            header: loaded.header,
            dir: dir.to_path_buf(),
            tuning,
            inner: RwLock::new(Inner { store, graph }),
            log: Mutex::new(Log {
                gen,
                wal,
                capture: None,
            }),
            compacting: AtomicBool::new(false),
            compaction: Mutex::new(()),
        });
        index.items_changed();
        metrics::index_writable(name, true);
        if rebuild {
            index.start_graph_build(gen);
        }
        Ok(index)
    }

    /// Rebuilds the graph of generation `gen`'s base on a background thread, stores it in the
    /// generation, and installs it unless a compaction replaced the base meanwhile.
    fn start_graph_build(self: &Arc<Self>, gen: u64) {
        let base = Arc::clone(self.read().store.base());
        let index = Arc::clone(self);
        std::thread::spawn(move || {
            let started = Instant::now();
            let built = Graph::build(&base.codes, Params::default());
            let rows = built.rows();
            // Serve the mapped copy once it is on disk (file pages instead of heap).
            let graph = match generation::store_graph(&index.dir, gen, &built)
                .and_then(|()| generation::open_graph(&index.dir, gen, rows))
            {
                Ok(mapped) => mapped,
                Err(err) => {
                    tracing::warn!(index = %index.name, error = %format!("{err:#}"),
                        "could not store the rebuilt graph; serving it from memory");
                    built
                }
            };
            let mut inner = index.inner.write().expect("index lock");
            if Arc::ptr_eq(inner.store.base(), &base) {
                inner.graph = GraphState::Ready(Arc::new(graph), "built");
                tracing::info!(index = %index.name, rows, graph = "built",
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

    /// Whether the approximate graph is ready (always false for exact indexes).
    pub fn graph_ready(&self) -> bool {
        matches!(self.read().graph, GraphState::Ready(..))
    }

    /// `"mapped"` (read from the generation at load), `"built"` (rebuilt since), `"building"`,
    /// or `None` for an exact index.
    pub fn graph_source(&self) -> Option<&'static str> {
        match self.read().graph {
            GraphState::Unused => None,
            GraphState::Building => Some("building"),
            GraphState::Ready(_, source) => Some(source),
        }
    }

    /// The stored vector and metadata of `id`.
    pub fn item(&self, id: &str) -> anyhow::Result<Option<(Vec<f32>, Metadata)>> {
        let inner = self.read();
        let Some(row) = inner.store.row_of(id) else {
            return Ok(None);
        };
        Ok(Some((inner.store.vector(row)?, inner.store.metadata(row))))
    }

    /// Bytes held in memory per live item, approximately (codes, items, tail and graph).
    pub fn bytes_per_item(&self) -> f64 {
        let inner = self.read();
        let graph = match &inner.graph {
            GraphState::Ready(graph, _) => graph.bytes(),
            _ => 0,
        };
        (inner.store.approx_bytes() + graph) as f64 / inner.store.len().max(1) as f64
    }

    /// The `k` best items for `spec`. CPU-bound: call from a blocking thread.
    pub fn search(&self, spec: &SearchSpec<'_>) -> anyhow::Result<Vec<Found>> {
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
                && spec.filter.matches_json(store.items().metadata_json(row))
        };
        let base_rows = store.base_rows() as u32;
        let tail = exact::top_k(store.tail(), base_rows, spec.vector, spec.k, &keep);
        let base = if base_rows == 0 || spec.k == 0 {
            Vec::new()
        } else {
            let codes = &store.base().codes;
            let query = codes.quantizer().prepare(spec.vector);
            let wanted = rescored(spec.k);
            let from_graph = match &inner.graph {
                GraphState::Ready(graph, _) if !spec.exact => {
                    let ef = spec.ef_search.unwrap_or(EF_SEARCH).max(spec.k);
                    let rows: Vec<u32> = graph
                        .search(codes, &query, ef)
                        .into_iter()
                        .map(|s| s.1)
                        .filter(|&row| keep(row))
                        .take(wanted)
                        .collect();
                    // A selective filter can leave the graph's candidates short: scan instead.
                    (rows.len() >= spec.k.min(store.len())).then_some(rows)
                }
                _ => None,
            };
            let rows = from_graph.unwrap_or_else(|| store.scan_codes(&query, wanted, &keep));
            store.rescore(spec.vector, &rows)?
        };
        Ok(exact::merge([base, tail], spec.k)
            .into_iter()
            .map(|Hit { row, score }| Found {
                id: store.id(row).to_string(),
                score,
                metadata: store.metadata(row),
            })
            .collect())
    }

    /// Logs and applies one write; returns whether the id existed before. Blocking (fsync).
    /// A write the log could not make durable is not applied: the index stays as it was.
    pub fn write(self: &Arc<Self>, record: WalRecord) -> Result<bool, IndexError> {
        let mut log = self.log.lock().expect("log lock");
        if let WalRecord::Delete { id } = &record {
            if self.read().store.row_of(id).is_none() {
                return Ok(false); // nothing to delete: nothing to log
            }
        }
        if let Err(err) = log.wal.append(&record) {
            drop(log);
            tracing::error!(index = %self.name, error = %err, "item write refused: not durable");
            metrics::index_write_failed(&self.name, err.read_only);
            return Err(IndexError::StorageUnavailable);
        }
        metrics::index_writable(&self.name, true);
        if let Some(capture) = &mut log.capture {
            capture.push(record.clone());
        }
        let existed = apply(&mut self.inner.write().expect("index lock").store, record);
        let due = log.wal.records() >= self.tuning.compact_after;
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

    /// Folds the log into a new generation (codes and graph included) and starts its log.
    /// Blocking; see the module doc for what waits on what.
    pub fn compact(self: &Arc<Self>) -> anyhow::Result<u64> {
        let _one = self.compaction.lock().expect("compaction lock");
        let started = Instant::now();
        let mut log = self.log.lock().expect("log lock");
        if log.wal.records() == 0 {
            return Ok(log.gen);
        }
        let folded = log.wal.records();
        let writer = self.write_live_rows()?;
        log.capture = Some(Vec::new());
        drop(log);
        tracing::info!(index = %self.name, generation = writer.generation(), folded,
            "compaction started");
        if let Some(delay) = self.tuning.debug_compact_delay {
            std::thread::sleep(delay);
        }
        let staged = writer.finish(&self.header, Params::default());
        let mut log = self.log.lock().expect("log lock");
        let captured = log.capture.take().unwrap_or_default();
        let staged = staged.with_context(|| format!("compacting index {}", self.name))?;
        let mut new_wal = None;
        let gen = staged.publish(|gen| {
            let path = Wal::path_for(&self.dir, gen);
            if path.exists() {
                std::fs::remove_file(&path)?; // a leftover of an interrupted compaction
            }
            let (mut wal, _) = Wal::open(&self.dir, gen)?;
            for record in &captured {
                wal.append(record)?;
            }
            new_wal = Some(wal);
            Ok(())
        })?;
        *log = Log {
            gen,
            wal: new_wal.expect("published with its log"),
            capture: None,
        };
        let loaded = generation::load(&self.dir)
            .with_context(|| format!("loading compacted index {}", self.name))?;
        let mut store = loaded.store;
        let carried = captured.len();
        for record in captured {
            apply(&mut store, record);
        }
        *self.inner.write().expect("index lock") = Inner {
            store,
            graph: graph_state(&self.name, loaded.graph),
        };
        drop(log);
        tracing::info!(index = %self.name, generation = gen, folded, carried,
            seconds = started.elapsed().as_secs_f64(), "index compacted");
        Ok(gen)
    }

    /// Whether writes are accepted (false while a failed log append could not be undone).
    pub fn writable(&self) -> bool {
        self.log.lock().expect("log lock").wal.writable()
    }

    /// Writes the live rows as the next generation's vectors and items (not yet finished).
    fn write_live_rows(&self) -> anyhow::Result<Writer> {
        let inner = self.read();
        let store = &inner.store;
        let mut writer = Writer::start(&self.dir, store.dim())?;
        for row in 0..store.rows_allocated() as u32 {
            if store.is_alive(row) {
                let items = store.items();
                writer.push(items.id(row), items.metadata_json(row), &store.vector(row)?)?;
            }
        }
        Ok(writer)
    }

    fn items_changed(&self) {
        metrics::index_items(&self.name, self.len());
    }
}

/// The state a loaded graph starts in (logged: tests and operators read these lines).
fn graph_state(name: &str, graph: GraphLoad) -> GraphState {
    match graph {
        GraphLoad::Unused => GraphState::Unused,
        GraphLoad::Mapped(graph) => {
            tracing::info!(
                index = name,
                rows = graph.rows(),
                graph = "mapped",
                "HNSW graph ready"
            );
            GraphState::Ready(Arc::new(graph), "mapped")
        }
        GraphLoad::Unusable(why) => {
            tracing::warn!(index = name, reason = %why,
                "HNSW graph missing or damaged: rebuilding it in the background (queries scan meanwhile)");
            GraphState::Building
        }
    }
}

/// Applies a logged write to the store; returns whether the id existed.
fn apply(store: &mut Store, record: WalRecord) -> bool {
    match record {
        WalRecord::Upsert {
            id,
            metadata,
            vector,
        } => store.upsert(&id, &vector, &metadata),
        WalRecord::Delete { id } => store.remove(&id),
    }
}

#[cfg(test)]
mod tests;
