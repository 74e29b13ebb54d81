//! The packed CPU building blocks every architecture composes: all tokens of a batch in one
//! `[tokens, hidden]` buffer, no padding, weights laid out for [`super::kernels`] once at load.
//!
//! | block | today | where the next families plug in |
//! |---|---|---|
//! | [`Embeddings`] | word + absolute position (+ token type 0) rows, positions from 0 or after `pad_token_id` ([`PositionIds`]), LayerNorm | rotary families keep only the word rows ([`Embeddings::positions`] `None`; ModernBERT keeps the norm) |
//! | [`SelfAttention`] | fused QKV projection with or without bias, [`HeadLayout`] heads (grouped-query: `kv_heads`; any head width), [`Scores`] (MPNet's [`RelativeBias`]), per-head q/k RMSNorms and rotary embeddings with a per-layer base (`kernels::RotaryStep`, applied to Q and K between the projection and [`kernels::attention`]), a per-layer sliding window or causal mask | |
//! | [`Mlp`] | GELU-erf up/down projection; gated (GeGLU, SwiGLU) from one fused up-projection | |
//! | [`Norm`] | LayerNorm (with or without bias) or RMSNorm, fused with the residual add and the producing projection's bias | |
//! | [`Layer`] | [`PostNormLayer`] (BERT-style: `x = LN(x + attn(x)); x = LN(x + mlp(x))`) or [`PreNormLayer`] (`x += attn(N(x)); x += mlp(N(x))`, ModernBERT, Qwen3) | |
//! | [`Stack`] | embeddings, layers, shared relative bias, an optional final norm; runs whole sequences in token groups | |
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
pub use layer::{Layer, PostNormLayer, PreNormLayer};
pub use mlp::Mlp;
pub use stack::Stack;
pub use weights::{Norm, Weights};

#[cfg(doc)]
use super::kernels;
pub use super::kernels::{HeadLayout, Precision, RelativeBias, Scores};
