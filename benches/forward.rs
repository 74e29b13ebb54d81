//! Forward-pass throughput of the real model, without HTTP: batch 1/8/32 of short (~12 token)
//! and long (~200 token) texts, tokenization excluded. Needs `scripts/fetch-model.sh`.
//!
//! `cargo bench --bench forward`; set INFERD_BENCH_MODEL to use another model directory.

use std::{path::PathBuf, time::Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use inferd::{
    config::{DTypeRequest, DeviceRequest},
    model::{self, LoadOptions, LoadedModel},
};

fn model_dir() -> PathBuf {
    std::env::var_os("INFERD_BENCH_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/models/all-MiniLM-L6-v2"
            ))
        })
}

fn texts(file: &str) -> Vec<String> {
    let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/benches/data")).join(file);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

fn forward(c: &mut Criterion) {
    let model: LoadedModel = model::load(&LoadOptions {
        source: model_dir().to_string_lossy().into_owned(),
        name: None,
        device: DeviceRequest::Auto,
        dtype: DTypeRequest::Auto,
    })
    .expect("load the model (run scripts/fetch-model.sh)");
    let mut group = c.benchmark_group("forward");
    group.sample_size(10);
    for (set, file) in [("short", "short.txt"), ("long", "long.txt")] {
        let tokens: Vec<Vec<u32>> = texts(file)
            .iter()
            .map(|t| model.tokenizer.encode(t, true).unwrap().ids)
            .collect();
        for batch in [1usize, 8, 32] {
            let seqs: Vec<&[u32]> = tokens.iter().take(batch).map(Vec::as_slice).collect();
            group.throughput(Throughput::Elements(batch as u64));
            group.bench_with_input(BenchmarkId::new(set, batch), &seqs, |b, seqs| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        // embed copies results back to the host, which synchronises the device.
                        model.encoder.embed(seqs).unwrap();
                    }
                    start.elapsed()
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, forward);
criterion_main!(benches);
