//! The in-memory item store and its on-disk generations.
//!
//! Vectors live in one contiguous row-major `f32` matrix so exact search streams through memory.
//! The rows an index was loaded or compacted with (the *base*) are immutable and shared
//! (`Arc<[f32]>`), which lets the approximate graph point into them without copying; rows added by
//! live writes go to a growable *tail*. A write to an existing id appends a new row and marks
//! the old one dead, so row numbers never move until compaction.
//!
//! On disk an index is a directory holding generations: `gen-N/` has `header.json`,
//! `vectors.f32` (little-endian, row-major) and `items.jsonl` (`{"id","metadata"}` per row), and
//! the file `CURRENT` names the live generation. A generation is written under a temporary name,
//! fsynced, renamed, and only then published by atomically replacing `CURRENT`, so a crash at
//! any point leaves either the old index or the new one, never half of either.

use std::{
    collections::HashMap,
    fs::{self, File},
    io::{BufRead, BufReader, BufWriter, Read, Write},
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{bail, ensure, Context};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::IndexHeader;
pub use crate::journal::sync_dir;

/// Metadata of one item: the catalog line's fields other than `id` and `text`.
pub type Metadata = Map<String, Value>;

/// Items, their vectors and metadata; rows are append-only until compaction.
pub struct Store {
    dim: usize,
    base: Arc<[f32]>,
    tail: Vec<f32>,
    ids: Vec<Arc<str>>,
    metadata: Vec<Arc<Metadata>>,
    alive: Vec<bool>,
    rows: HashMap<Arc<str>, u32>,
}

impl Store {
    /// A store whose base is `vectors` (row-major, `dim` wide) with these ids and metadata.
    pub fn from_parts(
        dim: usize,
        vectors: Vec<f32>,
        items: Vec<(String, Metadata)>,
    ) -> anyhow::Result<Self> {
        ensure!(dim > 0, "dimension must be positive");
        ensure!(
            vectors.len() == items.len() * dim,
            "{} vectors of {dim} floats expected, found {} floats",
            items.len(),
            vectors.len()
        );
        let mut store = Self {
            dim,
            base: Arc::from(vectors),
            tail: Vec::new(),
            ids: Vec::with_capacity(items.len()),
            metadata: Vec::with_capacity(items.len()),
            alive: Vec::with_capacity(items.len()),
            rows: HashMap::with_capacity(items.len()),
        };
        for (row, (id, metadata)) in items.into_iter().enumerate() {
            let id: Arc<str> = id.into();
            if store.rows.insert(Arc::clone(&id), row as u32).is_some() {
                bail!("item id {id:?} appears twice");
            }
            store.ids.push(id);
            store.metadata.push(Arc::new(metadata));
            store.alive.push(true);
        }
        Ok(store)
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Rows in the immutable base (what the approximate graph covers).
    pub fn base_rows(&self) -> usize {
        self.base.len() / self.dim
    }

    pub fn base(&self) -> &Arc<[f32]> {
        &self.base
    }

    pub fn tail(&self) -> &[f32] {
        &self.tail
    }

    /// Live items.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Rows ever allocated, dead ones included.
    pub fn rows_allocated(&self) -> usize {
        self.ids.len()
    }

    pub fn row_of(&self, id: &str) -> Option<u32> {
        self.rows.get(id).copied()
    }

    pub fn is_alive(&self, row: u32) -> bool {
        self.alive[row as usize]
    }

    pub fn id(&self, row: u32) -> &Arc<str> {
        &self.ids[row as usize]
    }

    pub fn metadata(&self, row: u32) -> &Arc<Metadata> {
        &self.metadata[row as usize]
    }

    pub fn vector(&self, row: u32) -> &[f32] {
        let row = row as usize;
        let base = self.base_rows();
        let (data, r) = if row < base {
            (&self.base[..], row)
        } else {
            (&self.tail[..], row - base)
        };
        &data[r * self.dim..(r + 1) * self.dim]
    }

    /// Adds or replaces `id`; returns whether it existed.
    pub fn upsert(&mut self, id: &str, vector: &[f32], metadata: Metadata) -> bool {
        assert_eq!(vector.len(), self.dim, "vector width");
        let existed = self.remove(id);
        let id: Arc<str> = id.into();
        let row = self.ids.len() as u32;
        self.tail.extend_from_slice(vector);
        self.ids.push(Arc::clone(&id));
        self.metadata.push(Arc::new(metadata));
        self.alive.push(true);
        self.rows.insert(id, row);
        existed
    }

    /// Marks `id` dead; returns whether it existed.
    pub fn remove(&mut self, id: &str) -> bool {
        match self.rows.remove(id) {
            Some(row) => {
                self.alive[row as usize] = false;
                true
            }
            None => false,
        }
    }

    /// The live items only, in row order, as a fresh store whose base holds all of them.
    pub fn compacted(&self) -> Self {
        let mut vectors = Vec::with_capacity(self.len() * self.dim);
        let mut items = Vec::with_capacity(self.len());
        for row in 0..self.ids.len() as u32 {
            if self.is_alive(row) {
                vectors.extend_from_slice(self.vector(row));
                items.push((self.id(row).to_string(), (**self.metadata(row)).clone()));
            }
        }
        Self::from_parts(self.dim, vectors, items).expect("a live store has unique ids")
    }

    /// Bytes held per live item (vectors, ids, metadata and lookup), approximately.
    pub fn approx_bytes(&self) -> usize {
        let vectors = (self.base.len() + self.tail.capacity()) * 4;
        let ids: usize = self.ids.iter().map(|id| id.len() + 16 + 16).sum();
        let metadata: usize = self
            .metadata
            .iter()
            .map(|m| 64 + serde_json::to_string(&**m).map_or(0, |s| s.len()))
            .sum();
        let lookup = self.rows.capacity() * 32 + self.alive.len();
        vectors + ids + metadata + lookup
    }
}

#[derive(Serialize, Deserialize)]
struct ItemLine {
    id: String,
    #[serde(default)]
    metadata: Metadata,
}

/// The generation `CURRENT` names in `dir`, if any.
pub fn current_generation(dir: &Path) -> anyhow::Result<Option<u64>> {
    let path = dir.join("CURRENT");
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let gen = text
        .trim()
        .strip_prefix("gen-")
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("{} is corrupt: {text:?}", path.display()))?;
    Ok(Some(gen))
}

fn generation_dir(dir: &Path, gen: u64) -> PathBuf {
    dir.join(format!("gen-{gen}"))
}

/// Reads the header only (cheap: for refusing a mismatched index before loading vectors).
pub fn read_header(dir: &Path) -> anyhow::Result<(u64, IndexHeader)> {
    let gen = current_generation(dir)?.with_context(|| {
        format!(
            "{} is not an index: it has no CURRENT file (was its build interrupted?)",
            dir.display()
        )
    })?;
    let path = generation_dir(dir, gen).join("header.json");
    let header: IndexHeader = serde_json::from_slice(
        &fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
    )
    .with_context(|| format!("parsing {}", path.display()))?;
    ensure!(
        header.format == super::FORMAT_VERSION,
        "{} has index format {}, this inferd reads format {}",
        dir.display(),
        header.format,
        super::FORMAT_VERSION
    );
    Ok((gen, header))
}

/// Loads the current generation of `dir`.
pub fn load(dir: &Path) -> anyhow::Result<(u64, IndexHeader, Store)> {
    let (gen, header) = read_header(dir)?;
    let gdir = generation_dir(dir, gen);
    let mut bytes = Vec::new();
    File::open(gdir.join("vectors.f32"))
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .with_context(|| format!("reading {}/vectors.f32", gdir.display()))?;
    let vectors: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    drop(bytes);
    let file = File::open(gdir.join("items.jsonl"))
        .with_context(|| format!("opening {}/items.jsonl", gdir.display()))?;
    let mut items = Vec::with_capacity(header.count);
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let line: ItemLine =
            serde_json::from_str(&line?).with_context(|| format!("items.jsonl line {}", n + 1))?;
        items.push((line.id, line.metadata));
    }
    ensure!(
        items.len() == header.count,
        "{}: header says {} items, items.jsonl has {}",
        gdir.display(),
        header.count,
        items.len()
    );
    let store = Store::from_parts(header.dimensions, vectors, items)
        .with_context(|| format!("loading {}", gdir.display()))?;
    Ok((gen, header, store))
}

