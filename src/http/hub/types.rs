//! The Hugging Face Inference API's request and response shapes for `POST /`.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{
    openapi::{schema::OneOfBuilder, RefOr, Schema},
    PartialSchema, ToSchema,
};

use crate::http::{error::ApiError, schema::texts_schema, tei::TruncationDirection};

#[derive(Debug, Deserialize, ToSchema)]
pub struct HubRequest {
    /// feature-extraction: a text or a list of texts; sentence-similarity: an object with
    /// `source_sentence` and `sentences`.
    #[schema(schema_with = inputs_schema)]
    pub inputs: Value,
    /// The task's options, Inference API style (the same options may sit at the top level).
    /// An empty object with text inputs is how `huggingface_hub` sends text-classification and
    /// its other text tasks (feature-extraction sends its options at the top level): refused.
    #[schema(value_type = Option<HubOptions>)]
    pub parameters: Option<Value>,
    #[serde(flatten)]
    pub top_level: HubOptions,
}

impl HubRequest {
    /// Whether `parameters` is there and empty.
    pub fn empty_parameters(&self) -> bool {
        matches!(&self.parameters, Some(Value::Object(p)) if p.is_empty())
    }

    /// The options, `parameters` winning over the top level field by field.
    pub fn options(&self) -> Result<HubOptions, ApiError> {
        let top = self.top_level.clone();
        let p: HubOptions = match &self.parameters {
            None | Some(Value::Null) => return Ok(top),
            Some(p) => serde_json::from_value(p.clone())
                .map_err(|e| ApiError::InvalidInput(format!("`parameters`: {e}")))?,
        };
        Ok(HubOptions {
            normalize: p.normalize.or(top.normalize),
            truncate: p.truncate.or(top.truncate),
            truncation_direction: p.truncation_direction.or(top.truncation_direction),
            prompt_name: p.prompt_name.or(top.prompt_name),
            dimensions: p.dimensions.or(top.dimensions),
            top_k: p.top_k.or(top.top_k),
            function_to_apply: p.function_to_apply.or(top.function_to_apply),
        })
    }
}

/// Options of `POST /` (TEI's names).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct HubOptions {
    /// feature-extraction: L2-normalise (default true).
    pub normalize: Option<bool>,
    /// Cut inputs longer than the model's limit (absent: `--auto-truncate`, default true).
    pub truncate: Option<bool>,
    pub truncation_direction: Option<TruncationDirection>,
    /// A sentence-transformers prompt of the model (absent: its default prompt).
    pub prompt_name: Option<String>,
    /// feature-extraction: Matryoshka truncation to the first N values.
    #[schema(minimum = 1)]
    pub dimensions: Option<usize>,
    /// text-classification only: refused with 400 (an embedding model is served).
    #[schema(value_type = Option<u32>)]
    pub top_k: Option<Value>,
    /// text-classification only: refused with 400 (an embedding model is served).
    #[schema(value_type = Option<String>)]
    pub function_to_apply: Option<Value>,
}

/// sentence-similarity's `inputs`.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)] // documentation only: requests keep a `Value` for precise messages
pub struct SentenceSimilarityInputs {
    #[schema(min_length = 1)]
    pub source_sentence: String,
    #[schema(min_items = 1)]
    pub sentences: Vec<String>,
}

fn inputs_schema() -> RefOr<Schema> {
    OneOfBuilder::new()
        .item(texts_schema())
        .item(SentenceSimilarityInputs::schema())
        .into()
}

/// One vector per input (feature-extraction) or one score per sentence (sentence-similarity).
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum HubResponse {
    Vectors(Vec<Vec<f32>>),
    Scores(Vec<f32>),
}
