//! Scoring on one version: sentences and (query, text) pairs through a reranker's or
//! classifier's head, the same queue and batcher as embeddings.
//!
//! A [`ClassifyRequest`] holds inputs that are one text or a pair. A pair is tokenized as one
//! sequence by the tokenizer's pair template (token types where the model has them; RoBERTa-family
//! models use one type whatever the tokenizer says), truncated from the longer text first.
//! Sequences then take the embedding path's admission permit and batcher, so pairs of one request
//! are batched with every other request's by the same token budget. The answer is raw logits
//! (one per label); softmax or sigmoid is the dialect's choice. Nothing is cached: the response
//! cache keys single texts. Refused on an embedding model (and embeddings on a head:
//! [`ModelHandle::embed`]) with [`EmbedError::WrongModelKind`].

use std::sync::Arc;

use tracing::Instrument;

use super::{batch_error, inspect::TokenStats, EmbedError, ModelHandle};
use crate::{
    batching::Sequence,
    model::{
        heads::ModelKind,
        tokenizer::{TextTokenizer, TokenizeError, Truncation},
    },
    serving::{Deadline, Priority},
};

/// One input of a classifier: a text, or a (query, text) pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClassifyInput {
    Single(String),
    Pair(String, String),
}

impl ClassifyInput {
    fn bytes(&self) -> usize {
        match self {
            Self::Single(a) => a.len(),
            Self::Pair(a, b) => a.len() + b.len(),
        }
    }

    /// The text drift reads: the input, or a pair's second text (the document).
    fn scored_text(&self) -> &String {
        match self {
            Self::Single(a) | Self::Pair(_, a) => a,
        }
    }

    fn texts(&self) -> impl Iterator<Item = &str> {
        let (a, b) = match self {
            Self::Single(a) => (a.as_str(), None),
            Self::Pair(a, b) => (a.as_str(), Some(b.as_str())),
        };
        std::iter::once(a).chain(b)
    }
}

/// What to score and how.
#[derive(Debug, Clone)]
pub struct ClassifyRequest {
    pub inputs: Vec<ClassifyInput>,
    pub truncation: Truncation,
    pub deadline: Deadline,
    pub priority: Priority,
}

/// One row of logits per input, in order.
#[derive(Debug)]
pub struct Classified {
    pub logits: Vec<Vec<f32>>,
    pub prompt_tokens: usize,
}

impl ModelHandle {
    /// Refuses a request for `wanted` on a model of another kind, naming both.
    pub fn expect_kind(&self, wanted: &[ModelKind], route: &str) -> Result<(), EmbedError> {
        let kind = self.info.kind;
        if wanted.contains(&kind) {
            return Ok(());
        }
        let wanted: Vec<&str> = wanted.iter().map(|k| k.as_str()).collect();
        Err(EmbedError::WrongModelKind(format!(
            "model {} is a{} {} model; {route} needs a{} {} model",
            self.info.name,
            article(kind.as_str()),
            kind.as_str(),
            article(wanted[0]),
            wanted.join(" or ")
        )))
    }

    /// Runs a reranker's or classifier's head on every input: one logit per label each.
    #[tracing::instrument(name = "classify", skip_all, fields(
        model = %self.info.name, version = %self.info.version, inputs = req.inputs.len() as i64,
    ))]
    pub async fn classify(&self, req: ClassifyRequest) -> Result<Classified, EmbedError> {
        self.expect_kind(
            &[ModelKind::Reranker, ModelKind::Classifier],
            "scoring with a classification head",
        )?;
        self.check_inputs(&req.inputs)?;
        let permit = self.admit(req.priority)?;
        let ClassifyRequest {
            inputs,
            truncation,
            deadline,
            priority,
        } = req;
        let budget = deadline.budget();
        let run = async {
            let text_stats = self.text_stats(inputs.iter().map(ClassifyInput::scored_text));
            let tokenize = tracing::info_span!("tokenize", texts = inputs.len() as i64);
            let (sequences, token_stats) = self
                .tokenize_inputs(inputs, truncation)
                .instrument(tokenize)
                .await?;
            self.config
                .input_policy
                .check_tokens(self.counted(), &token_stats)?;
            let prompt_tokens = sequences.iter().map(|s| s.ids.len()).sum();
            if prompt_tokens > self.config.max_request_tokens {
                return Err(EmbedError::TooManyTokens {
                    tokens: prompt_tokens,
                    limit: self.config.max_request_tokens,
                });
            }
            let rx = self
                .batcher
                .submit(permit, sequences, false, deadline.at(), priority);
            let logits = match rx.await {
                Ok(Ok(logits)) => logits,
                Ok(Err(err)) => return Err(batch_error(err, budget)),
                Err(_) => return Err(batch_error(crate::batching::BatchError::WorkerGone, budget)),
            };
            if let Some(drift) = &self.drift {
                drift.record(&text_stats, &token_stats, &[]);
            }
            Ok(Classified {
                logits,
                prompt_tokens,
            })
        };
        tokio::time::timeout_at(deadline.at().into(), run)
            .await
            .unwrap_or(Err(EmbedError::DeadlineExceeded(budget)))
    }

    /// The input policy's text checks on every text of every input (a pair's both).
    fn check_inputs(&self, inputs: &[ClassifyInput]) -> Result<(), EmbedError> {
        let texts = inputs
            .iter()
            .enumerate()
            .flat_map(|(index, input)| input.texts().map(move |text| (index, text)));
        self.config.input_policy.check_texts(self.counted(), texts)
    }

    /// Tokenizes texts and pairs, small requests in place and larger ones on the pool.
    async fn tokenize_inputs(
        &self,
        inputs: Vec<ClassifyInput>,
        truncation: Truncation,
    ) -> Result<(Vec<Sequence>, Vec<TokenStats>), EmbedError> {
        let bytes: usize = inputs.iter().map(ClassifyInput::bytes).sum();
        let encode = move |tokenizer: &TextTokenizer| {
            inputs
                .iter()
                .enumerate()
                .map(|(index, input)| {
                    encode_input(tokenizer, input, truncation).map_err(|e| (index, e))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let result = if bytes <= super::handle::INLINE_TOKENIZE_BYTES {
            encode(&self.tokenizer)
        } else {
            self.with_tokenizer(encode).await?
        };
        let encoded = result.map_err(|(index, err)| match err {
            TokenizeError::TooLong { tokens, limit } => EmbedError::InputTooLong {
                index,
                tokens,
                limit,
            },
            TokenizeError::Failed(msg) => {
                EmbedError::InvalidInput(format!("input {index} could not be tokenized: {msg}"))
            }
        })?;
        Ok(encoded.into_iter().unzip())
    }
}

fn encode_input(
    tokenizer: &TextTokenizer,
    input: &ClassifyInput,
    truncation: Truncation,
) -> Result<(Sequence, TokenStats), TokenizeError> {
    match input {
        ClassifyInput::Single(text) => {
            let tokens = tokenizer.encode_with(text, truncation)?;
            let stats = TokenStats::of(&tokens);
            Ok((Sequence::from(Arc::<[u32]>::from(tokens.ids)), stats))
        }
        ClassifyInput::Pair(first, second) => {
            let (tokens, start) = tokenizer.encode_pair(first, second, truncation)?;
            let stats = TokenStats::of(&tokens);
            let sequence = Sequence {
                ids: tokens.ids.into(),
                second: start,
            };
            Ok((sequence, stats))
        }
    }
}

fn article(word: &str) -> &'static str {
    match word.as_bytes().first() {
        Some(b'a' | b'e' | b'i' | b'o' | b'u') => "n",
        _ => "",
    }
}
