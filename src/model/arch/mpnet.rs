//! MPNet: BERT-style post-norm layers (`attention.attn.{q,k,v,o}`), positions after padding
//! id 1, no token types, and one bucketed relative-position bias table
//! (`encoder.relative_attention_bias`, `[buckets, heads]`) added to every layer's scores.

use anyhow::bail;
use candle_core::Result;
use serde_json::Value;

use super::config::{BertStyle, EncoderConfig};
use crate::model::blocks::{
    HeadLayout, Mlp, PositionIds, PostNormLayer, Precision, RelativeBias, SelfAttention, Stack,
    Weights,
};

/// transformers' MPNet buckets relative positions with these constants whatever the config
/// says (`compute_position_bias` is called with its defaults); the table must have the rows.
const BUCKETS: usize = 32;
const MAX_DISTANCE: i64 = 128;
/// `MPNetEmbeddings.padding_idx` is 1 in transformers, not the config's `pad_token_id`.
const PADDING_IDX: u32 = 1;

pub(super) fn config(json: &Value) -> anyhow::Result<EncoderConfig> {
    let c = BertStyle::read(json)?;
    let rows = c.relative_attention_num_buckets.unwrap_or(BUCKETS);
    if rows < BUCKETS {
        bail!("relative_attention_num_buckets {rows} is below the {BUCKETS} buckets MPNet uses");
    }
    Ok(EncoderConfig {
        vocab_size: c.vocab_size,
        hidden: c.hidden_size,
        layers: c.num_hidden_layers,
        heads: c.num_attention_heads,
        intermediate: c.intermediate_size,
        max_positions: c.max_position_embeddings,
        type_vocab_size: 0,
        eps: c.layer_norm_eps,
        pad_token_id: c.pad_token_id.unwrap_or(PADDING_IDX),
        positions: PositionIds::AfterPadding { pad: PADDING_IDX },
        relative_buckets: Some(rows),
    })
}

pub(super) fn packed(w: &Weights, c: &EncoderConfig, precision: Precision) -> Result<Stack> {
    let rows = c.relative_buckets.unwrap_or(BUCKETS);
    let table = w.vector((rows, c.heads), "encoder.relative_attention_bias.weight")?;
    let relative = RelativeBias::new(c.heads, c.max_len(), |head, distance| {
        table[bucket(distance) * c.heads + head]
    });
    let layers = (0..c.layers)
        .map(|i| layer(&w.pp(format!("encoder.layer.{i}")), c))
        .collect::<Result<_>>()?;
    Ok(Stack {
        embeddings: super::bert::embeddings(&w.pp("embeddings"), c, false)?,
        layers,
        relative: Some(relative),
        precision,
    })
}

/// transformers' `MPNetEncoder.relative_position_bucket` for `distance = key - query`: the
/// sign picks a half of the buckets, small distances get one bucket each, larger ones
/// logarithmic buckets up to `MAX_DISTANCE`.
pub(super) fn bucket(distance: i64) -> usize {
    let half = BUCKETS / 2;
    let n = -distance;
    let mut ret = if n < 0 { half } else { 0 };
    let n = n.unsigned_abs() as usize;
    let exact = half / 2;
    if n < exact {
        return ret + n;
    }
    let scaled = (n as f32 / exact as f32).ln() / (MAX_DISTANCE as f32 / exact as f32).ln()
        * (half - exact) as f32;
    ret += (exact + scaled as usize).min(half - 1);
    ret
}

fn layer(w: &Weights, c: &EncoderConfig) -> Result<PostNormLayer> {
    let (h, attn) = (c.hidden, w.pp("attention"));
    let (attn_block, attn_bias) = SelfAttention::load(
        &attn.pp("attn"),
        ["q", "k", "v"],
        &attn.pp("attn").pp("o"),
        h,
        HeadLayout::multi_head(h, c.heads),
    )?;
    let (mlp, mlp_bias) = Mlp::gelu(
        &w.pp("intermediate").pp("dense"),
        &w.pp("output").pp("dense"),
        h,
        c.intermediate,
    )?;
    Ok(PostNormLayer {
        attn: attn_block,
        attn_norm: attn.pp("LayerNorm").layer_norm(h, c.eps, attn_bias)?,
        mlp,
        mlp_norm: w
            .pp("output")
            .pp("LayerNorm")
            .layer_norm(h, c.eps, mlp_bias)?,
    })
}

#[cfg(test)]
mod tests {
    use super::bucket;

    /// Values of transformers' `relative_position_bucket` (num_buckets 32, max_distance 128).
    #[test]
    fn buckets_match_transformers() {
        let cases = [
            (0, 0),
            (1, 17),
            (-1, 1),
            (7, 23),
            (-7, 7),
            (8, 24),
            (-8, 8),
            (12, 25),
            (-20, 10),
            (-64, 14),
            (127, 31),
            (-200, 15),
            (500, 31),
        ];
        for (distance, want) in cases {
            assert_eq!(bucket(distance), want, "distance {distance}");
        }
    }
}
