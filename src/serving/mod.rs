//! One loaded model version, ready to embed.
//!
//! - [`handle`]: [`ModelHandle`], one served version: its tokenizer pool, admission queue and
//!   batcher, and the only `embed` on a version;
//! - [`request`]: [`EmbedRequest`] (texts, truncation, normalize, deadline, prompt name and
//!   Matryoshka dimensions) and [`Embedded`];
//! - [`classify`]: [`ClassifyRequest`], texts and (query, text) pairs through a reranker's or
//!   classifier's head on the same queue and batcher, and [`Classified`] logits;
//! - [`inspect`], [`policy`], [`drift`]: what each input looks like, the input policy that may
//!   refuse it, and the drift monitor that compares recent inputs with a reference;
//! - [`cache`]: the LRU response cache consulted inside [`ModelHandle::embed`];
//! - [`model_ref`]: [`ModelRef`], the one parser and formatter of `name@version`;
//! - [`bytes_tensor`]: KServe's binary BYTES elements, for the REST and gRPC dialects;
//! - [`error`]: why a version could not embed, [`EmbedError`].
//!
//! Which version answers a request is `deploy`'s business; nothing here knows about canaries,
//! routes or HTTP.

pub mod bytes_tensor;
pub mod cache;
pub mod classify;
pub mod drift;
pub mod error;
pub mod handle;
pub mod inspect;
mod metrics;
pub mod model_ref;
pub mod policy;
pub mod request;

pub use classify::{Classified, ClassifyInput, ClassifyRequest};
pub use error::EmbedError;
use handle::batch_error;
pub use handle::{HandleConfig, ModelHandle};
pub use model_ref::ModelRef;
pub use request::{Deadline, EmbedRequest, Embedded, Priority};
