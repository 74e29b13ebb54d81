//! Token-id inputs of `/v1/embeddings`: telling them from text, and turning them into text.
//!
//! In OpenAI's API a token array is `cl100k_base` ids (tiktoken), and that is what LangChain's
//! `OpenAIEmbeddings` and other OpenAI clients send by default. `--openai-token-ids` says what
//! inferd takes them for: [`TokenIds::Tiktoken`] decodes them with cl100k_base (carried by the
//! `tiktoken-rs` crate, offline) back to text, [`TokenIds::Model`] reads them as the served
//! model's own vocabulary (decoded by its tokenizer), [`TokenIds::Reject`] refuses them. Either
//! way the text is then tokenized by the model like any string, so truncation, special tokens and
//! `usage` (the model's tokens) behave exactly as for text. Decoding runs off the async runtime.

use std::sync::LazyLock;

use serde::Serialize;
use serde_json::Value;
use tiktoken_rs::CoreBPE;

use crate::{
    http::{
        embed::{check_batch, json_type},
        error::ApiError,
    },
    serving::ModelHandle,
};

/// What token-id arrays on `/v1/embeddings` are (`--openai-token-ids`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenIds {
    /// OpenAI's `cl100k_base` ids: decoded to text, then tokenized by the model.
    Tiktoken,
    /// Ids of the served model's own vocabulary.
    Model,
    /// Refused (422): the caller must send text.
    Reject,
}

/// cl100k_base's ordinary tokens are `0..100256`; the ids above are special tokens
/// (`<|endoftext|>`, the fill-in-the-middle markers, `<|endofprompt|>`) or unused.
const CL100K_ORDINARY: u32 = 100_256;
/// The special tokens cl100k_base defines; other ids at or above [`CL100K_ORDINARY`] are unused.
const CL100K_SPECIAL: &[u32] = &[100_257, 100_258, 100_259, 100_260, 100_276];

static CL100K: LazyLock<Result<CoreBPE, String>> =
    LazyLock::new(|| tiktoken_rs::cl100k_base().map_err(|e| e.to_string()));

/// `Some(lists)` when `input` is token ids (`[1, 2]` or `[[1, 2], [3]]`), `None` for text.
pub(super) fn token_lists(
    input: &Value,
    max_client_batch: usize,
) -> Result<Option<Vec<Vec<u32>>>, ApiError> {
    let Value::Array(items) = input else {
        return Ok(None);
    };
    match items.first() {
        Some(Value::Number(_)) => Ok(Some(vec![ids(input, "input".into())?])),
        Some(Value::Array(_)) => {
            check_batch("input", items.len(), max_client_batch)?;
            let lists = items
                .iter()
                .enumerate()
                .map(|(i, item)| ids(item, format!("input[{i}]")))
                .collect::<Result<_, _>>()?;
            Ok(Some(lists))
        }
        _ => Ok(None),
    }
}

/// One non-empty list of token ids, or why `value` (at `at`) is not one.
fn ids(value: &Value, at: String) -> Result<Vec<u32>, ApiError> {
    let Value::Array(ids) = value else {
        return Err(ApiError::InvalidInput(format!(
            "`{at}` must be a list of token ids, got {}",
            json_type(value)
        )));
    };
    if ids.is_empty() {
        return Err(ApiError::InvalidInput(format!("`{at}` is an empty list")));
    }
    ids.iter()
        .enumerate()
        .map(|(j, id)| {
            id.as_u64()
                .and_then(|id| u32::try_from(id).ok())
                .ok_or_else(|| {
                    ApiError::InvalidInput(format!(
                        "`{at}[{j}]` must be a token id (a non-negative integer)"
                    ))
                })
        })
        .collect()
}

