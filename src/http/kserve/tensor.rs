//! The OIP binary tensor data extension and the JSON tensor forms: splitting a body at
//! `Inference-Header-Content-Length`, BYTES elements (4-byte little-endian length, then the
//! bytes), nested JSON `data`, and the JSON-header-then-FP32 response.

use axum::{
    http::{header, HeaderMap, HeaderValue},
    response::{IntoResponse, Response},
};
use serde_json::Value;

use super::{InferenceRequest, InferenceResponse, HEADER_LENGTH, INPUT, OUTPUT};
use crate::{
    http::{embed::check_batch, error::ApiError},
    serving::bytes_tensor,
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

/// The texts of the one BYTES input, from JSON `data` or the binary tail.
pub(super) fn input_texts(
    req: &InferenceRequest,
    binary: &[u8],
    max: usize,
) -> Result<Vec<String>, ApiError> {
    let invalid = |msg: String| ApiError::InvalidInput(msg);
    let inputs: Vec<_> = req
        .inputs
        .iter()
        .map(|t| (t.name.as_str(), t.datatype.as_str()))
        .collect();
    bytes_tensor::check_input(INPUT, &inputs)?;
    let input = &req.inputs[0];
    let binary_size = input
        .parameters
        .as_ref()
        .and_then(|p| p.get("binary_data_size"))
        .map(|v| v.as_u64().map(|n| n as usize));
    let texts = match (binary_size, &input.data) {
        (Some(Some(size)), None) if size == binary.len() => bytes_tensor::decode(INPUT, binary)?,
        (Some(Some(size)), None) => {
            return Err(invalid(format!(
                "input `{INPUT}` says {size} bytes of binary data but {} follow the header",
                binary.len()
            )))
        }
        (None, Some(data)) if binary.is_empty() => flatten_strings(data)?,
        _ => {
            return Err(invalid(format!(
                "input `{INPUT}` needs either `data` or a `binary_data_size` parameter matching the binary tail"
            )))
        }
    };
    let shape: Vec<i64> = input.shape.iter().map(|&d| d as i64).collect();
    bytes_tensor::check_shape(INPUT, &shape, texts.len())?;
    check_batch(INPUT, texts.len(), max)?;
    match texts.iter().position(String::is_empty) {
        Some(i) => Err(invalid(format!(
            "element {i} of `{INPUT}` is an empty string"
        ))),
        None => Ok(texts),
    }
}

/// JSON `data`: strings, flat or nested in lists.
fn flatten_strings(data: &Value) -> Result<Vec<String>, ApiError> {
    let mut out = Vec::new();
    let mut stack = vec![data];
    while let Some(value) = stack.pop() {
        match value {
            Value::String(s) => out.push(s.clone()),
            Value::Array(items) => stack.extend(items.iter().rev()),
            _ => {
                return Err(ApiError::InvalidInput(format!(
                    "`{INPUT}` data must be strings (BYTES)"
                )))
            }
        }
    }
    Ok(out)
}

/// Whether the output goes back in binary; unknown requested outputs are an error.
pub(super) fn wants_binary(req: &InferenceRequest, default: bool) -> Result<bool, ApiError> {
    let Some(outputs) = &req.outputs else {
        return Ok(default);
    };
    let mut binary = default;
    for output in outputs {
        if output.name != OUTPUT {
            return Err(ApiError::InvalidInput(format!(
                "unknown output {:?}; the model's output is `{OUTPUT}`",
                output.name
            )));
        }
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
            flatten_strings(&json!([["a"], ["b"]])).unwrap(),
            vec!["a", "b"]
        );
        assert!(flatten_strings(&json!([1])).is_err());
    }
}
