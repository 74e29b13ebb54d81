//! Text → token ids, with the model's truncation and no padding.
//!
//! Hugging Face `tokenizer.json` files often carry a fixed padding and a truncation length meant
//! for training (all-MiniLM-L6-v2's pads and truncates to 128). Both are replaced here: padding is
//! off (the batcher pads per batch, to the batch's longest sequence only) and truncation follows
//! the sentence-transformers `max_seq_length`. Runs on the tokenizer pool, never on the async
//! runtime or the model thread.

use std::path::Path;

use anyhow::Context;
use tokenizers::{Encoding, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

/// One tokenized input: the ids the model worker needs, and what the input policy and drift
/// monitor read of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    pub ids: Vec<u32>,
    /// Whether truncation cut the input.
    pub truncated: bool,
    /// Tokens that are the tokenizer's unknown token.
    pub unknown: usize,
    /// Tokens the text gave (special tokens not counted).
    pub content: usize,
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

/// How a text longer than the model's limit is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truncation {
    /// Refuse it (`TokenizeError::TooLong`).
    Refuse,
    /// Keep the beginning, cut the end.
    Right,
    /// Keep the end, cut the beginning (TEI's `truncation_direction: "Left"`).
    Left,
}

impl Truncation {
    /// inferd's `truncate` flag: cut the end, or refuse.
    pub fn from_flag(truncate: bool) -> Self {
        if truncate {
            Self::Right
        } else {
            Self::Refuse
        }
    }
}

/// One token as `/tokenize` shows it: byte offsets into the input, `None` for special tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPiece {
    pub id: u32,
    pub text: String,
    pub special: bool,
    pub start: Option<usize>,
    pub stop: Option<usize>,
}

