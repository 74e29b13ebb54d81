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

use super::kernels::{self, AddLayerNorm, BiasGelu, Linear};

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
    pub fn load(vb: VarBuilder, config: &Config) -> Result<Self> {
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
            .map(|i| Layer::load(vb.pp(format!("encoder.layer.{i}")), config))
            .collect::<Result<_>>()?;
        Ok(Self {
            word,
            position,
            embed_norm,
            layers,
            hidden: h,
            heads: config.num_attention_heads,
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
            layer.forward(&x, &lens, self.heads)?;
        }
        Ok(x)
    }
}

impl Layer {
    fn load(vb: VarBuilder, config: &Config) -> Result<Self> {
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
        let (attn_out, attn_bias) = dense(attn.pp("output").pp("dense"), h, h)?;
        let i = config.intermediate_size;
        let (ffn_in, ffn_in_bias) = dense(vb.pp("intermediate").pp("dense"), h, i)?;
        let (ffn_out, ffn_out_bias) = dense(vb.pp("output").pp("dense"), i, h)?;
        Ok(Self {
            qkv: Linear::new(&transposed(&Tensor::cat(&qkv, 0)?)?)?,
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
    fn forward(&self, x: &Tensor, lens: &[usize], heads: usize) -> Result<()> {
        let qkv = self.qkv.forward(x)?;
        let ctx = kernels::attention(&qkv, &self.qkv_bias, lens, heads)?;
        drop(qkv);
        x.inplace_op2(&self.attn_out.forward(&ctx)?, &self.attn_norm)?;
        let inner = self.ffn_in.forward(x)?;
        inner.inplace_op1(&self.ffn_act)?;
        x.inplace_op2(&self.ffn_out.forward(&inner)?, &self.ffn_norm)
    }
}

/// A linear layer as `(weight, bias)`, ready for `x · w`.
fn dense(vb: VarBuilder, inputs: usize, outputs: usize) -> Result<(Linear, Vec<f32>)> {
    let w = Linear::new(&transposed(&vb.get((outputs, inputs), "weight")?)?)?;
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
mod tests {
    use std::collections::HashMap;

    use candle_transformers::models::bert::BertModel;

    use super::*;

    fn tiny_config() -> Config {
        Config {
            vocab_size: 100,
            hidden_size: 32,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            intermediate_size: 64,
            max_position_embeddings: 80,
            ..Config::default()
        }
    }

    /// Random weights under BertModel's names, optionally behind a `bert.` prefix.
    fn tiny_weights(c: &Config, prefix: &str) -> Result<VarBuilder<'static>> {
        let (h, i) = (c.hidden_size, c.intermediate_size);
        let mut shapes: Vec<(String, Vec<usize>)> = vec![
            (
                "embeddings.word_embeddings.weight".into(),
                vec![c.vocab_size, h],
            ),
            (
                "embeddings.position_embeddings.weight".into(),
                vec![c.max_position_embeddings, h],
            ),
            (
                "embeddings.token_type_embeddings.weight".into(),
                vec![c.type_vocab_size, h],
            ),
        ];
        let mut dense = |name: String, o: usize, i: usize| {
            shapes.push((format!("{name}.weight"), vec![o, i]));
            shapes.push((format!("{name}.bias"), vec![o]));
        };
        dense("embeddings.LayerNorm".into(), h, 0);
        for l in 0..c.num_hidden_layers {
            let p = format!("encoder.layer.{l}");
            for n in ["query", "key", "value"] {
                dense(format!("{p}.attention.self.{n}"), h, h);
            }
            dense(format!("{p}.attention.output.dense"), h, h);
            dense(format!("{p}.attention.output.LayerNorm"), h, 0);
            dense(format!("{p}.intermediate.dense"), i, h);
            dense(format!("{p}.output.dense"), h, i);
            dense(format!("{p}.output.LayerNorm"), h, 0);
        }
        let mut map = HashMap::new();
        for (name, mut shape) in shapes {
            let is_norm_weight = name.ends_with("LayerNorm.weight");
            shape.retain(|&d| d > 0);
            let t = Tensor::randn(0f32, 0.4, shape, &Device::Cpu)?;
            let t = if is_norm_weight { (t + 1.0)? } else { t };
            map.insert(format!("{prefix}{name}"), t);
        }
        Ok(VarBuilder::from_tensors(map, DType::F32, &Device::Cpu))
    }

    /// Per-sequence `[len, hidden]` states from the padded, masked candle-transformers model.
    fn reference(vb: VarBuilder, c: &Config, seqs: &[&[u32]]) -> Result<Vec<Vec<Vec<f32>>>> {
        let bert = BertModel::load(vb, c)?;
        let longest = seqs.iter().map(|s| s.len()).max().unwrap_or(0);
        let (mut ids, mut mask) = (Vec::new(), Vec::new());
        for s in seqs {
            ids.extend(
                s.iter()
                    .copied()
                    .chain(std::iter::repeat_n(0, longest - s.len())),
            );
            mask.extend((0..longest).map(|p| u32::from(p < s.len())));
        }
        let shape = (seqs.len(), longest);
        let ids = Tensor::from_vec(ids, shape, &Device::Cpu)?;
        let mask = Tensor::from_vec(mask, shape, &Device::Cpu)?;
        let out = bert
            .forward(&ids, &ids.zeros_like()?, Some(&mask))?
            .to_vec3::<f32>()?;
        Ok(out
            .into_iter()
            .zip(seqs)
            .map(|(rows, s)| rows[..s.len()].to_vec())
            .collect())
    }

    fn cosine(a: &[f32], b: &[f32]) -> f64 {
        let dot = |x: &[f32], y: &[f32]| {
            x.iter()
                .zip(y)
                .map(|(x, y)| *x as f64 * *y as f64)
                .sum::<f64>()
        };
        dot(a, b) / (dot(a, a) * dot(b, b)).sqrt()
    }

    #[test]
    fn matches_padded_bert_model() -> Result<()> {
        let c = tiny_config();
        let lens = [7usize, 1, 80, 16, 33, 2];
        let seqs: Vec<Vec<u32>> = lens
            .iter()
            .enumerate()
            .map(|(s, &n)| {
                (0..n)
                    .map(|p| ((s * 31 + p * 7) % c.vocab_size) as u32)
                    .collect()
            })
            .collect();
        let seqs: Vec<&[u32]> = seqs.iter().map(|s| s.as_slice()).collect();
        for prefix in ["", "bert."] {
            let vb = tiny_weights(&c, prefix)?;
            let want = reference(vb.clone(), &c, &seqs)?;
            let got = PackedBert::load(vb, &c)?.forward(&seqs)?.to_vec2::<f32>()?;
            let want: Vec<Vec<f32>> = want.into_iter().flatten().collect();
            assert_eq!(got.len(), want.len());
            let (mut worst_cos, mut worst_abs) = (1f64, 0f32);
            for (g, w) in got.iter().zip(&want) {
                worst_cos = worst_cos.min(cosine(g, w));
                let abs = g
                    .iter()
                    .zip(w)
                    .map(|(g, w)| (g - w).abs())
                    .fold(0f32, f32::max);
                worst_abs = worst_abs.max(abs);
            }
            eprintln!("prefix {prefix:?}: worst cosine {worst_cos:.9}, max abs diff {worst_abs:e}");
            assert!(
                worst_cos >= 0.99999 && worst_abs < 1e-3,
                "{worst_cos} {worst_abs}"
            );
        }
        Ok(())
    }

    #[test]
    fn empty_and_out_of_range_inputs() -> Result<()> {
        let c = tiny_config();
        let bert = PackedBert::load(tiny_weights(&c, "")?, &c)?;
        assert_eq!(bert.forward(&[])?.dims(), &[0, 32]);
        assert_eq!(bert.forward(&[&[], &[3, 4]])?.dims(), &[2, 32]);
        assert!(bert.forward(&[&[100]]).is_err());
        assert!(bert.forward(&[&[1; 81]]).is_err());
        Ok(())
    }

    fn mean_pool(rows: &[Vec<f32>]) -> Vec<f32> {
        let mut acc = vec![0f32; rows[0].len()];
        for r in rows {
            acc.iter_mut().zip(r).for_each(|(a, v)| *a += v);
        }
        acc.iter().map(|a| a / rows.len() as f32).collect()
    }

    #[test]
    fn matches_bert_model_on_minilm() -> anyhow::Result<()> {
        let dir = std::path::Path::new("models/all-MiniLM-L6-v2");
        if !dir.join("model.safetensors").exists() {
            eprintln!("skipping: {} is absent", dir.display());
            return Ok(());
        }
        let c: Config = serde_json::from_str(&std::fs::read_to_string(dir.join("config.json"))?)?;
        let mut tok = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(anyhow::Error::msg)?;
        tok.with_padding(None);
        tok.with_truncation(Some(tokenizers::TruncationParams {
            max_length: 256,
            ..Default::default()
        }))
        .map_err(anyhow::Error::msg)?;
        let mut texts = Vec::new();
        for file in ["short.txt", "long.txt"] {
            let data = std::fs::read_to_string(format!("benches/data/{file}"))?;
            texts.extend(data.lines().take(10).map(str::to_owned));
        }
        let ids: Vec<Vec<u32>> = texts
            .iter()
            .map(|t| Ok(tok.encode(t.as_str(), true)?.get_ids().to_vec()))
            .collect::<tokenizers::Result<_>>()
            .map_err(anyhow::Error::msg)?;
        let seqs: Vec<&[u32]> = ids.iter().map(|s| s.as_slice()).collect();
        // SAFETY: read-only map of a test fixture nobody rewrites while the test runs.
        let vb = unsafe {
            VarBuilder::from_mmaped_safetensors(
                &[dir.join("model.safetensors")],
                DType::F32,
                &Device::Cpu,
            )?
        };
        let want = reference(vb.clone(), &c, &seqs)?;
        let got = PackedBert::load(vb, &c)?.forward(&seqs)?.to_vec2::<f32>()?;
        let mut start = 0;
        let mut worst = 1f64;
        for (s, w) in seqs.iter().zip(&want) {
            let g = &got[start..start + s.len()];
            start += s.len();
            worst = worst.min(cosine(&mean_pool(g), &mean_pool(w)));
        }
        eprintln!(
            "MiniLM: {} texts, worst mean-pooled cosine {worst:.9}",
            seqs.len()
        );
        assert!(worst >= 0.99999, "{worst}");
        Ok(())
    }
}