/// Writes `store`'s live items as a new generation of `dir` and publishes it; returns its number.
///
/// Older generations and their write-ahead logs are removed once the new one is published.
pub fn publish(dir: &Path, header: &IndexHeader, store: &Store) -> anyhow::Result<u64> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let previous = current_generation(dir)?;
    let gen = previous.map_or(1, |g| g + 1);
    let tmp = dir.join(format!("gen-{gen}.tmp"));
    if tmp.exists() {
        fs::remove_dir_all(&tmp)?;
    }
    fs::create_dir(&tmp)?;
    // A generation that fails half-way (a full disk) must not go on holding its space.
    let _unfinished = RemoveOnDrop(&tmp);
    let mut header = header.clone();
    header.count = store.len();
    write_synced(&tmp.join("header.json"), |w| {
        serde_json::to_writer_pretty(&mut *w, &header)?;
        Ok(())
    })?;
    write_synced(&tmp.join("vectors.f32"), |w| {
        for row in 0..store.rows_allocated() as u32 {
            if store.is_alive(row) {
                for x in store.vector(row) {
                    w.write_all(&x.to_le_bytes())?;
                }
            }
        }
        Ok(())
    })?;
    write_synced(&tmp.join("items.jsonl"), |w| {
        for row in 0..store.rows_allocated() as u32 {
            if store.is_alive(row) {
                let line = ItemLine {
                    id: store.id(row).to_string(),
                    metadata: (**store.metadata(row)).clone(),
                };
                serde_json::to_writer(&mut *w, &line)?;
                w.write_all(b"\n")?;
            }
        }
        Ok(())
    })?;
    sync_dir(&tmp)?;
    let final_dir = generation_dir(dir, gen);
    if final_dir.exists() {
        fs::remove_dir_all(&final_dir)?;
    }
    fs::rename(&tmp, &final_dir)?;
    sync_dir(dir)?;
    let current_tmp = dir.join("CURRENT.tmp");
    write_synced(&current_tmp, |w| Ok(writeln!(w, "gen-{gen}")?))?;
    fs::rename(&current_tmp, dir.join("CURRENT"))?;
    sync_dir(dir)?;
    remove_older(dir, gen);
    Ok(gen)
}

