//! MPNet: BERT-style post-norm layers (`attention.attn.{q,k,v,o}`), positions after padding
//! id 1, no token types, and one bucketed relative-position bias table
//! (`encoder.relative_attention_bias`, `[buckets, heads]`) added to every layer's scores.

use anyhow::bail;
use candle_core::Result;
use serde_json::Value;

use super::{
    bert::{post_norm_layer, AttentionNames},
    config::{BertStyle, EncoderConfig},
};
use crate::model::blocks::{
    Layer, PositionIds, PostNormLayer, Precision, RelativeBias, Stack, Weights,
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
    let positions = PositionIds::AfterPadding { pad: PADDING_IDX };
    Ok(EncoderConfig {
        relative_buckets: Some(rows),
        ..c.encoder(positions, c.pad_token_id.unwrap_or(PADDING_IDX), 0)
    })
}

pub(super) fn packed(w: &Weights, c: &EncoderConfig, precision: Precision) -> Result<Stack> {
    let rows = c.relative_buckets.unwrap_or(BUCKETS);
    let table = w.vector((rows, c.heads), "encoder.relative_attention_bias.weight")?;
    let relative = RelativeBias::new(c.heads, c.max_len(), |head, distance| {
        table[bucket(distance) * c.heads + head]
    });
    let layers = (0..c.layers)
        .map(|i| layer(&w.pp(format!("encoder.layer.{i}")), c).map(Layer::Post))
        .collect::<Result<_>>()?;
    Ok(Stack {
        embeddings: super::bert::embeddings(&w.pp("embeddings"), c, false)?,
        layers,
        relative: Some(relative),
        final_norm: None,
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
    let attn = w.pp("attention");
    let names = AttentionNames {
        qkv: attn.pp("attn"),
        names: ["q", "k", "v"],
        out: attn.pp("attn").pp("o"),
        norm: attn.pp("LayerNorm"),
    };
    post_norm_layer(w, c, names)
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
