//! Recommendation search through the served index code, without HTTP: exact f32 search (the
//! ground truth and the baseline), and the quantized index as a server runs it — int8 codes,
//! the HNSW graph over them, f32 rescoring from disk — after a real publish and restart.
//!
//! For each set it reports: exact f32 k=10 p50/p99; the generation build (quantize + graph,
//! items/s); restart-to-graph-ready (`LiveIndex::open` of the published generation); RSS per
//! item of the opened index (process RSS growth over open + queries, divided by items; the
//! vectors' f32 copy stays in the page cache, see `inferd::index::store`); then, per ef_search,
//! p50/p99 and recall@10 against exact f32, and the same for `exact: true` (full int8 scan +
//! rescoring). On the first set it also compares per-dimension and global int8 scales.
//!
//! Sets, of unit 384-d vectors:
//! - `catalog-real`: INFERD_BENCH_INDEX=DIR, an index built by `inferd index build` (queries:
//!   200 stored items spread over the catalog, as `item_id` queries use them).
//! - `clustered-N`: a Gaussian mixture shaped like real embeddings (`inferd::index::synthetic`,
//!   one centre per 256 items, noise of relative norm INFERD_BENCH_SPREAD, default 0.75);
//!   queries from the same mixture. INFERD_BENCH_N (default 63,436).
//! - `uniform-N`: no structure, the worst case for any graph (INFERD_BENCH_UNIFORM=1 adds it).
//! - `clustered-1M`: with INFERD_BENCH_1M=1 (the build is long on 2 cores).
//!
//! INFERD_BENCH_EF lists the ef_search values (default 64,128,256). Generations are written
//! under target/bench-index/gen-* and removed after each set.
//!
//! `cargo bench --bench index`

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    time::Instant,
};

use criterion::Criterion;
use inferd::index::{
    exact::{top_k, Hit},
    generation::{self, Writer},
    graph::{Params, EF_SEARCH},
    live::rescored,
    quant::{Codes, Scale},
    synthetic::{uniform_unit_vectors, Mixture},
    Filter, IndexHeader, LiveIndex, Search, SearchSpec, Tuning, FORMAT_VERSION,
};

const DIM: usize = 384;
const K: usize = 10;
const QUERIES: usize = 200;

fn main() {
    let c = Criterion::default().configure_from_args();
    let efs: Vec<usize> = std::env::var("INFERD_BENCH_EF")
        .unwrap_or_else(|_| "64,128,256".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    println!(
        "graph M {}, ef_construction {}, ef_search {efs:?} (served default {EF_SEARCH}), \
         rescored max(4k, 40); {} rayon threads",
        Params::default().m,
        Params::default().ef_construction,
        rayon::current_num_threads()
    );
    if let Some(dir) = std::env::var_os("INFERD_BENCH_INDEX") {
        let loaded = generation::load(Path::new(&dir)).expect("loading index");
        let store = &loaded.store;
        let n = store.len();
        let mut matrix = Vec::with_capacity(n * loaded.header.dimensions);
        for row in 0..n as u32 {
            matrix.extend(store.vector(row).expect("vector"));
        }
        let step = (n / QUERIES).max(1);
        let queries: Vec<f32> = (0..QUERIES)
            .flat_map(|i| store.vector(((i * step) % n) as u32).expect("vector"))
            .collect();
        let dim = loaded.header.dimensions;
        drop(loaded);
        compare_scales(&matrix, dim, &queries);
        if let Ok(url) = std::env::var("INFERD_BENCH_PG_URL") {
            run_pg(&url, &matrix, dim, &queries, &efs);
        }
        run_set("catalog-real", matrix, dim, &queries, &efs);
    }
    let spread: f32 = env("INFERD_BENCH_SPREAD").unwrap_or(0.75);
    let n: usize = env("INFERD_BENCH_N").unwrap_or(63_436);
    let clustered = |n: usize, seed: u64| {
        let mixture = Mixture::new(DIM, (n / 256).max(16), spread, seed);
        (
            mixture.sample(n, seed + 1),
            mixture.sample(QUERIES, seed + 2),
        )
    };
    let (m, q) = clustered(n, 10);
    run_set(&format!("clustered-{n}"), m, DIM, &q, &efs);
    if std::env::var_os("INFERD_BENCH_UNIFORM").is_some() {
        let m = uniform_unit_vectors(n, DIM, 1);
        let q = uniform_unit_vectors(QUERIES, DIM, 99);
        run_set(&format!("uniform-{n}"), m, DIM, &q, &efs);
    }
    if std::env::var_os("INFERD_BENCH_1M").is_some() {
        let (m, q) = clustered(1_000_000, 20);
        run_set("clustered-1M", m, DIM, &q, &efs);
    }
    c.final_summary();
}

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok()?.parse().ok()
}

