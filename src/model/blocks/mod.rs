//! The packed CPU building blocks every architecture composes: all tokens of a batch in one
//! `[tokens, hidden]` buffer, no padding, weights laid out for [`super::kernels`] once at load.
//!
//! | block | today | where the next families plug in |
//! |---|---|---|
//! | [`Embeddings`] | word + absolute position (+ token type 0) rows, positions from 0 or after `pad_token_id` ([`PositionIds`]), LayerNorm | rotary families keep only the word rows ([`Embeddings::positions`] `None`, no norm) |
//! | [`SelfAttention`] | fused QKV projection with bias, [`HeadLayout`] heads, [`Scores`] (MPNet's [`RelativeBias`]) | grouped-query heads: `HeadLayout::kv_heads`; rotary with a per-layer base: a step rotating Q and K in the QKV buffer between the projection and [`kernels::attention`]; causal and sliding-window masks: fields of [`Scores`] |
//! | [`Mlp`] | GELU-erf up/down projection | GeGLU and SwiGLU: variants with a gated up-projection |
//! | [`Norm`] | LayerNorm fused with the residual add and the producing projection's bias | RMSNorm with or without bias: a variant |
//! | [`PostNormLayer`] | BERT-style layer: `x = LN(x + attn(x)); x = LN(x + mlp(x))` | pre-norm families add a `PreNormLayer` from the same blocks |
//! | [`Stack`] | embeddings, layers, shared relative bias, runs whole sequences in token groups | a final norm after the layers (ModernBERT, Qwen3) |
//!
//! Blocks know nothing of configs or weight names: each family in [`super::arch`] reads its
//! config, finds its tensors and hands them to these constructors. Heads after the encoder
//! (pooling, dense layers, classifiers) are not here either: see [`super::pooling`] and
//! [`super::sentence_transformers`].

mod attention;
mod embeddings;
mod layer;
mod mlp;
mod stack;
mod weights;

pub use attention::SelfAttention;
pub use embeddings::{Embeddings, PositionIds};
pub use layer::PostNormLayer;
pub use mlp::Mlp;
pub use stack::Stack;
pub use weights::{Norm, Weights};

#[cfg(doc)]
use super::kernels;
pub use super::kernels::{HeadLayout, Precision, RelativeBias, Scores};
