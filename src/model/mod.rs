//! Everything about the model: where it comes from, checking it, loading it onto a device, and
//! running it. The request path never reaches in here except through [`LoadedModel`].
//!
//! Layout: [`arch`] (one module per family: which `config.json` it reads, how its weights map onto
//! the blocks), [`blocks`] (the shared packed CPU blocks), `kernels` (leaf compute),
//! [`sentence_transformers`] (pooling config, Dense, Normalize, prompts), [`pooling`],
//! [`encoder`] (family forward + pooling + Dense, or a classification head from [`heads`], for
//! one device).

pub mod arch;
pub mod blocks;
pub mod device;
pub mod encoder;
pub mod heads;
mod kernels;
pub mod manifest;
pub mod pooling;
pub mod sentence_transformers;
pub mod source;
pub mod tokenizer;
pub mod verify;

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;

pub use device::{DTypeRequest, DeviceRequest};
use encoder::Encoder;
use heads::{ModelKind, Task};
pub use kernels::isa::{isa, Isa};
use sentence_transformers::{PipelineConfig, Prompts};
use source::{ModelSource, Resolved};
use tokenizer::TextTokenizer;

/// What `/info` and metrics say about a loaded model.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ModelInfo {
    #[serde(rename = "model")]
    pub name: String,
    pub version: String,
    /// sha256 of `model.safetensors`.
    pub sha256: String,
    pub revision: Option<String>,
    /// What `--model` or the admin load named (manifest path, directory or hub id).
    pub source: String,
    /// The Hugging Face repo id (`owner/name`) of the weights, when the source or its manifest
    /// names one: requests may name the model by it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hub_repo: Option<String>,
    /// Where this version came from, when its manifest says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lineage: Option<manifest::Lineage>,
    /// The `model_type` served (`bert`, `xlm-roberta`, `distilbert`, `mpnet`, ...).
    pub architecture: String,
    /// `embedding`, `reranker` (a one-label cross-encoder) or `classifier`, from
    /// `config.json`'s `architectures`.
    pub kind: ModelKind,
    /// A reranker's or classifier's labels in id order (`id2label`); empty for embeddings.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// What `/rerank` runs on this model: `cross_encoder` (a reranker scores each pair),
    /// `bi_encoder` (cosine of normalised embeddings) or `none` (a classifier).
    pub rerank: &'static str,
    /// Vector length; a reranker's or classifier's number of labels.
    pub dimensions: usize,
    pub max_seq_length: usize,
    pub pooling: Vec<&'static str>,
    /// `Dense` layers after pooling (sentence-transformers `2_Dense`, ...).
    pub dense_layers: usize,
    pub normalize: bool,
    /// sentence-transformers prompts (`prompt_name` on requests) and the default one.
    #[serde(flatten)]
    pub prompts: Prompts,
    pub device: String,
    pub dtype: String,
    /// The CPU instruction set the kernels run on here ([`Isa::name`]): `amx-bf16`,
    /// `avx512-bf16`, `avx512f`, `avx2-fma` or `baseline`.
    pub cpu_isa: &'static str,
    pub load_seconds: f64,
}

/// A model ready to embed: its tokenizer, its encoder and what it is.
pub struct LoadedModel {
    pub info: ModelInfo,
    pub tokenizer: TextTokenizer,
    pub encoder: Encoder,
}

#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub source: String,
    pub name: Option<String>,
    /// The version to load from a multi-version manifest; for a directory or hub id, the label
    /// to serve it under.
    pub version: Option<String>,
    pub device: DeviceRequest,
    pub dtype: DTypeRequest,
}

