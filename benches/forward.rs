//! Forward-pass throughput of the real model, without HTTP: batch 1/8/32 of short (~12 token)
//! and long (~200 token) texts, tokenization excluded, for inferd's encoder (packed on CPU; also
//! with bf16 projections where the CPU has AVX-512 BF16) and,
//! as the same-run baseline, candle-transformers' padded `BertModel`. Needs
//! `scripts/fetch-model.sh`.
//!
//! `cargo bench --bench forward`; set INFERD_BENCH_MODEL to use another model directory.

use std::{path::PathBuf, time::Instant};

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use inferd::model::{
    self, encoder::pad_batch, DTypeRequest, DeviceRequest, LoadOptions, LoadedModel,
};

/// The reference: candle-transformers' BERT on a batch padded to its longest sequence.
struct Padded(BertModel);

impl Padded {
    fn load() -> Self {
        let dir = model_dir();
        let config: Config =
            serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap())
                .unwrap();
        let weights = dir.join("model.safetensors");
        // SAFETY: read-only mapping of a file nobody modifies during the bench.
        let vb =
            unsafe { VarBuilder::from_mmaped_safetensors(&[weights], DType::F32, &Device::Cpu) }
                .unwrap();
        Self(BertModel::load(vb, &config).unwrap())
    }

    fn forward(&self, seqs: &[&[u32]]) -> Vec<f32> {
        let (ids, mask) = pad_batch(seqs, 0, &Device::Cpu).unwrap();
        let out = self
            .0
            .forward(&ids, &ids.zeros_like().unwrap(), Some(&mask))
            .unwrap();
        out.flatten_all().unwrap().to_vec1().unwrap()
    }
}

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

fn load(device: DeviceRequest, dtype: DTypeRequest) -> LoadedModel {
    model::load(&LoadOptions {
        source: model_dir().to_string_lossy().into_owned(),
        name: None,
        version: None,
        device,
        dtype,
    })
    .expect("load the model (run scripts/fetch-model.sh)")
}

fn forward(c: &mut Criterion) {
    // The server runs forward passes on a compute pool its worker thread belongs to; so do we.
    let pool = inferd::batching::compute_pool(rayon::current_num_threads()).unwrap();
    let model = load(DeviceRequest::Auto, DTypeRequest::Auto);
    // bf16 projections on CPUs with AVX-512 BF16 (`--dtype bf16`).
    let bf16 = model::isa()
        .avx512_bf16
        .then(|| load(DeviceRequest::Cpu, DTypeRequest::Bf16));
    let padded = Padded::load();
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
            let id = format!("{set}/{batch}");
            let variants = [("inferd", Some(&model)), ("inferd-bf16", bf16.as_ref())];
            for (name, model) in variants {
                let Some(model) = model else { continue };
                group.bench_with_input(BenchmarkId::new(name, &id), &seqs, |b, seqs| {
                    b.iter_custom(|iters| {
                        let start = Instant::now();
                        for _ in 0..iters {
                            // embed copies results back to the host, which synchronises the device.
                            pool.install(|| model.encoder.embed(seqs).unwrap());
                        }
                        start.elapsed()
                    })
                });
            }
            group.bench_with_input(
                BenchmarkId::new("candle-bert-padded", &id),
                &seqs,
                |b, seqs| {
                    b.iter_custom(|iters| {
                        let start = Instant::now();
                        for _ in 0..iters {
                            padded.forward(seqs);
                        }
                        start.elapsed()
                    })
                },
            );
        }
    }
    group.finish();
}

criterion_group!(benches, forward);
criterion_main!(benches);