/// Three configurations of one tokenizer: `truncating` and `truncating_left` stop at the limit
/// (keeping the start or the end), `full` sees the whole text so a too-long input can be refused.
pub struct TextTokenizer {
    truncating: Tokenizer,
    truncating_left: Tokenizer,
    full: Tokenizer,
    max_length: usize,
    /// The unknown token's id; `None` for byte-level tokenizers, which have none.
    unk_id: Option<u32>,
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
        let truncate = |tokenizer: &mut Tokenizer, direction| {
            tokenizer
                .with_truncation(Some(TruncationParams {
                    max_length,
                    strategy: TruncationStrategy::LongestFirst,
                    stride: 0,
                    direction,
                }))
                .map(|_| ())
                .map_err(|e| anyhow::anyhow!("setting truncation: {e}"))
        };
        let mut truncating_left = tokenizer.clone();
        truncate(&mut truncating_left, TruncationDirection::Left)?;
        truncate(&mut tokenizer, TruncationDirection::Right)?;
        let unk_id = unknown_token_id(&tokenizer);
        Ok(Self {
            truncating: tokenizer,
            truncating_left,
            full,
            max_length,
            unk_id,
        })
    }

    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// Tokenizes one text. With `truncate` false, a text longer than the limit is an error
    /// rather than silently cut.
    pub fn encode(&self, text: &str, truncate: bool) -> Result<Tokens, TokenizeError> {
        self.encode_with(text, Truncation::from_flag(truncate))
    }

    /// Tokenizes one text, truncating as `truncation` says.
    pub fn encode_with(&self, text: &str, truncation: Truncation) -> Result<Tokens, TokenizeError> {
        let tokenizer = match truncation {
            Truncation::Right => &self.truncating,
            Truncation::Left => &self.truncating_left,
            Truncation::Refuse => &self.full,
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
        Ok(self.tokens(&encoding, Some(text), truncation))
    }

    /// `encoding`'s ids and counts; `text` is the one text it came from (`None` for a pair).
    fn tokens(&self, encoding: &Encoding, text: Option<&str>, truncation: Truncation) -> Tokens {
        let ids = encoding.get_ids().to_vec();
        let unknown = match self.unk_id {
            Some(unk) => ids.iter().filter(|&&id| id == unk).count(),
            None => 0,
        };
        let special = encoding
            .get_special_tokens_mask()
            .iter()
            .filter(|&&m| m != 0)
            .count();
        Tokens {
            truncated: self.was_cut(encoding, text, truncation),
            unknown,
            content: ids.len().saturating_sub(special),
            ids,
        }
    }

    /// Tokenizes a (query, text) pair as one sequence, the way the tokenizer's pair template
    /// says (`[CLS] a [SEP] b [SEP]` for BERT). Truncation cuts the longer of the two first.
    /// Returns the ids and where the second text's token type 1 starts (the length when the
    /// tokenizer gives one type only, as RoBERTa's do).
    pub fn encode_pair(
        &self,
        first: &str,
        second: &str,
        truncation: Truncation,
    ) -> Result<(Tokens, usize), TokenizeError> {
        let tokenizer = match truncation {
            Truncation::Right => &self.truncating,
            Truncation::Left => &self.truncating_left,
            Truncation::Refuse => &self.full,
        };
        let encoding = tokenizer
            .encode((first, second), true)
            .map_err(|e| TokenizeError::Failed(e.to_string()))?;
        if encoding.len() > self.max_length {
            return Err(TokenizeError::TooLong {
                tokens: encoding.len(),
                limit: self.max_length,
            });
        }
        let types = encoding.get_type_ids();
        let start = types.iter().position(|&t| t != 0).unwrap_or(types.len());
        if types[start..].iter().any(|&t| t != 1) {
            return Err(TokenizeError::Failed(
                "the tokenizer's pair template gives token types other than 0 then 1".into(),
            ));
        }
        Ok((self.tokens(&encoding, None, truncation), start))
    }

    /// Whether truncation cut the input: the encoding is at the limit and text remains beyond
    /// its last (or, cutting from the left, before its first) token. A pair (`text` `None`) at
    /// the limit counts as cut.
    fn was_cut(&self, encoding: &Encoding, text: Option<&str>, truncation: Truncation) -> bool {
        if truncation == Truncation::Refuse || encoding.len() < self.max_length {
            return false;
        }
        let Some(text) = text else {
            return true;
        };
        let spans = encoding
            .get_offsets()
            .iter()
            .zip(encoding.get_special_tokens_mask())
            .filter(|(_, &special)| special == 0)
            .map(|(span, _)| *span);
        let rest = match truncation {
            Truncation::Left => spans.map(|s| s.0).min().and_then(|start| text.get(..start)),
            _ => spans.map(|s| s.1).max().and_then(|end| text.get(end..)),
        };
        rest.is_some_and(|rest| !rest.trim().is_empty())
    }

    /// `text` up to the end of its `max_tokens`-th token (special tokens not counted): a
    /// document cut to a token budget, still as text.
    pub fn cut_to_tokens(&self, text: &str, max_tokens: usize) -> Result<String, TokenizeError> {
        let encoding = self
            .full
            .encode(text, false)
            .map_err(|e| TokenizeError::Failed(e.to_string()))?;
        let offsets = encoding.get_offsets();
        if offsets.len() <= max_tokens {
            return Ok(text.to_string());
        }
        let end = offsets[..max_tokens].iter().map(|o| o.1).max().unwrap_or(0);
        Ok(text.get(..end).unwrap_or(text).to_string())
    }

    /// Every token of `text`, untruncated, with its piece of the input (for `/tokenize`).
    pub fn pieces(
        &self,
        text: &str,
        add_special_tokens: bool,
    ) -> Result<Vec<TokenPiece>, TokenizeError> {
        let encoding = self
            .full
            .encode(text, add_special_tokens)
            .map_err(|e| TokenizeError::Failed(e.to_string()))?;
        let pieces = encoding
            .get_ids()
            .iter()
            .zip(encoding.get_tokens())
            .zip(encoding.get_offsets())
            .zip(encoding.get_special_tokens_mask())
            .map(|(((&id, token), &(start, stop)), &special)| {
                let special = special == 1;
                let slice = (!special).then(|| text.get(start..stop)).flatten();
                TokenPiece {
                    id,
                    text: slice.unwrap_or(token).to_string(),
                    special,
                    start: slice.map(|_| start),
                    stop: slice.map(|_| stop),
                }
            })
            .collect();
        Ok(pieces)
    }

    /// Token ids back to text. Ids outside the vocabulary are an error rather than dropped.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String, TokenizeError> {
        let vocab = self.full.get_vocab_size(true);
        if let Some(bad) = ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(TokenizeError::Failed(format!(
                "token id {bad} is outside the vocabulary of {vocab} tokens"
            )));
        }
        self.full
            .decode(ids, skip_special_tokens)
            .map_err(|e| TokenizeError::Failed(e.to_string()))
    }
}

