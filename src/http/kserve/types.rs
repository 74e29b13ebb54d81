//! The Open Inference Protocol v2 wire types inferd uses: metadata, readiness, and the
//! inference request and response (named `InferenceRequest` / `InferenceResponse` as in the
//! protocol, apart from `/infer`'s own `InferRequest`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct KServeError {
    pub error: String,
}

#[derive(Serialize, ToSchema)]
pub struct ServerMetadata {
    pub name: &'static str,
    pub version: &'static str,
    pub extensions: Vec<&'static str>,
}

#[derive(Serialize, ToSchema)]
pub struct Live {
    pub live: bool,
}

#[derive(Serialize, ToSchema)]
pub struct Ready {
    pub ready: bool,
}

#[derive(Serialize, ToSchema)]
pub struct TensorMetadata {
    pub name: &'static str,
    pub datatype: &'static str,
    pub shape: Vec<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct ModelMetadata {
    pub name: String,
    pub versions: Vec<String>,
    pub platform: &'static str,
    pub inputs: Vec<TensorMetadata>,
    pub outputs: Vec<TensorMetadata>,
}

#[derive(Serialize, ToSchema)]
pub struct ModelReady {
    pub name: String,
    pub ready: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct InferenceRequest {
    pub id: Option<String>,
    /// `binary_data_output` (bool), and inferd's `normalize` (bool, default true) / `truncate` (bool, default `--auto-truncate`).
    #[schema(value_type = Object)]
    pub parameters: Option<Map<String, Value>>,
    #[schema(min_items = 1, max_items = 1)]
    pub inputs: Vec<InputTensor>,
    pub outputs: Option<Vec<RequestedOutput>>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct InputTensor {
    /// Must be `text`.
    pub name: String,
    pub shape: Vec<u64>,
    /// Must be `BYTES`.
    pub datatype: String,
    /// `binary_data_size` when the data follows the JSON header in binary.
    #[schema(value_type = Object)]
    pub parameters: Option<Map<String, Value>>,
    /// Strings, flat or nested to the tensor's shape.
    #[schema(value_type = Vec<String>)]
    pub data: Option<Value>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RequestedOutput {
    /// Must be `embedding`.
    pub name: String,
    /// `binary_data` (bool) asks for the tensor in binary after the JSON header.
    #[schema(value_type = Object)]
    pub parameters: Option<Map<String, Value>>,
}

#[derive(Serialize, ToSchema)]
pub struct InferenceResponse {
    pub model_name: String,
    pub model_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub outputs: Vec<OutputTensor>,
}

#[derive(Serialize, ToSchema)]
pub struct OutputTensor {
    pub name: &'static str,
    pub datatype: &'static str,
    pub shape: Vec<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub parameters: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Vec<f32>>,
}
