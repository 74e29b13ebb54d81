//! One loaded model version ready to embed: its handle (tokenizer pool, queue, worker) and the
//! response cache.

pub mod cache;
pub mod handle;
