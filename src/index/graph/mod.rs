//! Approximate search: an HNSW graph over the int8 codes of an index's base rows.
//!
//! The graph stores only adjacency (`u32` row numbers); distances come from the one quantized
//! copy of the vectors ([`super::quant::Codes`]), so an item costs its codes plus about
//! `4 × (2M + 1)` bytes of layer-0 links. Layers are drawn per row from a fixed seed
//! (`P(level ≥ l) = M^-l`); insertion runs in parallel over the rayon pool with one lock per
//! node, neighbours chosen by the HNSW heuristic (a candidate is kept only if it is nearer the
//! new node than to every neighbour already kept). Readers never lock: links are atomics while
//! building and plain words once built.
//!
//! On disk (`graph.bin`, see [`super::mapped`]) the body is: rows, M, layer-0 capacity, entry
//! point, top level, upper-layer length; each row's level (bytes); each row's offset into the
//! upper layers; layer 0 as `rows × (1 + 2M)` words (a count, then the links); the upper
//! layers. [`Graph::open`] maps it and checks every link before the graph is used.

use std::{
    cmp::{Ordering, Reverse},
    collections::BinaryHeap,
    ops::Range,
    path::Path,
    sync::Mutex,
};

use anyhow::ensure;

use super::{
    mapped::{self, Words},
    quant::{Codes, Prepared},
};

mod build;

const MAGIC: &[u8; 8] = b"INFDHNSW";
const FORMAT: u32 = 1;
const HEAD_WORDS: usize = 8;
/// Default candidates a query keeps (its `ef`).
pub const EF_SEARCH: usize = 256;
/// Largest `ef` a request may ask for.
pub const EF_SEARCH_MAX: usize = 2048;
/// Links per node on the upper layers (twice this on layer 0).
pub const M: usize = 16;
/// Candidates kept while inserting a node.
pub const EF_CONSTRUCTION: usize = 100;
const MAX_LEVEL: u8 = 15;
const LEVEL_SEED: u64 = 0x005e_ed1e_7e15;

/// Graph parameters.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    pub m: usize,
    pub ef_construction: usize,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            m: M,
            ef_construction: EF_CONSTRUCTION,
        }
    }
}

/// A scored row, ordered by score (ties by row, so orders are total).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored(pub f32, pub u32);

impl Eq for Scored {}
impl Ord for Scored {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0).then(other.1.cmp(&self.1))
    }
}
impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Where links are read from: the builder's atomics or a built graph's words.
trait Links: Sync {
    fn neighbours(&self, node: u32, level: u8, out: &mut Vec<u32>);
}

/// The shape shared by building and built graphs: level per row and word ranges.
#[derive(Debug, Clone)]
struct Layout {
    rows: usize,
    m: usize,
    levels: Vec<u8>,
    upper_off: Vec<u32>,
    upper_len: usize,
}

impl Layout {
    fn new(rows: usize, m: usize) -> Self {
        let ml = 1.0 / (m as f64).ln();
        let levels: Vec<u8> = (0..rows)
            .map(|r| {
                let u = (splitmix(LEVEL_SEED ^ r as u64) >> 11) as f64 / (1u64 << 53) as f64;
                ((-(1.0 - u).ln() * ml) as u64).min(MAX_LEVEL as u64) as u8
            })
            .collect();
        let mut upper_off = Vec::with_capacity(rows);
        let mut upper_len = 0usize;
        for &l in &levels {
            upper_off.push(upper_len as u32);
            upper_len += l as usize * (m + 1);
        }
        Self {
            rows,
            m,
            levels,
            upper_off,
            upper_len,
        }
    }

    fn m0(&self) -> usize {
        2 * self.m
    }

