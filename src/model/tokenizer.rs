//! Text → token ids, with the model's truncation and no padding.
//!
//! Hugging Face `tokenizer.json` files often carry a fixed padding and a truncation length meant
//! for training (all-MiniLM-L6-v2's pads and truncates to 128). Both are replaced here: padding is
//! off (the batcher pads per batch, to the batch's longest sequence only) and truncation follows
//! the sentence-transformers `max_seq_length`. Runs on the tokenizer pool, never on the async
//! runtime or the model thread.

use std::path::Path;

use anyhow::Context;
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

/// One tokenized input: what the model worker needs and nothing more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    pub ids: Vec<u32>,
}

impl Tokens {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenizeError {
    #[error("input has {tokens} tokens, more than the limit of {limit}")]
    TooLong { tokens: usize, limit: usize },
    #[error("tokenizer failed: {0}")]
    Failed(String),
}

/// Two configurations of one tokenizer: `truncating` stops early at the limit (tokenizers skips
/// the rest of a long text), `full` sees the whole text so a too-long input can be refused.
pub struct TextTokenizer {
    truncating: Tokenizer,
    full: Tokenizer,
    max_length: usize,
}

impl TextTokenizer {
    /// Loads `tokenizer.json` and applies `max_length` as truncation, with padding off.
    pub fn load(path: &Path, max_length: usize) -> anyhow::Result<Self> {
        let tokenizer = Tokenizer::from_file(path)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("loading tokenizer {}", path.display()))?;
        Self::new(tokenizer, max_length)
    }

    pub fn new(mut tokenizer: Tokenizer, max_length: usize) -> anyhow::Result<Self> {
        tokenizer.with_padding(None);
        let mut full = tokenizer.clone();
        full.with_truncation(None)
            .map_err(|e| anyhow::anyhow!("clearing truncation: {e}"))?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| anyhow::anyhow!("setting truncation: {e}"))?;
        Ok(Self {
            truncating: tokenizer,
            full,
            max_length,
        })
    }

    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// Tokenizes one text. With `truncate` false, a text longer than the limit is an error
    /// rather than silently cut.
    pub fn encode(&self, text: &str, truncate: bool) -> Result<Tokens, TokenizeError> {
        let tokenizer = if truncate {
            &self.truncating
        } else {
            &self.full
        };
        let encoding = tokenizer
            .encode(text, true)
            .map_err(|e| TokenizeError::Failed(e.to_string()))?;
        if encoding.len() > self.max_length {
            return Err(TokenizeError::TooLong {
                tokens: encoding.len(),
                limit: self.max_length,
            });
        }
        Ok(Tokens {
            ids: encoding.get_ids().to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokenizers::models::wordlevel::WordLevel;
    use tokenizers::pre_tokenizers::whitespace::Whitespace;
    use tokenizers::PaddingParams;

    /// A word-level tokenizer with fixed padding to 8, like the pitfall in real tokenizer.json files.
    fn padded_tokenizer() -> Tokenizer {
        let vocab = [("[UNK]", 0), ("a", 1), ("b", 2), ("c", 3)]
            .into_iter()
            .map(|(w, i)| (w.to_string(), i))
            .collect();
        let model = WordLevel::builder()
            .vocab(vocab)
            .unk_token("[UNK]".into())
            .build()
            .unwrap();
        let mut tok = Tokenizer::new(model);
        tok.with_pre_tokenizer(Some(Whitespace {}));
        tok.with_padding(Some(PaddingParams {
            strategy: tokenizers::PaddingStrategy::Fixed(8),
            ..Default::default()
        }));
        tok
    }

    #[test]
    fn fixed_padding_is_removed() {
        let tok = TextTokenizer::new(padded_tokenizer(), 4).unwrap();
        assert_eq!(tok.encode("a b", true).unwrap().ids, vec![1, 2]);
    }

    #[test]
    fn truncates_to_max_length() {
        let tok = TextTokenizer::new(padded_tokenizer(), 3).unwrap();
        assert_eq!(tok.encode("a b c a b", true).unwrap().ids, vec![1, 2, 3]);
    }

    #[test]
    fn refuses_long_input_without_truncation() {
        let tok = TextTokenizer::new(padded_tokenizer(), 3).unwrap();
        assert_eq!(
            tok.encode("a b c a b", false),
            Err(TokenizeError::TooLong {
                tokens: 5,
                limit: 3
            })
        );
        assert_eq!(tok.encode("a b c", false).unwrap().len(), 3);
    }
}
