//! Index generations on disk: writing one, publishing it atomically, loading the current one.
//!
//! An index directory holds generations: `gen-N/` has `header.json`, `vectors.f32` (exact
//! vectors, little-endian, row-major), `items.jsonl` (`{"id","metadata"}` per row),
//! `vectors.q8` (the int8 codes, [`super::quant`]) and, for an HNSW index, `graph.bin`
//! ([`super::graph`]); the file `CURRENT` names the live generation. A generation is written
//! under `gen-N.tmp/`, every file fsynced, the directory renamed to `gen-N/` and fsynced, and
//! only then published by atomically replacing `CURRENT`, so a crash at any point leaves either
//! the old index or the new one, never half of either. `vectors.q8` and `graph.bin` are derived
//! from `vectors.f32`: when one is missing or fails its checks it is rebuilt (the codes at load,
//! the graph in the background) and put in place by the same write-fsync-rename.

use std::{
    fs::{self, File},
    io::{BufRead, BufReader, BufWriter, Read, Write},
    path::{Path, PathBuf},
};

use anyhow::{ensure, Context};
use serde::Deserialize;

use crate::journal::sync_dir;

use super::{
    graph::{Graph, Params},
    items::{check_metadata_json, Items},
    quant::{Codes, RangeFit, Scale},
    store::{Base, Exact, Store},
    IndexHeader, Search,
};

const VECTORS: &str = "vectors.f32";
const ITEMS: &str = "items.jsonl";
const CODES: &str = "vectors.q8";
const GRAPH: &str = "graph.bin";
/// Rows read at once when quantizing a vectors file.
const CHUNK_ROWS: usize = 8192;

/// The graph of a loaded generation.
pub enum GraphLoad {
    /// The index is exact: it has no graph.
    Unused,
    /// `graph.bin` mapped and checked.
    Mapped(Graph),
    /// `graph.bin` is missing or failed a check (why): rebuild it.
    Unusable(String),
}

/// A generation read from disk.
pub struct Loaded {
    pub gen: u64,
    pub header: IndexHeader,
    pub store: Store,
    pub graph: GraphLoad,
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

pub fn generation_dir(dir: &Path, gen: u64) -> PathBuf {
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

#[derive(Deserialize)]
struct ItemLine<'a> {
    #[serde(borrow)]
    id: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    metadata: Option<&'a serde_json::value::RawValue>,
}

fn read_items(path: &Path, count: usize) -> anyhow::Result<Items> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut items = Items::default();
    for (n, line) in BufReader::with_capacity(1 << 20, file).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        let item: ItemLine<'_> = serde_json::from_str(&line)
            .with_context(|| format!("{} line {}", path.display(), n + 1))?;
        let metadata = item.metadata.map_or("{}", |m| m.get());
        items.push(&item.id, metadata.as_bytes())?;
    }
    ensure!(
        items.rows() == count,
        "{}: the header says {count} items, the file has {}",
        path.display(),
        items.rows()
    );
    Ok(items)
}

/// Loads the current generation of `dir`; rebuilds its codes first if they are unusable.
pub fn load(dir: &Path) -> anyhow::Result<Loaded> {
    let (gen, header) = read_header(dir)?;
    let gdir = generation_dir(dir, gen);
    let (dim, count) = (header.dimensions, header.count);
    let items = read_items(&gdir.join(ITEMS), count)?;
    let vectors = gdir.join(VECTORS);
    let exact = File::open(&vectors).with_context(|| format!("opening {}", vectors.display()))?;
    let len = exact.metadata()?.len();
    ensure!(
        len == (count * dim * 4) as u64,
        "{} has {len} bytes, {count} vectors of {dim} floats need {}",
        vectors.display(),
        count * dim * 4
    );
    let codes = match Codes::open(&gdir.join(CODES), dim, count) {
        Ok(codes) => codes,
        Err(err) => {
            tracing::warn!(dir = %gdir.display(), reason = %format!("{err:#}"),
                "quantized vectors missing or unusable; rebuilding them from vectors.f32");
            let codes = quantize_file(&vectors, dim, count, Scale::PerDimension)?;
            replace_file(&gdir, CODES, |path| codes.write(path))?;
            Codes::open(&gdir.join(CODES), dim, count)?
        }
    };
    let graph = match header.search {
        Search::Exact => GraphLoad::Unused,
        Search::Hnsw => match Graph::open(&gdir.join(GRAPH), count) {
            Ok(graph) => GraphLoad::Mapped(graph),
            Err(err) => GraphLoad::Unusable(format!("{err:#}")),
        },
    };
    let base = Base {
        codes,
        exact: Exact::File(exact),
    };
    let store = Store::new(dim, base, items);
    Ok(Loaded {
        gen,
        header,
        store,
        graph,
    })
}