    /// Word range of `node`'s list at `level`, within layer 0 or the upper layers.
    fn slot(&self, node: u32, level: u8) -> Range<usize> {
        if level == 0 {
            let w = self.m0() + 1;
            node as usize * w..(node as usize + 1) * w
        } else {
            let at = self.upper_off[node as usize] as usize + (level as usize - 1) * (self.m + 1);
            at..at + self.m + 1
        }
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Rows already seen by one search: an epoch byte per row, reused across searches.
struct Visited {
    marks: Vec<u8>,
    epoch: u8,
}

impl Visited {
    fn start(&mut self) {
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.marks.fill(0);
            self.epoch = 1;
        }
    }

    fn insert(&mut self, row: u32) -> bool {
        let mark = &mut self.marks[row as usize];
        let fresh = *mark != self.epoch;
        *mark = self.epoch;
        fresh
    }
}

/// Visited lists for concurrent searches: one byte per row per search in flight.
struct VisitedPool {
    rows: usize,
    free: Mutex<Vec<Visited>>,
}

impl VisitedPool {
    fn with<T>(&self, f: impl FnOnce(&mut Visited) -> T) -> T {
        let taken = self.free.lock().expect("visited pool").pop();
        let mut visited = taken.unwrap_or_else(|| Visited {
            marks: vec![0; self.rows],
            epoch: 0,
        });
        visited.start();
        let out = f(&mut visited);
        self.free.lock().expect("visited pool").push(visited);
        out
    }
}

/// The best `ef` rows reachable from `entry` on `level`, best first.
fn search_layer(
    links: &dyn Links,
    score: &dyn Fn(u32) -> f32,
    entry: &[Scored],
    ef: usize,
    level: u8,
    visited: &mut Visited,
) -> Vec<Scored> {
    let mut candidates: BinaryHeap<Scored> = BinaryHeap::new();
    let mut results: BinaryHeap<Reverse<Scored>> = BinaryHeap::new();
    for &e in entry {
        if visited.insert(e.1) {
            candidates.push(e);
            results.push(Reverse(e));
        }
    }
    while results.len() > ef {
        results.pop();
    }
    let mut next = Vec::with_capacity(64);
    while let Some(c) = candidates.pop() {
        let worst = results.peek().map_or(f32::NEG_INFINITY, |w| w.0 .0);
        if results.len() >= ef && c.0 < worst {
            break;
        }
        links.neighbours(c.1, level, &mut next);
        for &nb in &next {
            if !visited.insert(nb) {
                continue;
            }
            let s = score(nb);
            let worst = results.peek().map_or(f32::NEG_INFINITY, |w| w.0 .0);
            if results.len() < ef || s > worst {
                candidates.push(Scored(s, nb));
                results.push(Reverse(Scored(s, nb)));
                if results.len() > ef {
                    results.pop();
                }
            }
        }
    }
    let mut out: Vec<Scored> = results.into_iter().map(|r| r.0).collect();
    out.sort_by(|a, b| b.cmp(a));
    out
}

/// Greedy descent through the layers above `stop`, then the best `ef` on `stop`.
fn descend(
    links: &dyn Links,
    score: &dyn Fn(u32) -> f32,
    entry: u32,
    top: u8,
    stop: u8,
    visited: &mut Visited,
) -> Vec<Scored> {
    let mut eps = vec![Scored(score(entry), entry)];
    for level in (stop + 1..=top).rev() {
        visited.start();
        eps = search_layer(links, score, &eps, 1, level, visited);
    }
    eps
}

/// An HNSW graph over rows `0..rows` of a [`Codes`] matrix.
pub struct Graph {
    layout: Layout,
    words: Words,
    layer0: Range<usize>,
    upper: Range<usize>,
    entry: u32,
    top: u8,
    visited: VisitedPool,
}

impl Links for Graph {
    fn neighbours(&self, node: u32, level: u8, out: &mut Vec<u32>) {
        let words = self.words.as_slice();
        let range = self.layout.slot(node, level);
        let base = if level == 0 {
            self.layer0.start
        } else {
            self.upper.start
        };
        let list = &words[base + range.start..base + range.end];
        out.clear();
        out.extend_from_slice(&list[1..1 + list[0] as usize]);
    }
}

impl Graph {
    /// Builds the graph over every row of `codes` (parallel over the rayon pool; insertion
    /// order varies between runs, so graphs can differ slightly).
    pub fn build(codes: &Codes, params: Params) -> Self {
        build::Builder::new(codes, params).run()
    }

