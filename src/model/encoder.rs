//! The model itself: the family's forward, then pooling and any `Dense` layers (an embedding
//! model) or a sequence-classification head (a reranker or classifier, see
//! [`super::heads`]). Pure compute: no queues, no HTTP. Normalisation (and a Matryoshka cut) is
//! left to the caller: it is a per-request choice; so are a head's softmax or sigmoid.
//!
//! On the CPU the forward is the family's packed [`Stack`](super::blocks::Stack): all tokens of a
//! batch in one `[tokens, hidden]` buffer, no padding at all. On CUDA it is candle-transformers'
//! model of the family on a batch padded to its own longest sequence only (never a fixed length),
//! with the attention mask keeping padding out of attention and pooling.

use std::path::Path;

use anyhow::{bail, Context};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use super::{
    arch::{Architecture, Forward},
    heads::{ClassifierHead, Task},
    kernels::Precision,
    pooling::{pool, pool_packed, PoolingMode},
    sentence_transformers::{Dense, PipelineConfig},
};

pub struct Encoder {
    arch: Architecture,
    pooling: Vec<PoolingMode>,
    dense: Vec<Dense>,
    /// A sequence-classification head: replaces pooling and `Dense`.
    head: Option<ClassifierHead>,
    device: Device,
}

/// One sequence of a batch: its token ids, and where a pair's second text (token type 1)
/// starts (`ids.len()` for a single text).
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub ids: &'a [u32],
    pub second: usize,
}

impl<'a> Input<'a> {
    pub fn single(ids: &'a [u32]) -> Self {
        Self {
            ids,
            second: ids.len(),
        }
    }
}

impl Encoder {
    /// Loads `dir`'s transformer (`config.json`, `model.safetensors`) for `device` and `dtype`,
    /// with the pooling and dense layers of `pipeline`, or `task`'s classification head.
    pub fn load(
        dir: &Path,
        pipeline: &PipelineConfig,
        task: &Task,
        device: &Device,
        dtype: DType,
    ) -> anyhow::Result<Self> {
        let json = read_config(dir)?;
        let weights = dir.join("model.safetensors");
        // On the CPU, bf16 applies to the matrix products only (the projections, and attention's
        // where AMX runs it); the rest of the forward is f32.
        let (load_dtype, precision) = match (device.is_cpu(), dtype) {
            (true, DType::BF16) => (DType::F32, Precision::Bf16),
            _ => (dtype, Precision::F32),
        };
        // SAFETY: the file is memory-mapped read-only; we rely on nobody truncating it while we
        // run, as every safetensors loader does.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], load_dtype, device) }
            .with_context(|| format!("mapping {}", weights.display()))?;
        let arch = Architecture::load(&json, vb.clone(), device, precision)
            .with_context(|| format!("building the model from {}", dir.display()))?;
        let head = match task {
            Task::Embedding => None,
            Task::Classification { head, labels } => {
                if !device.is_cpu() {
                    bail!("sequence-classification heads run on the CPU only; use --device cpu");
                }
                let hidden = arch.config.hidden;
                let head = ClassifierHead::load(&vb, &json, *head, hidden, labels.len())
                    .with_context(|| {
                        format!("loading the classification head from {}", dir.display())
                    })?;
                Some(head)
            }
        };
        let (pooling, dense) = match head {
            Some(_) => (Vec::new(), Vec::new()),
            None => (pipeline.pooling.clone(), pipeline.dense.clone()),
        };
        let encoder = Self {
            arch,
            pooling,
            dense,
            head,
            device: device.clone(),
        };
        encoder.check_dense()?;
        Ok(encoder)
    }

    /// Each Dense layer must take what the step before it gives.
    fn check_dense(&self) -> anyhow::Result<()> {
        if self.head.is_some() {
            return Ok(());
        }
        let mut width = self.arch.config.hidden * self.pooling.len();
        for (i, dense) in self.dense.iter().enumerate() {
            if dense.inputs != width {
                bail!(
                    "Dense module {i} takes {} features but receives {width}",
                    dense.inputs
                );
            }
            width = dense.outputs;
        }
        Ok(())
    }

    /// Output vector length (a head's: its number of labels).
    pub fn dimensions(&self) -> usize {
        if let Some(head) = &self.head {
            return head.labels();
        }
        self.dense.last().map_or_else(
            || self.arch.config.hidden * self.pooling.len(),
            |d| d.outputs,
        )
    }

    /// Longest sequence the position embeddings allow.
    pub fn max_positions(&self) -> usize {
        self.arch.max_len()
    }

    pub fn pooling(&self) -> &[PoolingMode] {
        &self.pooling
    }

