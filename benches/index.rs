//! Recommendation search, without HTTP: k=10 query latency (p50/p99) of exact search and of
//! the HNSW graph, HNSW recall@10 against exact, graph build time, and memory per item.
//!
//! Sets, of synthetic unit 384-d vectors (`inferd::index::synthetic`):
//! - `clustered-N`: a Gaussian mixture shaped like real embeddings (one centre per 256 items,
//!   anisotropic noise of relative norm INFERD_BENCH_SPREAD, default 0.75), queries drawn from
//!   the same mixture. This is the realistic synthetic case.
//! - `uniform-N`: directions uniform on the sphere, no structure: the worst case for any graph
//!   index, reported for comparison.
//!
//! Sizes: INFERD_BENCH_N (default the catalog's 63,436) for both sets, then 1M clustered
//! (INFERD_BENCH_SKIP_1M=1 skips it; INFERD_BENCH_HNSW_1M=1 builds its graph, otherwise exact
//! only). INFERD_BENCH_NO_HNSW skips the graph of the first size, INFERD_BENCH_NO_UNIFORM the
//! uniform set. Set INFERD_BENCH_INDEX to an index directory (`inferd index build`) to measure
//! its real vectors too. Graph parameters: INFERD_BENCH_M, INFERD_BENCH_EF_C (defaults those of
//! `inferd::index::hnsw`); INFERD_BENCH_EF lists the ef_search values measured (default
//! 64,128,256).
//!
//! `cargo bench --bench index`

use std::{sync::Arc, time::Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use inferd::index::{
    exact::{top_k, Hit},
    hnsw::{HnswIndex, Params, EF_SEARCH},
    store,
    synthetic::{uniform_unit_vectors, Mixture},
};

const DIM: usize = 384;
const K: usize = 10;
const QUERIES: usize = 200;

fn main() {
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(20)
        .measurement_time(std::time::Duration::from_secs(4));
    let defaults = Params::default();
    let params = Params {
        m: env_usize("INFERD_BENCH_M").unwrap_or(defaults.m),
        ef_construction: env_usize("INFERD_BENCH_EF_C").unwrap_or(defaults.ef_construction),
    };
    let efs: Vec<usize> = std::env::var("INFERD_BENCH_EF")
        .unwrap_or_else(|_| "64,128,256".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    println!(
        "hnsw: M {}, ef_construction {}, ef_search {efs:?} (served default {EF_SEARCH}); {} rayon threads",
        params.m,
        params.ef_construction,
        rayon::current_num_threads()
    );
    let bench = Bench { params, efs };
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
        bench.run_size(
            &mut c,
            "catalog-real",
            matrix,
            header.dimensions,
            &queries,
            true,
        );
    }
    let spread: f32 = std::env::var("INFERD_BENCH_SPREAD")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.75);
    let n = env_usize("INFERD_BENCH_N").unwrap_or(63_436);
    let with_hnsw = std::env::var_os("INFERD_BENCH_NO_HNSW").is_none();
    let clustered = |n: usize, seed: u64| {
        let mixture = Mixture::new(DIM, (n / 256).max(16), spread, seed);
        let started = Instant::now();
        let m: Arc<[f32]> = mixture.sample(n, seed + 1).into();
        let queries = mixture.sample(QUERIES, seed + 2);
        println!(
            "\n(generated {n} clustered vectors: {} centres, spread {spread}, in {:.1} s)",
            mixture.clusters(),
            started.elapsed().as_secs_f64()
        );
        (m, queries)
    };
    let (m, queries) = clustered(n, 10);
    bench.run_size(
        &mut c,
        &format!("clustered-{n}"),
        m,
        DIM,
        &queries,
        with_hnsw,
    );
    if std::env::var_os("INFERD_BENCH_NO_UNIFORM").is_none() {
        let m = uniform_unit_vectors(n, DIM, 1).into();
        let queries = uniform_unit_vectors(QUERIES, DIM, 99);
        bench.run_size(&mut c, &format!("uniform-{n}"), m, DIM, &queries, with_hnsw);
    }
    if std::env::var_os("INFERD_BENCH_SKIP_1M").is_none() {
        let hnsw_1m = std::env::var_os("INFERD_BENCH_HNSW_1M").is_some();
        let (m, queries) = clustered(1_000_000, 20);
        bench.run_size(&mut c, "clustered-1M", m, DIM, &queries, hnsw_1m);
    }
    c.final_summary();
}

struct Bench {
    params: Params,
    efs: Vec<usize>,
}

impl Bench {
    fn run_size(
        &self,
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
            let graph = HnswIndex::build_with(&matrix, dim, self.params);
            let build = started.elapsed().as_secs_f64();
            let graph_bytes = rss_bytes().saturating_sub(rss);
            println!(
            "hnsw build: {build:.1} s ({:.0} items/s), graph ≈ {:.0} B/item (RSS growth, incl. the graph's copy of the vectors)",
            n as f64 / build,
            graph_bytes as f64 / n as f64
        );
            for &ef in &self.efs {
                let (p50, p99) =
                    latency(queries, dim, |q| graph.search_ef(q, K, ef, &|_| true).len());
                let found: usize = queries
                    .chunks_exact(dim)
                    .zip(&exact)
                    .map(|(q, want)| {
                        let got = graph.search_ef(q, K, ef, &|_| true);
                        got.iter()
                            .filter(|h| want.iter().any(|w| w.row == h.row))
                            .count()
                    })
                    .sum();
                println!(
                    "hnsw   k={K} ef={ef}: p50 {:.3} ms, p99 {:.3} ms, recall@{K} vs exact {:.3}",
                    p50 * 1e3,
                    p99 * 1e3,
                    found as f64 / (exact.len() * K) as f64
                );
            }
            group.bench_function(BenchmarkId::new("hnsw", n), |b| {
                b.iter(|| graph.search(q0, K, &|_| true))
            });
        }
        group.finish();
    }
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

/// Resident set size of this process, from /proc (0 where unavailable).
fn rss_bytes() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(0, |pages| pages * 4096)
}