/// The model's unknown token, read from its serialized form: WordPiece and WordLevel name it
/// `unk_token`, BPE may (`null` when byte-level), Unigram gives `unk_id`.
fn unknown_token_id(tokenizer: &Tokenizer) -> Option<u32> {
    let model = serde_json::to_value(tokenizer.get_model()).ok()?;
    if let Some(id) = model.get("unk_id").and_then(|v| v.as_u64()) {
        return u32::try_from(id).ok();
    }
    let token = model.get("unk_token")?.as_str()?;
    tokenizer.token_to_id(token)
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
        let cut = tok.encode("a b c a b", true).unwrap();
        assert_eq!((cut.ids, cut.truncated), (vec![1, 2, 3], true));
        assert!(!tok.encode("a b c", true).unwrap().truncated);
    }

    #[test]
    fn unknown_tokens_are_counted() {
        let tok = TextTokenizer::new(padded_tokenizer(), 8).unwrap();
        let tokens = tok.encode("a zz b yy", true).unwrap();
        assert_eq!(tokens.ids, vec![1, 0, 2, 0]);
        assert_eq!((tokens.unknown, tokens.content), (2, 4));
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

    #[test]
    fn truncates_from_either_side() {
        let tok = TextTokenizer::new(padded_tokenizer(), 3).unwrap();
        let left = tok.encode_with("a b c a b", Truncation::Left).unwrap();
        assert_eq!((left.ids, left.truncated), (vec![3, 1, 2], true));
        assert!(
            !tok.encode_with(" a b c", Truncation::Left)
                .unwrap()
                .truncated
        );
    }

    #[test]
    fn cut_to_tokens_keeps_the_first_tokens_as_text() {
        let tok = TextTokenizer::new(padded_tokenizer(), 3).unwrap();
        assert_eq!(tok.cut_to_tokens("a  b c", 2).unwrap(), "a  b");
        assert_eq!(tok.cut_to_tokens("a b", 5).unwrap(), "a b");
    }

    #[test]
    fn pairs_truncate_the_longer_text_first() {
        use tokenizers::processors::template::TemplateProcessing;
        let mut inner = padded_tokenizer();
        let template = TemplateProcessing::builder()
            .try_single("$A")
            .unwrap()
            .try_pair("$A $B:1")
            .unwrap()
            .build()
            .unwrap();
        inner.with_post_processor(Some(template));
        let tok = TextTokenizer::new(inner, 4).unwrap();
        let (tokens, second) = tok.encode_pair("a", "b c a b", Truncation::Right).unwrap();
        assert_eq!((tokens.ids, second), (vec![1, 2, 3, 1], 1));
        let (tokens, second) = tok
            .encode_pair("a b c", "c b a", Truncation::Right)
            .unwrap();
        assert_eq!((tokens.ids, second), (vec![1, 2, 3, 2], 2));
        assert!(tok.encode_pair("a b c", "c", Truncation::Refuse).is_ok());
        assert!(matches!(
            tok.encode_pair("a b c", "c b", Truncation::Refuse),
            Err(TokenizeError::TooLong {
                tokens: 5,
                limit: 4
            })
        ));
    }

    #[test]
    fn pieces_point_into_the_text_and_decode_round_trips() {
        let tok = TextTokenizer::new(padded_tokenizer(), 3).unwrap();
        let pieces = tok.pieces("a  c", true).unwrap();
        assert_eq!(pieces.len(), 2);
        assert_eq!((pieces[1].id, pieces[1].text.as_str()), (3, "c"));
        assert_eq!((pieces[1].start, pieces[1].stop), (Some(3), Some(4)));
        assert!(tok.decode(&[1, 3], true).unwrap().contains('c'));
        assert!(tok.decode(&[99], true).is_err());
    }
}