    pub fn rows(&self) -> usize {
        self.layout.rows
    }

    /// Bytes of links held (resident once touched).
    pub fn bytes(&self) -> usize {
        self.words.bytes()
    }

    /// Up to `ef` rows nearest `query` by their codes' scores, best first.
    pub fn search(&self, codes: &Codes, query: &Prepared, ef: usize) -> Vec<Scored> {
        if self.layout.rows == 0 || ef == 0 {
            return Vec::new();
        }
        let score = |row: u32| query.score(codes.row(row));
        self.visited.with(|visited| {
            let eps = descend(self, &score, self.entry, self.top, 0, visited);
            visited.start();
            search_layer(self, &score, &eps, ef, 0, visited)
        })
    }

    /// Writes `graph.bin` (fsynced).
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        mapped::write(path, MAGIC, FORMAT, &[self.words.as_slice()])
    }

    /// Maps `graph.bin` and checks it is a graph over exactly `rows` rows with valid links.
    pub fn open(path: &Path, rows: usize) -> anyhow::Result<Self> {
        let words = mapped::open(path, MAGIC, FORMAT)?;
        let body = words.as_slice();
        ensure!(body.len() >= HEAD_WORDS, "graph header missing");
        let found = body[0] as usize | ((body[1] as usize) << 32);
        ensure!(
            found == rows,
            "the graph covers {found} rows, the generation has {rows}"
        );
        let (m, m0, entry, top) = (body[2] as usize, body[3] as usize, body[4], body[5] as u8);
        let upper_len = body[6] as usize | ((body[7] as usize) << 32);
        ensure!(m >= 2 && m0 == 2 * m, "bad graph parameters M={m}");
        let level_words = rows.div_ceil(4);
        let lv = HEAD_WORDS..HEAD_WORDS + level_words;
        let offs = lv.end..lv.end + rows;
        let layer0 = offs.end..offs.end + rows * (m0 + 1);
        let upper = layer0.end..layer0.end + upper_len;
        ensure!(
            body.len() == upper.end,
            "graph has {} words, its header implies {}",
            body.len(),
            upper.end
        );
        let levels: Vec<u8> = bytemuck::cast_slice::<u32, u8>(&body[lv])[..rows].to_vec();
        let layout = Layout {
            rows,
            m,
            levels,
            upper_off: body[offs].to_vec(),
            upper_len,
        };
        let graph = Self {
            visited: VisitedPool {
                rows,
                free: Mutex::new(Vec::new()),
            },
            layout,
            words,
            layer0,
            upper,
            entry,
            top,
        };
        graph.check()?;
        Ok(graph)
    }