/// Resolves, verifies, loads and warms a model. Blocking: call from a blocking thread.
pub fn load(opts: &LoadOptions) -> anyhow::Result<LoadedModel> {
    let started = Instant::now();
    let resolved =
        source::resolve_version(&ModelSource::parse(&opts.source)?, opts.version.as_deref())?;
    let sha256 = verified_weights_sha(&resolved)?;
    let pipeline = PipelineConfig::read(&resolved.dir)?;
    let (family, model_type) = encoder::family_of(&resolved.dir)?;
    let task = Task::detect(&encoder::read_config(&resolved.dir)?, family)
        .with_context(|| format!("{}", resolved.dir.join("config.json").display()))?;
    let kind = task.kind();
    // Heads run after the packed (CPU) encoder only.
    let (cuda_ok, what) = match kind {
        ModelKind::Embedding => (family.runs_on_cuda(), model_type.clone()),
        _ => (false, format!("{model_type} {}", kind.as_str())),
    };
    let device = device::select_device_for(opts.device, &what, cuda_ok)?;
    let dtype = device::select_dtype(opts.dtype, &device)?;
    let dtype = device::family_dtype(dtype, opts.dtype, &device, &model_type, family)?;
    let encoder = Encoder::load(&resolved.dir, &pipeline, &task, &device, dtype)?;
    let max_seq_length = pipeline
        .max_seq_length
        .unwrap_or(encoder.max_positions())
        .min(encoder.max_positions());
    let tokenizer = TextTokenizer::load(&resolved.dir.join("tokenizer.json"), max_seq_length)?;
    let mut info = ModelInfo {
        name: opts.name.clone().unwrap_or_else(|| resolved.name.clone()),
        version: opts
            .version
            .clone()
            .unwrap_or_else(|| version_label(&resolved, &sha256)),
        sha256,
        revision: resolved.revision.clone(),
        source: opts.source.clone(),
        hub_repo: resolved.repo.clone(),
        lineage: resolved.manifest.as_ref().and_then(|m| m.lineage.clone()),
        architecture: encoder.architecture().to_string(),
        kind,
        labels: task.labels().to_vec(),
        rerank: match kind {
            ModelKind::Embedding => "bi_encoder",
            ModelKind::Reranker => "cross_encoder",
            ModelKind::Classifier => "none",
        },
        dimensions: encoder.dimensions(),
        max_seq_length,
        pooling: encoder.pooling().iter().map(|p| p.name()).collect(),
        dense_layers: match kind {
            ModelKind::Embedding => pipeline.dense.len(),
            _ => 0,
        },
        normalize: pipeline.normalize && kind == ModelKind::Embedding,
        prompts: pipeline.prompts.clone(),
        device: device::device_name(&device),
        dtype: device::dtype_name(dtype).to_string(),
        cpu_isa: isa().name(),
        load_seconds: 0.0,
    };
    check_expectations(&resolved, &info)?;
    let model = LoadedModel {
        info: info.clone(),
        tokenizer,
        encoder,
    };
    model.warm().context("warm-up forward pass")?;
    info.load_seconds = started.elapsed().as_secs_f64();
    Ok(LoadedModel { info, ..model })
}

impl LoadedModel {
    /// One forward pass so the first request does not pay for lazy initialisation.
    fn warm(&self) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let tokens = self.tokenizer.encode("inferd warm-up", true)?;
        let out = self.encoder.embed(&[&tokens.ids])?;
        if out.len() != 1 || out[0].len() != self.info.dimensions {
            bail!("warm-up produced an unexpected shape");
        }
        Ok(started.elapsed())
    }
}

/// Verifies pinned hashes when a manifest exists and returns the weights' sha256.
fn verified_weights_sha(resolved: &Resolved) -> anyhow::Result<String> {
    match &resolved.manifest {
        Some(manifest) => {
            manifest.verify(&resolved.dir)?;
            match manifest.sha256.get("model.safetensors") {
                Some(sha) => Ok(sha.to_ascii_lowercase()),
                None => manifest::sha256_file(&resolved.dir.join("model.safetensors")),
            }
        }
        None => manifest::sha256_file(&resolved.dir.join("model.safetensors")),
    }
}

/// The manifest's version, else a pinned commit's prefix, else the weights' sha256 prefix.
fn version_label(resolved: &Resolved, sha256: &str) -> String {
    if let Some(version) = resolved.manifest.as_ref().and_then(|m| m.version.clone()) {
        return version;
    }
    match &resolved.revision {
        Some(rev) if rev.len() >= 12 && rev.chars().all(|c| c.is_ascii_hexdigit()) => {
            rev[..12].to_string()
        }
        _ => sha256[..12].to_string(),
    }
}

/// A manifest promises a shape; refuse to serve a directory that does not have it.
fn check_expectations(resolved: &Resolved, info: &ModelInfo) -> anyhow::Result<()> {
    let Some(manifest) = &resolved.manifest else {
        return Ok(());
    };
    let want = &manifest.model;
    // A reranker or classifier pools nothing (its head reads the first token): `none`.
    let pooling = match info.pooling.is_empty() {
        true => "none".to_string(),
        false => info.pooling.join("+"),
    };
    let checks = [
        (
            "dimensions",
            want.dimensions.to_string(),
            info.dimensions.to_string(),
        ),
        (
            "max_seq_length",
            want.max_seq_length.to_string(),
            info.max_seq_length.to_string(),
        ),
        ("pooling", want.pooling.clone(), pooling),
        (
            "normalize",
            want.normalize.to_string(),
            info.normalize.to_string(),
        ),
    ];
    for (what, want, got) in checks {
        if want != got {
            bail!(
                "model in {} has {what} {got}, but manifest {} promises {want}",
                resolved.dir.display(),
                manifest.path.display()
            );
        }
    }
    Ok(())
}
