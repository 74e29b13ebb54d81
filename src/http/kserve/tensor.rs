//! The OIP binary tensor data extension and the JSON tensor forms: splitting a body at
//! `Inference-Header-Content-Length`, BYTES elements (4-byte little-endian length, then the
//! bytes), nested JSON `data`, and the JSON-header-then-FP32 response.

use axum::{
    http::{header, HeaderMap, HeaderValue},
    response::{IntoResponse, Response},
};
use serde_json::Value;

use super::{InferenceRequest, InferenceResponse, HEADER_LENGTH};
use crate::{
    http::{embed::check_batch, error::ApiError},
    serving::bytes_tensor::{self, Signature},
};

/// Splits a request into its JSON header and the binary data after it, if any.
pub(super) fn split_body<'a>(
    headers: &HeaderMap,
    body: &'a [u8],
) -> Result<(InferenceRequest, &'a [u8]), ApiError> {
    let json_len = match headers.get(HEADER_LENGTH) {
        None => body.len(),
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|&n| n <= body.len())
            .ok_or_else(|| {
                ApiError::InvalidInput(format!(
                    "`Inference-Header-Content-Length` must be a byte count within the body's {} bytes",
                    body.len()
                ))
            })?,
    };
    let (head, binary) = body.split_at(json_len);
    let req = serde_json::from_slice::<InferenceRequest>(head).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::InvalidInput(e.to_string()),
        _ => ApiError::InvalidJson(e.to_string()),
    })?;
    Ok((req, binary))
}

/// The texts of each of the signature's inputs, in its order (`None` for an optional input the
/// request leaves out), from JSON `data` or the binary tail, where each input's
/// `binary_data_size` bytes follow the previous binary input's.
pub(super) fn input_texts(
    req: &InferenceRequest,
    mut binary: &[u8],
    signature: &Signature,
    max: usize,
) -> Result<Vec<Option<Vec<String>>>, ApiError> {
    let invalid = |msg: String| ApiError::InvalidInput(msg);
    let inputs: Vec<_> = req
        .inputs
        .iter()
        .map(|t| (t.name.as_str(), t.datatype.as_str()))
        .collect();
    signature.check_inputs(&inputs)?;
    let mut found = vec![None; signature.inputs.len()];
    for input in &req.inputs {
        let name = input.name.as_str();
        let binary_size = input
            .parameters
            .as_ref()
            .and_then(|p| p.get("binary_data_size"))
            .map(|v| v.as_u64().map(|n| n as usize));
        let texts = match (binary_size, &input.data) {
            (Some(Some(size)), None) if size <= binary.len() => {
                let (mine, rest) = binary.split_at(size);
                binary = rest;
                bytes_tensor::decode(name, mine)?
            }
            (Some(Some(size)), None) => {
                return Err(invalid(format!(
                    "input `{name}` says {size} bytes of binary data but {} follow",
                    binary.len()
                )))
            }
            (None, Some(data)) => flatten_strings(name, data)?,
            _ => {
                return Err(invalid(format!(
                    "input `{name}` needs either `data` or a `binary_data_size` parameter matching the binary tail"
                )))
            }
        };
        let shape: Vec<i64> = input.shape.iter().map(|&d| d as i64).collect();
        bytes_tensor::check_shape(name, &shape, texts.len())?;
        check_batch(name, texts.len(), max)?;
        if let Some(i) = texts.iter().position(String::is_empty) {
            return Err(invalid(format!(
                "element {i} of `{name}` is an empty string"
            )));
        }
        let slot = signature.inputs.iter().position(|n| *n == name);
        found[slot.expect("checked against the signature")] = Some(texts);
    }
    match binary.len() {
        0 => Ok(found),
        left => Err(invalid(format!(
            "{left} bytes of binary data follow the header beyond the inputs' `binary_data_size`"
        ))),
    }
}

/// JSON `data` of the input `name`: strings, flat or nested in lists.
fn flatten_strings(name: &str, data: &Value) -> Result<Vec<String>, ApiError> {
    let mut out = Vec::new();
    let mut stack = vec![data];
    while let Some(value) = stack.pop() {
        match value {
            Value::String(s) => out.push(s.clone()),
            Value::Array(items) => stack.extend(items.iter().rev()),
            _ => {
                return Err(ApiError::InvalidInput(format!(
                    "`{name}` data must be strings (BYTES)"
                )))
            }
        }
    }
    Ok(out)
}

/// Whether the output goes back in binary; requested outputs other than the signature's are
/// an error.
pub(super) fn wants_binary(
    req: &InferenceRequest,
    signature: &Signature,
    default: bool,
) -> Result<bool, ApiError> {
    let Some(outputs) = &req.outputs else {
        return Ok(default);
    };
    let mut binary = default;
    for output in outputs {
        signature.check_output(&output.name)?;
        if let Some(flag) = output
            .parameters
            .as_ref()
            .and_then(|p| p.get("binary_data"))
        {
            binary = flag.as_bool().ok_or_else(|| {
                ApiError::InvalidInput("output parameter `binary_data` must be a boolean".into())
            })?;
        }
    }
    Ok(binary)
}

pub(super) fn binary_response(response: &InferenceResponse, tail: Vec<u8>) -> Response {
    let mut body = serde_json::to_vec(response).expect("response serialises");
    let json_len = body.len();
    body.extend_from_slice(&tail);
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(HEADER_LENGTH, HeaderValue::from(json_len));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_data_may_be_nested() {
        assert_eq!(
            flatten_strings("text", &json!([["a"], ["b"]])).unwrap(),
            vec!["a", "b"]
        );
        assert!(flatten_strings("text", &json!([1])).is_err());
    }
}
