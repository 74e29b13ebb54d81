//! The embedding model itself: BERT forward, then pooling. Pure compute: no queues, no HTTP.
//!
//! On the CPU the forward is [`PackedBert`]: all tokens of a batch in one `[tokens, hidden]`
//! buffer, no padding at all. On CUDA it is candle-transformers' `BertModel` on a batch padded to
//! its own longest sequence only (never a fixed length), with the attention mask keeping padding
//! out of attention and pooling. Normalisation is left to the caller: it is a per-request choice.

use std::path::Path;

use anyhow::Context;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config as BertConfig};

use super::{
    kernels::Precision,
    packed::PackedBert,
    pooling::{pool, pool_packed, PoolingMode},
};

/// Which forward implementation runs.
enum Backend {
    /// CPU: padding-free.
    Packed(PackedBert),
    /// CUDA: padded to the batch's longest sequence.
    Padded(BertModel),
}

pub struct Encoder {
    backend: Backend,
    pooling: Vec<PoolingMode>,
    pad_id: u32,
    hidden_size: usize,
    intermediate_size: usize,
    max_positions: usize,
    device: Device,
}

impl Encoder {
    pub fn load(
        dir: &Path,
        pooling: Vec<PoolingMode>,
        device: &Device,
        dtype: DType,
    ) -> anyhow::Result<Self> {
        let config_path = dir.join("config.json");
        let config: BertConfig = serde_json::from_str(
            &std::fs::read_to_string(&config_path)
                .with_context(|| format!("reading {}", config_path.display()))?,
        )
        .with_context(|| format!("{} is not a BERT config", config_path.display()))?;
        let weights = dir.join("model.safetensors");
        // SAFETY: the file is memory-mapped read-only; we rely on nobody truncating it while we
        // run, as every safetensors loader does.
        // On the CPU, bf16 applies to the matrix products only (the projections, and attention's
        // where AMX runs it); the rest of the forward is f32.
        let (load_dtype, precision) = match (device.is_cpu(), dtype) {
            (true, DType::BF16) => (DType::F32, Precision::Bf16),
            _ => (dtype, Precision::F32),
        };
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], load_dtype, device) }
            .with_context(|| format!("mapping {}", weights.display()))?;
        let backend = if device.is_cpu() {
            PackedBert::load(vb, &config, precision).map(Backend::Packed)
        } else {
            BertModel::load(vb, &config).map(Backend::Padded)
        }
        .with_context(|| format!("building BERT from {}", weights.display()))?;
        Ok(Self {
            backend,
            pooling,
            pad_id: config.pad_token_id as u32,
            hidden_size: config.hidden_size,
            intermediate_size: config.intermediate_size,
            max_positions: config.max_position_embeddings,
            device: device.clone(),
        })
    }

    /// Output vector length.
    pub fn dimensions(&self) -> usize {
        self.hidden_size * self.pooling.len()
    }

    /// Longest sequence the position embeddings allow.
    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    pub fn pooling(&self) -> &[PoolingMode] {
        &self.pooling
    }

    /// `2 · hidden + intermediate`: the sequence length at which a token's attention costs as
    /// much as its projections (see [`crate::batching::BatchLimits`]).
    pub fn attention_span(&self) -> usize {
        2 * self.hidden_size + self.intermediate_size
    }

    /// Whether batches cost their real tokens (packed) or sequences × longest (padded).
    pub fn is_packed(&self) -> bool {
        matches!(self.backend, Backend::Packed(_))
    }

    /// Embeds a batch of token-id sequences; one pooled (unnormalised) vector per sequence.
    pub fn embed(&self, batch: &[&[u32]]) -> candle_core::Result<Vec<Vec<f32>>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        match &self.backend {
            Backend::Packed(bert) => {
                let hidden = bert.forward(batch)?.flatten_all()?.to_vec1::<f32>()?;
                let lens: Vec<usize> = batch.iter().map(|s| s.len()).collect();
                Ok(pool_packed(&hidden, self.hidden_size, &lens, &self.pooling))
            }
            Backend::Padded(bert) => {
                let (ids, mask) = pad_batch(batch, self.pad_id, &self.device)?;
                let type_ids = ids.zeros_like()?;
                let hidden = bert.forward(&ids, &type_ids, Some(&mask))?;
                let pooled = pool(&hidden, &mask, &self.pooling)?;
                pooled.to_device(&Device::Cpu)?.to_vec2()
            }
        }
    }
}

/// Builds `[batch, longest]` id and mask tensors, padding on the right with `pad_id`: the input
/// of candle-transformers' `BertModel` (also used by tests and benches as the reference).
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
