//! inferd: one process that loads an embedding, reranker or classifier model once and serves it
//! over HTTP and gRPC through a bounded queue and a dynamic batcher.
//!
//! The crate is layered: each top-level module imports only modules below it, and the
//! leaves import nothing from the crate (`layering` tests enforce it). A request reads
//! top-down: [`http`] validates and routes, [`deploy`] picks the version (canary, shadow,
//! pinned), [`serving`] embeds on that version (cache, tokenizer pool), [`batching`] admits,
//! queues and batches, and [`model`] computes.
//!
//! ```text
//! main ─▶ app ─▶ http ─▶ deploy ─▶ serving ─▶ batching ─▶ model (with its kernels)
//!          │       │ │       ▲        ▲ ▲                   ▲
//!          │       │ └▶ jobs ┘        │ │                   │
//!          │       └──▶ index ────────┘ └── (index build)   │
//!          └─▶ cli ─▶ (model::device, index::Search, telemetry::LogFormat value types) ┘
//! app ─▶ grpc ─▶ deploy, serving   (beside http: neither imports the other)
//! every layer ─▶ telemetry, auth; jobs, index, deploy ─▶ journal   (leaves: import nothing)
//! ```
//!
//! - [`app`]: the composition root ([`serve`], [`build_index`]), secrets, shutdown;
//! - [`cli`]: clap types only; [`http`]: everything HTTP, one folder per dialect;
//! - [`grpc`]: the gRPC listener (`tei.v1`, KServe v2, health, reflection), beside [`http`] on
//!   the same state;
//! - [`jobs`]: the Batch API's domain (files, batches, webhooks), served by [`http`];
//! - [`deploy`]: registry, canary, shadow, promotion, rollback, audit log;
//! - [`index`]: item indexes (beside `deploy`: it embeds through [`serving`]);
//! - [`serving`]: one loaded version, its typed [`serving::EmbedRequest`] and cache;
//! - [`batching`], [`model`]: the queue and the model itself;
//! - [`auth`] (API-key parsing and comparison), [`telemetry`] (metric names, recorder, logs, OTLP
//!   traces), [`journal`] (durable append-only logs: the index WAL, the audit log, the batch
//!   journal).
//!
//! [`serve`] wires them together for a given listener and shutdown signal, so tests can run it
//! on port 0.

pub mod allocator;
pub mod app;
pub mod auth;
pub mod batching;
pub mod cli;
pub mod deploy;
pub mod grpc;
pub mod http;
pub mod index;
pub mod jobs;
pub mod journal;
pub mod model;
pub mod serving;
pub mod telemetry;

#[cfg(test)]
mod layering;

pub use app::{build_index, serve};
