//! The seam between batch jobs and the API they batch: an [`Endpoint`] runs one request line's
//! body on the version a batch was routed to, exactly as the synchronous route would, and says
//! what to write for it. `http` implements it per URL (`/v1/embeddings` today; a rerank
//! endpoint plugs in the same way), so request shapes, limits and error bodies have one home and
//! this layer never parses a dialect.

use std::{collections::BTreeMap, future::Future, pin::Pin, sync::Arc};

use serde_json::Value;

use crate::deploy::{DeployError, Routed};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What one request got.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// An HTTP answer: a 2xx goes to the output file, anything else to the error file.
    /// `tokens` counts the input tokens it used.
    Answered {
        status: u16,
        body: Value,
        tokens: usize,
    },
    /// The service is busy (queue full, model loading): retried later, never written.
    Busy,
    /// A server fault: retried a few times, then written as this answer.
    Fault { status: u16, body: Value },
}

/// One batchable URL.
pub trait Endpoint: Send + Sync {
    /// The request lines' `url` and the batch's `endpoint`, e.g. `/v1/embeddings`.
    fn url(&self) -> &'static str;

    /// Runs `body` on `routed` at background priority.
    fn call<'a>(&'a self, routed: &'a Routed, body: Value) -> BoxFuture<'a, Outcome>;

    /// The answer to a request whose model could not be routed (unknown or unloaded).
    fn unroutable(&self, err: &DeployError) -> Outcome;
}

/// Every endpoint a batch may name, by URL.
#[derive(Clone, Default)]
pub struct Endpoints(BTreeMap<&'static str, Arc<dyn Endpoint>>);

impl Endpoints {
    pub fn with(mut self, endpoint: Arc<dyn Endpoint>) -> Self {
        self.0.insert(endpoint.url(), endpoint);
        self
    }

    pub fn get(&self, url: &str) -> Option<Arc<dyn Endpoint>> {
        self.0.get(url).cloned()
    }

    /// The URLs, for the message refusing another.
    pub fn urls(&self) -> Vec<&'static str> {
        self.0.keys().copied().collect()
    }
}
