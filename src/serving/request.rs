//! The one embedding request every caller builds, and its answer.
//!
//! Every route, dialect, `/recommend`, `/items`, index build and shadow copy states what it wants
//! the same way: texts, how to treat a text longer than the model's limit, whether to normalise,
//! and by when. Named fields instead of positional booleans; the deadline carries the budget it
//! was made from, so a timeout says how long the caller allowed.

use std::time::{Duration, Instant};

pub use crate::batching::Priority;
use crate::model::tokenizer::Truncation;

/// When a request must be answered by, and the budget that deadline came from.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    at: Instant,
    budget: Duration,
}

impl Deadline {
    /// `budget` from now.
    pub fn after(budget: Duration) -> Self {
        Self {
            at: Instant::now() + budget,
            budget,
        }
    }

    pub fn at(&self) -> Instant {
        self.at
    }

    /// The time the caller allowed, for the `deadline_exceeded` message.
    pub fn budget(&self) -> Duration {
        self.budget
    }
}

/// What to embed and how.
#[derive(Debug, Clone)]
pub struct EmbedRequest {
    pub texts: Vec<String>,
    pub truncation: Truncation,
    /// L2-normalise each vector.
    pub normalize: bool,
    pub deadline: Deadline,
    /// Interactive callers, or background work that fills only spare batch room.
    pub priority: Priority,
}

impl EmbedRequest {
    /// `texts` cut at the right end when too long and normalised: what item vectors, index
    /// builds and inferd's own defaults use. Dialects override either field.
    pub fn new(texts: Vec<String>, deadline: Deadline) -> Self {
        Self {
            texts,
            truncation: Truncation::Right,
            normalize: true,
            deadline,
            priority: Priority::Interactive,
        }
    }
}

/// The answer to one [`EmbedRequest`]: one vector per text, in order.
#[derive(Debug)]
pub struct Embedded {
    pub vectors: Vec<Vec<f32>>,
    /// Tokens computed for the request (cache hits add none).
    pub prompt_tokens: usize,
}