/// Removes a directory left unfinished (a no-op once it was renamed into place).
struct RemoveOnDrop<'a>(&'a Path);

impl Drop for RemoveOnDrop<'_> {
    fn drop(&mut self) {
        if self.0.exists() {
            let _ = fs::remove_dir_all(self.0);
        }
    }
}

/// Best-effort removal of generations and logs older than `gen` (they are unreachable now).
fn remove_older(dir: &Path, gen: u64) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let older = |prefix: &str, suffix: &str| {
            name.strip_prefix(prefix)
                .and_then(|n| n.strip_suffix(suffix))
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|n| n < gen)
        };
        let path = entry.path();
        let result = if older("gen-", "") || older("gen-", ".tmp") {
            fs::remove_dir_all(&path)
        } else if older("wal-", ".log") {
            fs::remove_file(&path)
        } else {
            continue;
        };
        if let Err(err) = result {
            tracing::warn!(path = %path.display(), %err, "could not remove an old index file");
        }
    }
}

fn write_synced(
    path: &Path,
    body: impl FnOnce(&mut BufWriter<&File>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, &file);
    body(&mut w).with_context(|| format!("writing {}", path.display()))?;
    w.flush()?;
    drop(w);
    file.sync_all()
        .with_context(|| format!("fsync {}", path.display()))
}