/// Recall@10 of a full int8 scan + rescoring, per-dimension vs global scale.
fn compare_scales(matrix: &[f32], dim: usize, queries: &[f32]) {
    for scale in [Scale::PerDimension, Scale::Global] {
        let codes = Codes::from_f32(matrix, dim, scale);
        let mut found = 0;
        for q in queries.chunks_exact(dim) {
            let want = top_k(matrix, 0, q, K, &|_| true);
            let prepared = codes.quantizer().prepare(q);
            let mut cand: Vec<Hit> = codes
                .all()
                .chunks_exact(dim)
                .enumerate()
                .map(|(r, c)| Hit {
                    row: r as u32,
                    score: prepared.score(c),
                })
                .collect();
            cand.sort_by(|a, b| b.cmp(a));
            let top: Vec<u32> = cand.iter().take(K).map(|h| h.row).collect();
            found += want.iter().filter(|w| top.contains(&w.row)).count();
        }
        println!(
            "int8 {scale:?}: recall@10 of the codes alone (no rescoring) {:.3}",
            found as f64 / (queries.len() / dim * K) as f64
        );
    }
}

/// The same vectors in PostgreSQL + pgvector: load rate (rows + HNSW index), then latency and
/// recall of queries through `PgIndex`, one at a time.
fn run_pg(url: &str, matrix: &[f32], dim: usize, queries: &[f32], efs: &[usize]) {
    use inferd::index::{
        postgres::{schema, PgIndex, PgSettings},
        SearchRequest,
    };
    let n = matrix.len() / dim;
    println!(
        "\n== pgvector ({}): {n} items × {dim} dims",
        schema::redact(url)
    );
    let truth: Vec<Vec<Hit>> = queries
        .chunks_exact(dim)
        .map(|q| top_k(matrix, 0, q, K, &|_| true))
        .collect();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let header = bench_header(dim, n);
    let started = Instant::now();
    let rows = matrix
        .chunks_exact(dim)
        .enumerate()
        .map(|(i, v)| (format!("item-{i}"), serde_json::json!({}), v.to_vec()));
    rt.block_on(schema::publish(url, "bench", &header, rows))
        .expect("loading pgvector");
    let load = started.elapsed().as_secs_f64();
    println!(
        "load (insert + HNSW index): {load:.1} s ({:.0} items/s)",
        n as f64 / load
    );
    let settings = PgSettings {
        pool_size: 2,
        timeout: std::time::Duration::from_secs(60),
    };
    let index = rt
        .block_on(PgIndex::open("bench", url, settings, |_| Ok(())))
        .expect("opening pgvector index");
    let mut modes: Vec<(String, bool, usize)> = efs
        .iter()
        .map(|&ef| (format!("pgvector hnsw ef={ef}"), false, ef))
        .collect();
    modes.push(("pgvector exact (seq scan)".into(), true, 0));
    for (label, exact, ef) in modes {
        let search = |q: &[f32]| {
            rt.block_on(index.search(&SearchRequest {
                vector: q.to_vec(),
                k: K,
                filter: Filter::default(),
                exclude: HashSet::new(),
                exact,
                ef_search: Some(ef),
            }))
            .expect("pgvector search")
        };
        let (p50, p99) = latency(queries, dim, |q| search(q).len());
        let found: usize = queries
            .chunks_exact(dim)
            .zip(&truth)
            .map(|(q, want)| {
                let got = search(q);
                want.iter()
                    .filter(|w| got.iter().any(|g| g.id == format!("item-{}", w.row)))
                    .count()
            })
            .sum();
        println!(
            "{label} k={K}: p50 {:.3} ms, p99 {:.3} ms, recall@{K} vs exact f32 {:.3}",
            p50 * 1e3,
            p99 * 1e3,
            found as f64 / (truth.len() * K) as f64
        );
    }
}

