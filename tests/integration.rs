//! The one integration test binary: every black-box suite spawns the real `inferd` binary on
//! 127.0.0.1:0 (see [`common`]) and talks to it as a client would. One folder per feature;
//! run one with a name filter, e.g. `cargo test --test integration dialects::`.

mod common;

mod api;
mod architectures;
mod batch_jobs;
mod batching;
mod canary_dialects;
mod connections;
mod deploy_metrics;
mod dialects;
mod durability;
mod frameworks;
mod gateway;
mod grpc;
mod index_graph;
mod lifecycle;
mod loading;
mod monitoring;
mod pgvector;
mod real_model;
mod recommend;
mod rerank;
mod shutdown;
mod strict_inputs;
mod traces;
