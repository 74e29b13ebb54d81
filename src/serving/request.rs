//! The one embedding request every caller builds, and its answer.
//!
//! Every route, dialect, `/recommend`, `/items`, index build and shadow copy states what it wants
//! the same way: texts, how to treat a text longer than the model's limit, whether to normalise,
//! by when, which sentence-transformers prompt to prepend and whether to cut the vectors short
//! (Matryoshka). Named fields instead of positional booleans; the deadline carries the budget it
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
    /// A sentence-transformers prompt of the model (`prompts` in its
    /// `config_sentence_transformers.json`), prepended to every text; `None`: the model's
    /// `default_prompt_name`, if any. Kept as a name so that a shadow candidate resolves it with
    /// its own prompts, as it would once promoted.
    pub prompt_name: Option<String>,
    /// Matryoshka truncation: keep the first N values of each vector (renormalised when
    /// `normalize`); `None`: the model's full size.
    pub dimensions: Option<usize>,
    /// Interactive callers, or background work that fills only spare batch room.
    pub priority: Priority,
}

impl EmbedRequest {
    /// `texts` cut at the right end when too long and normalised, with the model's default
    /// prompt and full dimensions: what item vectors, index builds and inferd's own defaults
    /// use. Dialects override any field.
    pub fn new(texts: Vec<String>, deadline: Deadline) -> Self {
        Self {
            texts,
            truncation: Truncation::Right,
            normalize: true,
            deadline,
            prompt_name: None,
            dimensions: None,
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