fn run_set(name: &str, matrix: Vec<f32>, dim: usize, queries: &[f32], efs: &[usize]) {
    let n = matrix.len() / dim;
    println!("\n== {name}: {n} items × {dim} dims");
    let truth: Vec<Vec<Hit>> = queries
        .chunks_exact(dim)
        .map(|q| top_k(&matrix, 0, q, K, &|_| true))
        .collect();
    let (p50, p99) = latency(queries, dim, |q| top_k(&matrix, 0, q, K, &|_| true).len());
    println!(
        "exact f32 (in RAM) k={K}: p50 {:.3} ms, p99 {:.3} ms",
        p50 * 1e3,
        p99 * 1e3
    );

    let dir = PathBuf::from(format!("target/bench-index/gen-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    let started = Instant::now();
    let mut writer = Writer::start(&dir, dim).expect("writer");
    for (i, v) in matrix.chunks_exact(dim).enumerate() {
        writer.push(&format!("item-{i}"), b"{}", v).expect("push");
    }
    drop(matrix);
    let header = bench_header(dim, n);
    writer
        .finish(&header, Params::default())
        .and_then(|staged| staged.publish(|_| Ok(())))
        .expect("publish");
    let build = started.elapsed().as_secs_f64();
    println!(
        "build (write, quantize, graph, fsync): {build:.1} s ({:.0} items/s)",
        n as f64 / build
    );

    let rss_before = rss_bytes();
    let started = Instant::now();
    let tuning = Tuning {
        compact_after: usize::MAX,
        debug_compact_delay: None,
    };
    let index = LiveIndex::open(name, &dir, tuning, |_| Ok(())).expect("open");
    let restart = started.elapsed().as_secs_f64();
    println!(
        "restart to graph ready: {restart:.2} s (graph {:?})",
        index.graph_source()
    );
    let search = |q: &[f32], exact: bool, ef: usize| {
        let spec = SearchSpec {
            vector: q,
            k: K,
            filter: &Filter::default(),
            exclude: &HashSet::new(),
            exact,
            ef_search: Some(ef),
        };
        index.search(&spec).expect("search")
    };
    let mut modes: Vec<(String, bool, usize)> = efs
        .iter()
        .map(|&ef| (format!("graph ef={ef}"), false, ef))
        .collect();
    modes.push(("exact: true (int8 scan)".into(), true, 0));
    for (label, exact, ef) in modes {
        let (p50, p99) = latency(queries, dim, |q| search(q, exact, ef).len());
        let found: usize = queries
            .chunks_exact(dim)
            .zip(&truth)
            .map(|(q, want)| {
                let got = search(q, exact, ef);
                want.iter()
                    .filter(|w| got.iter().any(|g| g.id == format!("item-{}", w.row)))
                    .count()
            })
            .sum();
        println!(
            "{label} k={K} (rescored {}): p50 {:.3} ms, p99 {:.3} ms, recall@{K} vs exact f32 {:.3}",
            rescored(K),
            p50 * 1e3,
            p99 * 1e3,
            found as f64 / (truth.len() * K) as f64
        );
    }
    let rss = rss_bytes().saturating_sub(rss_before);
    println!(
        "RSS of the opened index after the queries: {:.0} B/item ({:.0} MB; index's own estimate {:.0} B/item)",
        rss as f64 / n as f64,
        rss as f64 / 1e6,
        index.bytes_per_item()
    );
    drop(index);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The header of a bench index (an HNSW index of `n` rows of `dim`).
fn bench_header(dim: usize, n: usize) -> IndexHeader {
    IndexHeader {
        format: FORMAT_VERSION,
        model: "bench".into(),
        model_version: "1".into(),
        model_sha256: "bench".into(),
        dimensions: dim,
        count: n,
        search: Search::Hnsw,
        created_unix: 0,
    }
}

/// p50 and p99 seconds of `search` over each query.
fn latency(queries: &[f32], dim: usize, search: impl Fn(&[f32]) -> usize) -> (f64, f64) {
    let mut times: Vec<f64> = queries
        .chunks_exact(dim)
        .map(|q| {
            let started = Instant::now();
            std::hint::black_box(search(q));
            started.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    let at = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
    (at(0.5), at(0.99))
}

/// Resident set size of this process, from /proc (0 where unavailable).
fn rss_bytes() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(0, |pages| pages * 4096)
}
