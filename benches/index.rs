//! Recommendation search, without HTTP: k=10 query latency (p50/p99) of exact search and of
//! the HNSW graph, HNSW recall@10 against exact, graph build time, and memory per item.
//!
//! Sizes: the catalog's 63,436 items and 1M items, of synthetic unit 384-d vectors (uniform
//! random vectors are the hard case for HNSW: real embeddings cluster, and recall is higher).
//! Set INFERD_BENCH_INDEX to an index directory (`inferd index build`) to measure its real
//! vectors too. HNSW at 1M takes long to build on a small machine: set INFERD_BENCH_HNSW_1M=1.
//! INFERD_BENCH_N sets the first synthetic size, INFERD_BENCH_NO_HNSW skips its graph, and
//! INFERD_BENCH_SKIP_1M skips the 1M run.
//!
//! `cargo bench --bench index`

use std::{sync::Arc, time::Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use inferd::index::{
    exact::{top_k, Hit},
    hnsw::HnswIndex,
    store,
};

const DIM: usize = 384;
const K: usize = 10;
const QUERIES: usize = 200;

fn main() {
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(20)
        .measurement_time(std::time::Duration::from_secs(4));
    if let Some(dir) = std::env::var_os("INFERD_BENCH_INDEX") {
        let (_, header, store) = store::load(std::path::Path::new(&dir)).expect("loading index");
        println!(
            "index {:?}: {} items, store ≈ {:.0} B/item (vectors {} B)",
            dir,
            store.len(),
            store.approx_bytes() as f64 / store.len() as f64,
            header.dimensions * 4
        );
        let matrix = Arc::clone(store.base());
        // Queries: stored item vectors (an item_id query), spread over the catalog.
        let step = (store.len() / QUERIES).max(1);
        let queries: Vec<f32> = (0..QUERIES)
            .flat_map(|i| store.vector(((i * step) % store.len()) as u32).to_vec())
            .collect();
        run_size(
            &mut c,
            "catalog-real",
            matrix,
            header.dimensions,
            &queries,
            true,
        );
    }
    let queries = random_unit_vectors(QUERIES, DIM, 99);
    let n = env_usize("INFERD_BENCH_N").unwrap_or(63_436);
    let with_hnsw = std::env::var_os("INFERD_BENCH_NO_HNSW").is_none();
    let name = format!("synthetic-{n}");
    let m = random_unit_vectors(n, DIM, 1).into();
    run_size(&mut c, &name, m, DIM, &queries, with_hnsw);
    if std::env::var_os("INFERD_BENCH_SKIP_1M").is_none() {
        let hnsw_1m = std::env::var_os("INFERD_BENCH_HNSW_1M").is_some();
        let m = random_unit_vectors(1_000_000, DIM, 2).into();
        run_size(&mut c, "synthetic-1M", m, DIM, &queries, hnsw_1m);
    }
    c.final_summary();
}

fn run_size(
    c: &mut Criterion,
    name: &str,
    matrix: Arc<[f32]>,
    dim: usize,
    queries: &[f32],
    with_hnsw: bool,
) {
    let n = matrix.len() / dim;
    println!(
        "\n== {name}: {n} items × {dim} dims; vectors {} B/item",
        dim * 4
    );
    let exact: Vec<Vec<Hit>> = queries
        .chunks_exact(dim)
        .map(|q| top_k(&matrix, 0, q, K, &|_| true))
        .collect();
    let (p50, p99) = latency(queries, dim, |q| top_k(&matrix, 0, q, K, &|_| true).len());
    println!(
        "exact  k={K}: p50 {:.3} ms, p99 {:.3} ms",
        p50 * 1e3,
        p99 * 1e3
    );
    let mut group = c.benchmark_group(format!("query_k10/{name}"));
    group.throughput(Throughput::Elements(1));
    let q0 = &queries[..dim];
    group.bench_function(BenchmarkId::new("exact", n), |b| {
        b.iter(|| top_k(&matrix, 0, q0, K, &|_| true))
    });
    if with_hnsw {
        let rss = rss_bytes();
        let started = Instant::now();
        let graph = HnswIndex::build(Arc::clone(&matrix), dim);
        let build = started.elapsed().as_secs_f64();
        let graph_bytes = rss_bytes().saturating_sub(rss);
        println!(
            "hnsw build: {build:.1} s ({:.0} items/s), graph ≈ {:.0} B/item (RSS growth)",
            n as f64 / build,
            graph_bytes as f64 / n as f64
        );
        let (p50, p99) = latency(queries, dim, |q| graph.search(q, K, &|_| true).len());
        println!(
            "hnsw   k={K}: p50 {:.3} ms, p99 {:.3} ms",
            p50 * 1e3,
            p99 * 1e3
        );
        let found: usize = queries
            .chunks_exact(dim)
            .zip(&exact)
            .map(|(q, want)| {
                let got = graph.search(q, K, &|_| true);
                got.iter()
                    .filter(|h| want.iter().any(|w| w.row == h.row))
                    .count()
            })
            .sum();
        println!(
            "hnsw recall@{K} vs exact: {:.3}",
            found as f64 / (exact.len() * K) as f64
        );
        group.bench_function(BenchmarkId::new("hnsw", n), |b| {
            b.iter(|| graph.search(q0, K, &|_| true))
        });
    }
    group.finish();
}

fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name).ok()?.parse().ok()
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

fn random_unit_vectors(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v: Vec<f32> = (0..n * dim)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect();
    for row in v.chunks_exact_mut(dim) {
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        row.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

/// Resident set size of this process, from /proc (0 where unavailable).
fn rss_bytes() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(0, |pages| pages * 4096)
}
