//! inferd: one process that loads an embedding model once and serves it over HTTP through a
//! bounded queue and a dynamic batcher.
//!
//! The request path reads top-down: [`http`] validates and routes, [`registry`] finds the model,
//! [`batching`] admits, queues and batches, and [`model`] computes. [`serve`] wires them together
//! for a given listener and shutdown signal, so tests can run it on port 0.

pub mod app;
pub mod auth;
pub mod batching;
pub mod cli;
pub mod deploy;
pub mod http;
pub mod index;
pub mod model;
pub mod serving;
pub mod telemetry;

pub use app::{build_index, serve};