/// Token-id lists → texts, as `mode` says they are meant.
pub(super) async fn decode_all(
    mode: TokenIds,
    handle: &ModelHandle,
    lists: Vec<Vec<u32>>,
) -> Result<Vec<String>, ApiError> {
    let decoded = match mode {
        TokenIds::Reject => {
            return Err(ApiError::UnsupportedParameter {
                param: "input",
                message: "this server does not take token ids in `input` \
                          (--openai-token-ids reject); send the text instead"
                    .into(),
            })
        }
        TokenIds::Model => handle
            .decode(lists, true)
            .await?
            .map_err(|(i, e)| ApiError::InvalidInput(format!("`input[{i}]`: {e}")))?,
        TokenIds::Tiktoken => tokio::task::spawn_blocking(move || decode_cl100k(&lists))
            .await
            .map_err(|e| ApiError::Internal(format!("tiktoken decoding panicked: {e}")))??,
    };
    match decoded.iter().position(|t| t.trim().is_empty()) {
        Some(i) => Err(ApiError::InvalidInput(format!(
            "`input[{i}]` decodes to empty text (only special tokens?)"
        ))),
        None => Ok(decoded),
    }
}

/// cl100k_base ids → text. Special tokens are dropped (they mark documents, they are not text);
/// ids the encoding does not define are a 422. Bytes split mid-character are replaced (U+FFFD).
pub fn decode_cl100k(lists: &[Vec<u32>]) -> Result<Vec<String>, ApiError> {
    let bpe = CL100K
        .as_ref()
        .map_err(|e| ApiError::Internal(format!("loading cl100k_base: {e}")))?;
    lists
        .iter()
        .enumerate()
        .map(|(i, ids)| {
            if let Some(bad) = ids
                .iter()
                .find(|&&id| id >= CL100K_ORDINARY && !CL100K_SPECIAL.contains(&id))
            {
                return Err(ApiError::InvalidInput(format!(
                    "`input[{i}]`: token id {bad} is not a cl100k_base token (the encoding of \
                     OpenAI's embedding models); send text, or start the server with \
                     `--openai-token-ids model` to send the served model's own ids"
                )));
            }
            let ordinary: Vec<u32> = ids
                .iter()
                .copied()
                .filter(|&id| id < CL100K_ORDINARY)
                .collect();
            let bytes: Vec<u8> = bpe._decode_native_and_split(ordinary).flatten().collect();
            Ok(String::from_utf8_lossy(&bytes).into_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn token_inputs_are_told_apart_from_text() {
        assert_eq!(token_lists(&json!("a"), 4).unwrap(), None);
        assert_eq!(token_lists(&json!(["a"]), 4).unwrap(), None);
        assert_eq!(
            token_lists(&json!([1, 2]), 4).unwrap(),
            Some(vec![vec![1, 2]])
        );
        assert_eq!(
            token_lists(&json!([[1], [2, 3]]), 4).unwrap(),
            Some(vec![vec![1], vec![2, 3]])
        );
        assert!(token_lists(&json!([[1], []]), 4).is_err());
        assert!(token_lists(&json!([1, -2]), 4).is_err());
        assert!(token_lists(&json!([[1], "a"]), 4).is_err());
        assert!(token_lists(&json!([[1], [2], [3]]), 2).is_err());
    }

    #[test]
    fn cl100k_ids_decode_to_their_text() {
        // "hello world" in cl100k_base, as tiktoken (and so LangChain) encodes it.
        let texts = decode_cl100k(&[vec![15339, 1917], vec![100257, 9906]]).unwrap();
        assert_eq!(texts[0], "hello world");
        assert_eq!(texts[1], "Hello", "<|endoftext|> is dropped");
        let err = decode_cl100k(&[vec![1], vec![100_300]]).unwrap_err();
        assert!(err.to_string().contains("input[1]"), "{err}");
        assert!(
            err.to_string().contains("--openai-token-ids model"),
            "{err}"
        );
    }

    #[test]
    fn cl100k_round_trips_ordinary_text() {
        let bpe = CL100K.as_ref().unwrap();
        let text = "Retrieval-augmented generation, café ☕ and 12345.";
        let ids = bpe.encode_ordinary(text);
        assert_eq!(decode_cl100k(&[ids]).unwrap()[0], text);
    }
}