    /// Every link names a row, every count fits its list, every upper list fits its layer.
    fn check(&self) -> anyhow::Result<()> {
        let l = &self.layout;
        ensure!(
            l.rows == 0 || (self.entry as usize) < l.rows,
            "graph entry point out of range"
        );
        let mut next_off = 0usize;
        for (row, &level) in l.levels.iter().enumerate() {
            ensure!(level <= self.top, "row {row} is above the top level");
            ensure!(
                l.upper_off[row] as usize == next_off,
                "upper-layer offsets are inconsistent at row {row}"
            );
            next_off += level as usize * (l.m + 1);
        }
        ensure!(
            next_off == l.upper_len,
            "upper layers have the wrong length"
        );
        let words = self.words.as_slice();
        let lists = words[self.layer0.clone()]
            .chunks_exact(l.m0() + 1)
            .map(|list| (list, l.m0()))
            .chain(
                words[self.upper.clone()]
                    .chunks_exact(l.m + 1)
                    .map(|list| (list, l.m)),
            );
        for (list, cap) in lists {
            let count = list[0] as usize;
            ensure!(count <= cap, "a link list is over its capacity");
            ensure!(
                list[1..1 + count].iter().all(|&r| (r as usize) < l.rows),
                "a link names a row out of range"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{
        exact::{tests::random_unit_vectors, top_k},
        quant::Scale,
        synthetic,
    };

    fn recall_at_10(matrix: &[f32], dim: usize, graph: &Graph, codes: &Codes, q: &[f32]) -> f64 {
        let (mut found, mut wanted) = (0, 0);
        for q in q.chunks_exact(dim) {
            let exact = top_k(matrix, 0, q, 10, &|_| true);
            let prepared = codes.quantizer().prepare(q);
            let approx = graph.search(codes, &prepared, 64);
            wanted += exact.len();
            found += exact
                .iter()
                .filter(|e| approx.iter().take(20).any(|a| a.1 == e.row))
                .count();
        }
        found as f64 / wanted as f64
    }

    #[test]
    fn finds_the_true_neighbours_of_clustered_vectors() {
        let (n, dim) = (20_000, 64);
        let mixture = synthetic::Mixture::new(dim, 200, 0.5, 7);
        let matrix = mixture.sample(n, 8);
        let codes = Codes::from_f32(&matrix, dim, Scale::PerDimension);
        let graph = Graph::build(&codes, Params::default());
        assert_eq!(graph.rows(), n);
        let queries = mixture.sample(100, 9);
        let recall = recall_at_10(&matrix, dim, &graph, &codes, &queries);
        assert!(
            recall >= 0.95,
            "recall@10 in the best 20 by codes: {recall}"
        );
    }

    #[test]
    fn a_written_graph_maps_back_identically_and_damage_is_refused() {
        let (n, dim) = (3000, 16);
        let matrix = random_unit_vectors(n, dim, 5);
        let codes = Codes::from_f32(&matrix, dim, Scale::PerDimension);
        let graph = Graph::build(&codes, Params::default());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("graph.bin");
        graph.write(&path).unwrap();
        let back = Graph::open(&path, n).unwrap();
        assert_eq!(back.words.as_slice(), graph.words.as_slice());
        let q = codes.quantizer().prepare(&random_unit_vectors(1, dim, 6));
        assert_eq!(back.search(&codes, &q, 32), graph.search(&codes, &q, 32));
        assert!(Graph::open(&path, n - 1).is_err());

        // Truncated: refused by length, whatever the cut.
        let bytes = std::fs::read(&path).unwrap();
        for cut in [1, 100, bytes.len() / 2] {
            std::fs::write(&path, &bytes[..bytes.len() - cut]).unwrap();
            assert!(Graph::open(&path, n).is_err(), "cut {cut}");
        }
        // A link out of range with a valid checksum: refused by the link check.
        let mut words = graph.words.as_slice().to_vec();
        let l0 = graph.layer0.start;
        words[l0 + 1] = n as u32 + 5;
        mapped::write(&path, MAGIC, FORMAT, &[&words]).unwrap();
        let err = Graph::open(&path, n).err().unwrap().to_string();
        assert!(err.contains("out of range"), "{err}");
    }

    #[test]
    fn tiny_graphs_work() {
        let dim = 8;
        for n in [0, 1, 2, 5] {
            let matrix = random_unit_vectors(n, dim, 1);
            let codes = Codes::from_f32(&matrix, dim, Scale::PerDimension);
            let graph = Graph::build(&codes, Params::default());
            if n == 0 {
                continue;
            }
            let q = codes.quantizer().prepare(&matrix[..dim]);
            let hits = graph.search(&codes, &q, 10);
            assert_eq!(hits.len(), n, "n={n}");
            assert_eq!(hits[0].1, 0);
        }
    }
}