    /// The served `model_type` (`bert`, `xlm-roberta`, `mpnet`, ...).
    pub fn architecture(&self) -> &str {
        &self.arch.model_type
    }

    /// `2 · hidden + intermediate`: the sequence length at which a token's attention costs as
    /// much as its projections (see [`crate::batching::BatchLimits`]).
    pub fn attention_span(&self) -> usize {
        2 * self.arch.config.hidden + self.arch.config.intermediate
    }

    /// Whether batches cost their real tokens (packed) or sequences × longest (padded).
    pub fn is_packed(&self) -> bool {
        matches!(self.arch.forward, Forward::Packed(_))
    }

    /// Embeds a batch of token-id sequences; one pooled (unnormalised) vector per sequence.
    pub fn embed(&self, batch: &[&[u32]]) -> candle_core::Result<Vec<Vec<f32>>> {
        let inputs: Vec<Input> = batch.iter().map(|ids| Input::single(ids)).collect();
        self.run(&inputs)
    }

    /// Runs a batch: one pooled (unnormalised) vector per sequence, or a head's logits; inside
    /// `forward` and then `pooling` (or `head`) tracing spans, and `dense` for the layers after.
    pub fn run(&self, inputs: &[Input]) -> candle_core::Result<Vec<Vec<f32>>> {
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        let batch: Vec<&[u32]> = inputs.iter().map(|i| i.ids).collect();
        let batch = &batch[..];
        // Spans only inside a caller's span (a batch): warm-up passes are not traces of their own.
        let traced = !tracing::Span::current().is_none();
        let step = |span: fn() -> tracing::Span| traced.then(|| span().entered());
        let forward = step(|| tracing::info_span!("forward"));
        let pooled = match &self.arch.forward {
            Forward::Packed(stack) => {
                let seconds: Vec<usize> = inputs.iter().map(|i| i.second).collect();
                let hidden = stack.forward_segments(batch, Some(&seconds))?;
                let hidden = hidden.flatten_all()?.to_vec1::<f32>()?;
                drop(forward);
                let lens: Vec<usize> = batch.iter().map(|s| s.len()).collect();
                if let Some(head) = &self.head {
                    let _head = step(|| tracing::info_span!("head"));
                    return Ok(head.forward_packed(&hidden, stack.hidden(), &lens));
                }
                let _pooling = step(|| tracing::info_span!("pooling"));
                pool_packed(&hidden, stack.hidden(), &lens, &self.pooling)
            }
            Forward::Padded(model) => {
                let pad = self.arch.config.pad_token_id;
                let (ids, mask) = pad_batch(batch, pad, &self.device)?;
                let hidden = model.forward(&ids, &mask)?;
                drop(forward);
                let _pooling = step(|| tracing::info_span!("pooling"));
                let pooled = pool(&hidden, &mask, &self.pooling)?;
                pooled.to_device(&Device::Cpu)?.to_vec2()?
            }
        };
        let _dense = (!self.dense.is_empty())
            .then(|| step(|| tracing::info_span!("dense")))
            .flatten();
        Ok(pooled
            .into_iter()
            .map(|v| self.dense.iter().fold(v, |v, dense| dense.forward(&v)))
            .collect())
    }
}

pub(super) fn read_config(dir: &Path) -> anyhow::Result<serde_json::Value> {
    let path = dir.join("config.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// The family `dir`'s `config.json` names, and its `model_type`.
pub fn family_of(dir: &Path) -> anyhow::Result<(super::arch::Family, String)> {
    let json = read_config(dir)?;
    super::arch::Family::detect(&json)
        .with_context(|| format!("{}", dir.join("config.json").display()))
}

/// Builds `[batch, longest]` id and mask tensors, padding on the right with `pad_id`: the input
/// of candle-transformers' models (also used by tests and benches as the reference).
pub fn pad_batch(
    batch: &[&[u32]],
    pad_id: u32,
    device: &Device,
) -> candle_core::Result<(Tensor, Tensor)> {
    let longest = batch.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut ids = Vec::with_capacity(batch.len() * longest);
    let mut mask = Vec::with_capacity(batch.len() * longest);
    for seq in batch {
        ids.extend_from_slice(seq);
        ids.extend(std::iter::repeat_n(pad_id, longest - seq.len()));
        mask.extend(std::iter::repeat_n(1u32, seq.len()));
        mask.extend(std::iter::repeat_n(0u32, longest - seq.len()));
    }
    let shape = (batch.len(), longest);
    Ok((
        Tensor::from_vec(ids, shape, device)?,
        Tensor::from_vec(mask, shape, device)?,
    ))
}
