//! The one embedding path of the HTTP API, and the input checks every dialect shares.
//!
//! Every dialect names a [`Target`] (its model field or URL, plus the caller's
//! `x-inferd-route-key`) and an [`EmbedRequest`], and calls [`embed`]: refuse while draining,
//! route to a version (promoted, canary by weight and sticky key, or pinned by `name@version`),
//! then [`Routed::embed`], which records canary health and offers the shadow copy. Same queue,
//! same limits, same errors, same canary and shadow participation everywhere. Dialects that must
//! see the answering version before embedding (OpenAI decodes token ids with its tokenizer)
//! call [`route`] and then [`Routed::embed`] themselves.
//!
//! Validation happens before admission, so a bad request never takes a queue slot.

use serde_json::Value;

use super::{error::ApiError, extract::RouteKey, state::AppState};
use crate::{
    deploy::{Routed, Target},
    serving::{EmbedRequest, Embedded, ModelRef},
};

/// The target of a request naming `model` (`name`, `name@version`; `None`: the default model).
pub fn target(model: Option<&str>, RouteKey(route_key): RouteKey) -> Target {
    Target {
        model: model.map(ModelRef::parse),
        route_key,
    }
}

/// Where a request goes; 503 `shutting_down` once draining.
pub fn route(state: &AppState, target: &Target) -> Result<Routed, ApiError> {
    state.health.accepting()?;
    Ok(state.registry.route(target)?)
}

/// Routes `req` and embeds it through the chosen version.
pub async fn embed(
    state: &AppState,
    target: &Target,
    req: EmbedRequest,
) -> Result<(Routed, Embedded), ApiError> {
    let routed = route(state, target)?;
    let embedded = routed.embed(req).await?;
    Ok((routed, embedded))
}

/// Turns `inputs` into a list of texts, or says precisely what is wrong with it.
pub fn parse_inputs(inputs: Value, max_client_batch: usize) -> Result<Vec<String>, ApiError> {
    parse_texts("inputs", inputs, max_client_batch)
}

/// [`parse_inputs`] for a field called `field` (OpenAI calls it `input`).
pub fn parse_texts(
    field: &str,
    inputs: Value,
    max_client_batch: usize,
) -> Result<Vec<String>, ApiError> {
    let invalid = |msg: String| Err(ApiError::InvalidInput(msg));
    let texts = match inputs {
        Value::String(text) => vec![text],
        Value::Array(items) => {
            check_batch(field, items.len(), max_client_batch)?;
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::String(text) => Ok(text),
                    other => Err(ApiError::InvalidInput(format!(
                        "`{field}[{i}]` must be a string, got {}",
                        json_type(&other)
                    ))),
                })
                .collect::<Result<_, _>>()?
        }
        other => {
            return invalid(format!(
                "`{field}` must be a string or a list of strings, got {}",
                json_type(&other)
            ))
        }
    };
    match texts.iter().position(|t| t.is_empty()) {
        Some(i) => invalid(format!("`{field}[{i}]` is an empty string")),
        None => Ok(texts),
    }
}

/// A list field must hold between 1 and `--max-client-batch` items.
pub fn check_batch(field: &str, len: usize, max_client_batch: usize) -> Result<(), ApiError> {
    if len == 0 {
        return Err(ApiError::InvalidInput(format!(
            "`{field}` must not be an empty list"
        )));
    }
    if len > max_client_batch {
        return Err(ApiError::InvalidInput(format!(
            "`{field}` has {len} items; at most {max_client_batch} are allowed per request"
        )));
    }
    Ok(())
}

pub fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Little-endian f32 bytes: OpenAI's base64 embeddings and KServe's binary FP32 tensors.
pub fn f32_le_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(v: Value) -> String {
        match parse_inputs(v, 3) {
            Err(ApiError::InvalidInput(msg)) => msg,
            other => panic!("expected invalid input, got {other:?}"),
        }
    }

    #[test]
    fn accepts_string_and_list() {
        assert_eq!(parse_inputs(json!("a"), 3).unwrap(), vec!["a"]);
        assert_eq!(parse_inputs(json!(["a", " "]), 3).unwrap(), vec!["a", " "]);
    }

    #[test]
    fn explains_each_bad_shape() {
        assert!(err(json!([])).contains("empty list"));
        assert!(err(json!("")).contains("empty string"));
        assert!(err(json!(["a", ""])).contains("inputs[1]"));
        assert!(err(json!(["a", 3])).contains("inputs[1]` must be a string, got a number"));
        assert!(err(json!(["a", "b", "c", "d"])).contains("at most 3"));
        assert!(err(json!({"text": "a"})).contains("got an object"));
        assert!(err(json!(null)).contains("got null"));
    }

    #[test]
    fn le_bytes_round_trip() {
        let bytes = f32_le_bytes(&[1.0, -2.5]);
        assert_eq!(&bytes[..4], &1.0f32.to_le_bytes());
        assert_eq!(&bytes[4..], &(-2.5f32).to_le_bytes());
    }
}
