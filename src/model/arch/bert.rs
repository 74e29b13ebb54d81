//! BERT and the RoBERTa family (RoBERTa, XLM-RoBERTa, CamemBERT): the same layers; RoBERTa
//! positions start after `pad_token_id` and its single token type is always 0.

use candle_core::Result;
use serde_json::Value;

use super::{
    config::{BertStyle, EncoderConfig},
    Family,
};
use crate::model::blocks::{
    Embeddings, HeadLayout, Layer, Mlp, PositionIds, PostNormLayer, Precision, SelfAttention,
    Stack, Weights,
};

/// A tensor every checkpoint of these families has, to find its prefix.
pub(super) const PROBE: &str = "embeddings.word_embeddings.weight";

pub(super) fn config(json: &Value, family: Family) -> anyhow::Result<EncoderConfig> {
    let c = BertStyle::read(json)?;
    let (positions, pad) = match family {
        Family::Roberta => {
            let pad = c.pad_token_id.unwrap_or(1);
            (PositionIds::AfterPadding { pad }, pad)
        }
        _ => (PositionIds::FromZero, c.pad_token_id.unwrap_or(0)),
    };
    Ok(c.encoder(positions, pad, c.type_vocab_size.unwrap_or(2).max(1)))
}

pub(super) fn packed(w: &Weights, c: &EncoderConfig, precision: Precision) -> Result<Stack> {
    let layers = (0..c.layers)
        .map(|i| layer(&w.pp(format!("encoder.layer.{i}")), c).map(Layer::Post))
        .collect::<Result<_>>()?;
    Ok(Stack {
        embeddings: embeddings(&w.pp("embeddings"), c, true)?,
        layers,
        relative: None,
        final_norm: None,
        precision,
    })
}

/// Word + position (+ token type 0 when `token_types`) rows and the embedding LayerNorm, under
/// BERT's names (shared by RoBERTa, MPNet and DistilBERT). With two or more token types, the
/// difference of type 1's row to type 0's is kept for a sentence pair's second segment.
pub(super) fn embeddings(w: &Weights, c: &EncoderConfig, token_types: bool) -> Result<Embeddings> {
    let h = c.hidden;
    let word = w.vector((c.vocab_size, h), "word_embeddings.weight")?;
    let mut positions = w.tensor((c.max_positions, h), "position_embeddings.weight")?;
    let mut second_type = None;
    if token_types {
        let types = w.tensor((c.type_vocab_size, h), "token_type_embeddings.weight")?;
        positions = positions.broadcast_add(&types.narrow(0, 0, 1)?)?;
        if c.type_vocab_size >= 2 {
            let delta = (types.narrow(0, 1, 1)? - types.narrow(0, 0, 1)?)?;
            second_type = Some(Weights::flat(&delta)?);
        }
    }
    let positions = Weights::flat(&positions)?;
    Ok(Embeddings {
        word,
        positions: Some((positions, c.positions)),
        norm: Some(w.pp("LayerNorm").layer_norm(h, c.eps, vec![0.0; h])?),
        hidden: h,
        second_type,
    })
}

fn layer(w: &Weights, c: &EncoderConfig) -> Result<PostNormLayer> {
    let attn = w.pp("attention");
    let names = AttentionNames {
        qkv: attn.pp("self"),
        names: ["query", "key", "value"],
        out: attn.pp("output").pp("dense"),
        norm: attn.pp("output").pp("LayerNorm"),
    };
    post_norm_layer(w, c, names)
}

/// Where a post-norm layer's attention weights are (BERT's and MPNet's names differ there only).
pub(super) struct AttentionNames<'a> {
    pub qkv: Weights<'a>,
    pub names: [&'static str; 3],
    pub out: Weights<'a>,
    pub norm: Weights<'a>,
}

/// A post-norm layer with attention at `attn` and BERT's MLP names (`intermediate.dense`,
/// `output.dense`, `output.LayerNorm`) under `w`.
pub(super) fn post_norm_layer(
    w: &Weights,
    c: &EncoderConfig,
    attn: AttentionNames,
) -> Result<PostNormLayer> {
    let h = c.hidden;
    let layout = HeadLayout::multi_head(h, c.heads);
    let (attn_block, attn_bias) = SelfAttention::load(&attn.qkv, attn.names, &attn.out, h, layout)?;
    let (mlp, mlp_bias) = Mlp::gelu(
        &w.pp("intermediate").pp("dense"),
        &w.pp("output").pp("dense"),
        h,
        c.intermediate,
    )?;
    Ok(PostNormLayer {
        attn: attn_block,
        attn_norm: attn.norm.layer_norm(h, c.eps, attn_bias)?,
        mlp,
        mlp_norm: w
            .pp("output")
            .pp("LayerNorm")
            .layer_norm(h, c.eps, mlp_bias)?,
    })
}
