//! A padding-free BERT encoder for the CPU: every token of a batch sits in one packed
//! `[tokens, hidden]` buffer, so no work is spent on padding. Projections, attention, GELU-erf
//! and the residual LayerNorms are the rayon kernels in [`super::kernels`]; projection weights
//! are laid out for them (and Q, K, V fused) once at load.
//!
//! It owns the BERT forward only: no pooling, no tokenising, no devices other than the CPU (on
//! CUDA, keep candle-transformers' padded `BertModel`). Reads the same safetensors names as
//! `BertModel::load`.

use candle_core::{bail, DType, Device, Result, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{Config, HiddenAct};

use super::kernels::{self, AddLayerNorm, BiasGelu, Linear, Precision};

/// Whole sequences are run through all layers in groups of about this many tokens, which keeps
/// the intermediates cache-sized and out of fresh (page-faulting) allocations.
const GROUP_TOKENS: usize = 1024;

pub struct PackedBert {
    /// `[vocab, hidden]`.
    word: Vec<f32>,
    /// `[max_positions, hidden]`, with token type 0 already added.
    position: Vec<f32>,
    embed_norm: AddLayerNorm,
    layers: Vec<Layer>,
    hidden: usize,
    heads: usize,
    precision: Precision,
}

struct Layer {
    /// `[hidden, 3 * hidden]`: Q, K and V side by side, so one product projects all three.
    qkv: Linear,
    qkv_bias: Vec<f32>,
    /// `[hidden, hidden]`.
    attn_out: Linear,
    attn_norm: AddLayerNorm,
    /// `[hidden, intermediate]`.
    ffn_in: Linear,
    ffn_act: BiasGelu,
    /// `[intermediate, hidden]`.
    ffn_out: Linear,
    ffn_norm: AddLayerNorm,
}

impl PackedBert {
    /// Loads the weights; `precision` is the arithmetic of the projections and, where the CPU has
    /// AMX, of attention's two products (everything else is f32).
    pub fn load(vb: VarBuilder, config: &Config, precision: Precision) -> Result<Self> {
        if !vb.device().is_cpu() {
            bail!("packed encoder is CPU-only");
        }
        if config.hidden_act != HiddenAct::Gelu {
            bail!("packed encoder supports hidden_act \"gelu\" only");
        }
        let vb = [Some("bert"), config.model_type.as_deref()]
            .into_iter()
            .flatten()
            .map(|prefix| vb.pp(prefix))
            .find(|vb| vb.contains_tensor("embeddings.word_embeddings.weight"))
            .unwrap_or(vb);
        let (h, eps) = (config.hidden_size, config.layer_norm_eps as f32);
        let emb = vb.pp("embeddings");
        let word = flat(&emb.get((config.vocab_size, h), "word_embeddings.weight")?)?;
        let positions = emb.get(
            (config.max_position_embeddings, h),
            "position_embeddings.weight",
        )?;
        let types = emb.get((config.type_vocab_size, h), "token_type_embeddings.weight")?;
        let position = flat(&positions.broadcast_add(&types.narrow(0, 0, 1)?)?)?;
        let embed_norm = norm(emb.pp("LayerNorm"), vec![0.0; h], eps)?;
        let layers = (0..config.num_hidden_layers)
            .map(|i| Layer::load(vb.pp(format!("encoder.layer.{i}")), config, precision))
            .collect::<Result<_>>()?;
        Ok(Self {
            word,
            position,
            embed_norm,
            layers,
            hidden: h,
            heads: config.num_attention_heads,
            precision,
        })
    }

    /// Final hidden states of `seqs` packed as `[total tokens, hidden]`, sequence after sequence.
    pub fn forward(&self, seqs: &[&[u32]]) -> Result<Tensor> {
        let max_len = self.position.len() / self.hidden;
        let vocab = self.word.len() / self.hidden;
        for seq in seqs {
            if seq.len() > max_len {
                bail!(
                    "sequence of {} tokens exceeds {max_len} positions",
                    seq.len()
                );
            }
            if let Some(id) = seq.iter().find(|&&id| id as usize >= vocab) {
                bail!("token id {id} outside the vocabulary of {vocab}");
            }
        }
        let mut groups = Vec::new();
        let (mut first, mut tokens) = (0, 0);
        for (i, seq) in seqs.iter().enumerate() {
            if tokens > 0 && tokens + seq.len() > GROUP_TOKENS {
                groups.push(self.forward_group(&seqs[first..i])?);
                (first, tokens) = (i, 0);
            }
            tokens += seq.len();
        }
        groups.push(self.forward_group(&seqs[first..])?);
        if groups.len() == 1 {
            return Ok(groups.pop().expect("one group"));
        }
        Tensor::cat(&groups, 0)
    }

    /// All layers over one group of whole sequences.
    fn forward_group(&self, seqs: &[&[u32]]) -> Result<Tensor> {
        let lens: Vec<usize> = seqs.iter().map(|s| s.len()).collect();
        let h = self.hidden;
        let mut x = Vec::with_capacity(lens.iter().sum::<usize>() * h);
        for seq in seqs {
            for (p, &id) in seq.iter().enumerate() {
                let (w, pos) = (id as usize * h, p * h);
                let rows = self.word[w..w + h].iter().zip(&self.position[pos..pos + h]);
                x.extend(rows.map(|(w, p)| w + p));
            }
        }
        self.embed_norm.normalize(&mut x);
        let tokens = x.len() / h;
        let x = Tensor::from_vec(x, (tokens, h), &Device::Cpu)?;
        for layer in &self.layers {
            layer.forward(&x, &lens, self.heads, self.precision)?;
        }
        Ok(x)
    }
}

impl Layer {
    fn load(vb: VarBuilder, config: &Config, precision: Precision) -> Result<Self> {
        let (h, eps) = (config.hidden_size, config.layer_norm_eps as f32);
        let attn = vb.pp("attention");
        let qkv_names = ["query", "key", "value"].map(|n| attn.pp("self").pp(n));
        let qkv = qkv_names
            .iter()
            .map(|vb| vb.get((h, h), "weight"))
            .collect::<Result<Vec<_>>>()?;
        let qkv_bias = qkv_names
            .iter()
            .map(|vb| flat(&vb.get(h, "bias")?))
            .collect::<Result<Vec<_>>>()?
            .concat();
        let (attn_out, attn_bias) = dense(attn.pp("output").pp("dense"), h, h, precision)?;
        let i = config.intermediate_size;
        let (ffn_in, ffn_in_bias) = dense(vb.pp("intermediate").pp("dense"), h, i, precision)?;
        let (ffn_out, ffn_out_bias) = dense(vb.pp("output").pp("dense"), i, h, precision)?;
        Ok(Self {
            qkv: Linear::new(&transposed(&Tensor::cat(&qkv, 0)?)?, precision)?,
            qkv_bias,
            attn_out,
            attn_norm: norm(attn.pp("output").pp("LayerNorm"), attn_bias, eps)?,
            ffn_in,
            ffn_act: BiasGelu { bias: ffn_in_bias },
            ffn_out,
            ffn_norm: norm(vb.pp("output").pp("LayerNorm"), ffn_out_bias, eps)?,
        })
    }

    /// One encoder layer, updating the residual stream `x` in place.
    fn forward(
        &self,
        x: &Tensor,
        lens: &[usize],
        heads: usize,
        precision: Precision,
    ) -> Result<()> {
        let qkv = self.qkv.forward(x)?;
        let ctx = kernels::attention(&qkv, &self.qkv_bias, lens, heads, precision)?;
        drop(qkv);
        x.inplace_op2(&self.attn_out.forward(&ctx)?, &self.attn_norm)?;
        let inner = self.ffn_in.forward(x)?;
        inner.inplace_op1(&self.ffn_act)?;
        x.inplace_op2(&self.ffn_out.forward(&inner)?, &self.ffn_norm)
    }
}

/// A linear layer as `(weight, bias)`, ready for `x · w`.
fn dense(
    vb: VarBuilder,
    inputs: usize,
    outputs: usize,
    precision: Precision,
) -> Result<(Linear, Vec<f32>)> {
    let w = Linear::new(
        &transposed(&vb.get((outputs, inputs), "weight")?)?,
        precision,
    )?;
    Ok((w, flat(&vb.get(outputs, "bias")?)?))
}

fn transposed(w: &Tensor) -> Result<Tensor> {
    w.to_dtype(DType::F32)?.t()?.contiguous()
}

fn norm(vb: VarBuilder, bias: Vec<f32>, eps: f32) -> Result<AddLayerNorm> {
    let n = bias.len();
    Ok(AddLayerNorm {
        bias,
        gamma: flat(&vb.get(n, "weight")?)?,
        beta: flat(&vb.get(n, "bias")?)?,
        eps,
    })
}

fn flat(t: &Tensor) -> Result<Vec<f32>> {
    t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()
}

#[cfg(test)]
mod tests;