/// Writes `graph` as generation `gen`'s `graph.bin` (write, fsync, rename).
pub fn store_graph(dir: &Path, gen: u64, graph: &Graph) -> anyhow::Result<()> {
    replace_file(&generation_dir(dir, gen), GRAPH, |path| graph.write(path))
}

/// Maps generation `gen`'s `graph.bin`.
pub fn open_graph(dir: &Path, gen: u64, rows: usize) -> anyhow::Result<Graph> {
    Graph::open(&generation_dir(dir, gen).join(GRAPH), rows)
}

/// Writes `name` in `dir` under a temporary name with `write`, then renames it into place.
fn replace_file(
    dir: &Path,
    name: &str,
    write: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    write(&tmp)?;
    fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

/// Quantizes a vectors file of `rows` rows: one pass for the ranges, one for the codes.
fn quantize_file(path: &Path, dim: usize, rows: usize, scale: Scale) -> anyhow::Result<Codes> {
    let mut fit = RangeFit::new(dim);
    each_chunk(path, dim, |_, chunk| {
        chunk.chunks_exact(dim).for_each(|r| fit.add(r))
    })?;
    let mut codes = Codes::with_quantizer(fit.finish(scale), rows);
    each_chunk(path, dim, |first, chunk| codes.fill_rows(first, chunk))?;
    Ok(codes)
}

fn each_chunk(path: &Path, dim: usize, mut f: impl FnMut(usize, &[f32])) -> anyhow::Result<()> {
    let mut file = BufReader::with_capacity(
        1 << 20,
        File::open(path).with_context(|| format!("opening {}", path.display()))?,
    );
    let mut buf = vec![0f32; CHUNK_ROWS * dim];
    let mut first = 0;
    loop {
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut buf);
        let mut filled = 0;
        while filled < bytes.len() {
            match file.read(&mut bytes[filled..])? {
                0 => break,
                n => filled += n,
            }
        }
        let rows = filled / (dim * 4);
        if rows == 0 {
            return Ok(());
        }
        let chunk = &mut buf[..rows * dim];
        if cfg!(target_endian = "big") {
            chunk
                .iter_mut()
                .for_each(|x| *x = f32::from_bits(x.to_bits().swap_bytes()));
        }
        f(first, chunk);
        first += rows;
    }
}

/// A generation directory being written: removed when dropped unless it was renamed into place,
/// so one that fails half-way (a full disk) does not go on holding its space.
struct Unfinished(PathBuf);

