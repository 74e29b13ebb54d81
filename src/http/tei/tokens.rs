//! `POST /tokenize` and `POST /decode`, on the default model's tokenizer pool. A tokenize answer
//! is about 70 bytes per token, so it is checked against `--max-response-bytes` before it is
//! written out (a 2 MB text would otherwise answer some 70 MB).

use axum::{extract::State, Json};
use serde_json::Value;

use super::{DecodeRequest, SimpleToken, TeiErrorResponse, TokenizeRequest};
use crate::{
    http::{
        embed::{check_batch, json_type, parse_inputs},
        error::ApiError,
        extract::ApiJson,
        state::AppState,
    },
    model::tokenizer::TokenizeError,
};

/// Tokenizes texts with the model's tokenizer, untruncated.
#[utoipa::path(post, path = "/tokenize", tag = "tei", request_body = TokenizeRequest,
    responses((status = 200, body = Vec<Vec<SimpleToken>>),
        (status = "4XX", body = TeiErrorResponse), (status = "5XX", body = TeiErrorResponse)))]
pub(super) async fn tokenize(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<TokenizeRequest>,
) -> Result<Json<Vec<Vec<SimpleToken>>>, ApiError> {
    let texts = parse_inputs(req.inputs, state.limits.max_client_batch)?;
    let model = state.registry.get(None)?;
    let texts = model.prompted(req.prompt_name.as_deref(), texts)?;
    let special = req.add_special_tokens;
    let limit = state.limits.max_response_bytes;
    let tokens = model
        .with_tokenizer(move |tokenizer| {
            texts
                .iter()
                .enumerate()
                .map(|(i, text)| {
                    let pieces = tokenizer
                        .pieces(text, special)
                        .map_err(|e| tokenize_error(i, e))?;
                    Ok::<_, ApiError>(
                        pieces
                            .into_iter()
                            .map(|p| SimpleToken {
                                id: p.id,
                                text: p.text,
                                special: p.special,
                                start: p.start,
                                stop: p.stop,
                            })
                            .collect::<Vec<SimpleToken>>(),
                    )
                })
                .collect::<Result<Vec<_>, ApiError>>()
                .and_then(|tokens| within(tokens, limit))
        })
        .await??;
    Ok(Json(tokens))
}

/// About how many bytes of JSON a token takes besides its text: `{"id":…,"text":"","special":
/// false,"start":…,"stop":…}` with six-digit numbers, and the comma.
const TOKEN_JSON_BYTES: usize = 64;

/// `tokens` when their JSON stays within `limit` bytes (estimated from above: escapes aside,
/// a token's text counts once), else `response_too_large`.
fn within(tokens: Vec<Vec<SimpleToken>>, limit: usize) -> Result<Vec<Vec<SimpleToken>>, ApiError> {
    let bytes: usize = tokens
        .iter()
        .flatten()
        .map(|t| TOKEN_JSON_BYTES + t.text.len())
        .sum();
    match bytes > limit {
        true => Err(ApiError::ResponseTooLarge { bytes, limit }),
        false => Ok(tokens),
    }
}

fn tokenize_error(index: usize, err: TokenizeError) -> ApiError {
    ApiError::InvalidInput(format!("input {index}: {err}"))
}

/// Token ids back to text; one string per id list.
#[utoipa::path(post, path = "/decode", tag = "tei", request_body = DecodeRequest,
    responses((status = 200, body = Vec<String>),
        (status = "4XX", body = TeiErrorResponse), (status = "5XX", body = TeiErrorResponse)))]
pub(super) async fn decode(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<DecodeRequest>,
) -> Result<Json<Vec<String>>, ApiError> {
    let lists = id_lists(req.ids, state.limits.max_client_batch)?;
    let model = state.registry.get(None)?;
    let texts = model
        .decode(lists, req.skip_special_tokens)
        .await?
        .map_err(|(i, e)| tokenize_error(i, e))?;
    Ok(Json(texts))
}

/// `[1, 2]` → one list; `[[1, 2], [3]]` → two.
fn id_lists(ids: Value, max_client_batch: usize) -> Result<Vec<Vec<u32>>, ApiError> {
    let parsed: Result<Vec<Vec<u32>>, _> = match &ids {
        Value::Array(items) if items.first().is_some_and(Value::is_array) => {
            serde_json::from_value(ids.clone())
        }
        _ => serde_json::from_value(ids.clone()).map(|one| vec![one]),
    };
    let lists = parsed.map_err(|_| {
        ApiError::InvalidInput(format!(
            "`ids` must be a list of token ids or a list of such lists, got {}",
            json_type(&ids)
        ))
    })?;
    check_batch("ids", lists.len(), max_client_batch)?;
    match lists.iter().position(Vec::is_empty) {
        Some(i) => Err(ApiError::InvalidInput(format!(
            "`ids[{i}]` is an empty list"
        ))),
        None => Ok(lists),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn id_lists_accepts_one_or_many() {
        assert_eq!(id_lists(json!([1, 2]), 4).unwrap(), vec![vec![1, 2]]);
        assert_eq!(
            id_lists(json!([[1], [2]]), 4).unwrap(),
            vec![vec![1], vec![2]]
        );
        assert!(id_lists(json!([]), 4).is_err());
        assert!(id_lists(json!([[1], []]), 4).is_err());
        assert!(id_lists(json!("a"), 4).is_err());
        assert!(id_lists(json!([-1]), 4).is_err());
    }
}