impl Drop for Unfinished {
    fn drop(&mut self) {
        if self.0.exists() {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

impl std::ops::Deref for Unfinished {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

/// A generation being written under `gen-N.tmp/`.
pub struct Writer {
    dir: PathBuf,
    tmp: Unfinished,
    gen: u64,
    dim: usize,
    vectors: BufWriter<File>,
    items: BufWriter<File>,
    fit: RangeFit,
    count: usize,
}

impl Writer {
    /// Starts generation N+1 of `dir` (the first when `dir` has none).
    pub fn start(dir: &Path, dim: usize) -> anyhow::Result<Self> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let gen = current_generation(dir)?.map_or(1, |g| g + 1);
        let tmp = dir.join(format!("gen-{gen}.tmp"));
        if tmp.exists() {
            fs::remove_dir_all(&tmp)?;
        }
        fs::create_dir(&tmp)?;
        let tmp = Unfinished(tmp);
        let create = |name: &str| -> anyhow::Result<BufWriter<File>> {
            let path = tmp.join(name);
            let file =
                File::create(&path).with_context(|| format!("creating {}", path.display()))?;
            Ok(BufWriter::with_capacity(1 << 20, file))
        };
        Ok(Self {
            vectors: create(VECTORS)?,
            items: create(ITEMS)?,
            dir: dir.to_path_buf(),
            tmp,
            gen,
            dim,
            fit: RangeFit::new(dim),
            count: 0,
        })
    }

    pub fn generation(&self) -> u64 {
        self.gen
    }

    /// Appends one item (`metadata_json` is a JSON object's text).
    pub fn push(&mut self, id: &str, metadata_json: &[u8], vector: &[f32]) -> anyhow::Result<()> {
        ensure!(vector.len() == self.dim, "vector width {}", vector.len());
        debug_assert!(check_metadata_json(metadata_json).is_ok());
        for x in vector {
            self.vectors.write_all(&x.to_le_bytes())?;
        }
        self.items.write_all(b"{\"id\":")?;
        serde_json::to_writer(&mut self.items, id)?;
        self.items.write_all(b",\"metadata\":")?;
        self.items.write_all(metadata_json)?;
        self.items.write_all(b"}\n")?;
        self.fit.add(vector);
        self.count += 1;
        Ok(())
    }

    /// Finishes the files: `header.json` (with the item count), the codes, and the graph when
    /// the index is HNSW; everything fsynced. The generation is not published yet.
    pub fn finish(mut self, header: &IndexHeader, params: Params) -> anyhow::Result<Staged> {
        for (name, w) in [(VECTORS, &mut self.vectors), (ITEMS, &mut self.items)] {
            w.flush()?;
            w.get_ref()
                .sync_all()
                .with_context(|| format!("fsync {name}"))?;
        }
        let mut header = header.clone();
        header.count = self.count;
        let path = self.tmp.join("header.json");
        let mut json = serde_json::to_vec_pretty(&header)?;
        json.push(b'\n');
        write_synced(&path, &json)?;
        let mut codes = Codes::with_quantizer(self.fit.finish(Scale::PerDimension), self.count);
        each_chunk(&self.tmp.join(VECTORS), self.dim, |first, chunk| {
            codes.fill_rows(first, chunk)
        })?;
        codes.write(&self.tmp.join(CODES))?;
        if header.search == Search::Hnsw {
            let started = std::time::Instant::now();
            let graph = Graph::build(&codes, params);
            tracing::info!(
                rows = self.count,
                seconds = started.elapsed().as_secs_f64(),
                "HNSW graph built"
            );
            graph.write(&self.tmp.join(GRAPH))?;
        }
        sync_dir(&self.tmp)?;
        Ok(Staged {
            dir: self.dir,
            tmp: self.tmp,
            gen: self.gen,
        })
    }
}

/// A complete generation under `gen-N.tmp/`, not yet published.
pub struct Staged {
    dir: PathBuf,
    tmp: Unfinished,
    gen: u64,
}

impl Staged {
    pub fn generation(&self) -> u64 {
        self.gen
    }

    /// Renames the generation into place, runs `before_switch` (e.g. to write its log), then
    /// points `CURRENT` at it and removes older generations and logs. Returns its number.
    pub fn publish(
        self,
        before_switch: impl FnOnce(u64) -> anyhow::Result<()>,
    ) -> anyhow::Result<u64> {
        let final_dir = generation_dir(&self.dir, self.gen);
        if final_dir.exists() {
            fs::remove_dir_all(&final_dir)?;
        }
        fs::rename(&*self.tmp, &final_dir)?;
        sync_dir(&self.dir)?;
        before_switch(self.gen)?;
        let current_tmp = self.dir.join("CURRENT.tmp");
        write_synced(&current_tmp, format!("gen-{}\n", self.gen).as_bytes())?;
        fs::rename(&current_tmp, self.dir.join("CURRENT"))?;
        sync_dir(&self.dir)?;
        remove_other(&self.dir, self.gen);
        Ok(self.gen)
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)?;
    file.sync_all()
        .with_context(|| format!("fsync {}", path.display()))
}

/// Best-effort removal of every generation and log other than `gen`'s: older ones are
/// unreachable, newer ones are leftovers of a compaction a crash interrupted before it
/// published (their log must not be replayed by a later generation of the same number).
pub fn remove_other(dir: &Path, gen: u64) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let other = |prefix: &str, suffix: &str| {
            name.strip_prefix(prefix)
                .and_then(|n| n.strip_suffix(suffix))
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|n| n != gen)
        };
        let path = entry.path();
        let result = if other("gen-", "") || other("gen-", ".tmp") {
            fs::remove_dir_all(&path)
        } else if other("wal-", ".log") {
            fs::remove_file(&path)
        } else {
            continue;
        };
        if let Err(err) = result {
            tracing::warn!(path = %path.display(), %err, "could not remove an old index file");
        }
    }
}

/// Writes `store`'s live items as a new generation of `dir` and publishes it.
pub fn publish_store(dir: &Path, header: &IndexHeader, store: &Store) -> anyhow::Result<u64> {
    let mut writer = Writer::start(dir, store.dim())?;
    for row in 0..store.rows_allocated() as u32 {
        if store.is_alive(row) {
            let items = store.items();
            writer.push(items.id(row), items.metadata_json(row), &store.vector(row)?)?;
        }
    }
    writer
        .finish(header, Params::default())?
        .publish(|_| Ok(()))
}

#[cfg(test)]
mod tests;
