//! OpenAI's wire types for embeddings, models and errors.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{
    openapi::{
        schema::{ArrayBuilder, ObjectBuilder, Type},
        RefOr, Schema,
    },
    ToSchema,
};

use crate::http::{schema::one_of_texts, tei::TruncationDirection};

#[derive(Debug, Deserialize, ToSchema)]
pub struct EmbeddingsRequest {
    /// A string, a list of strings, a list of token ids, or a list of token-id lists.
    #[schema(schema_with = input_schema)]
    pub input: Value,
    /// A name a served model answers to (see `GET /v1/models`): `name`, `name@version`, its
    /// hub repo id or an alias (`--model-alias`).
    pub model: String,
    #[serde(default)]
    pub encoding_format: EncodingFormat,
    /// Matryoshka truncation: the first N values, renormalised; 1 to the model's dimensions,
    /// else 422.
    #[schema(minimum = 1)]
    pub dimensions: Option<usize>,
    /// inferd extension: a sentence-transformers prompt of the model (absent: its default).
    pub prompt_name: Option<String>,
    /// inferd extension (as TEI): cut inputs longer than the model's limit; absent: the
    /// server's `--auto-truncate` (default true). `false` makes them a 413.
    pub truncate: Option<bool>,
    /// inferd extension (as TEI): which end `truncate` cuts (`right`, the default, or `left`).
    #[serde(default)]
    pub truncation_direction: TruncationDirection,
    /// Accepted and ignored (OpenAI uses it for abuse monitoring).
    #[allow(dead_code)] // parsed so a wrong type is still a clear 422
    pub user: Option<String>,
}

/// The OpenAPI view of `input` (the request keeps a `Value` for precise messages).
fn input_schema() -> RefOr<Schema> {
    let ids = || {
        ArrayBuilder::new()
            .items(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0)),
            )
            .min_items(Some(1))
    };
    let lists = ArrayBuilder::new().items(ids()).min_items(Some(1));
    one_of_texts(
        vec![ids().into(), lists.into()],
        "A non-empty text, a non-empty list of them, a list of token ids, or a list of such lists.",
    )
}

#[derive(Debug, Default, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EncodingFormat {
    #[default]
    Float,
    /// Little-endian f32 bytes, base64-encoded (what the `openai` SDK asks for by default).
    Base64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EmbeddingsResponse {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<EmbeddingData>,
    pub model: String,
    pub usage: OpenAiUsage,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EmbeddingData {
    /// Always `embedding`.
    pub object: &'static str,
    pub index: usize,
    pub embedding: EmbeddingVector,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum EmbeddingVector {
    Float(Vec<f32>),
    Base64(String),
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OpenAiUsage {
    pub prompt_tokens: usize,
    pub total_tokens: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelList {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<ModelObject>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelObject {
    pub id: String,
    /// Always `model`.
    pub object: &'static str,
    /// Always 0: inferd does not track creation times.
    pub created: u64,
    /// Always `inferd`.
    pub owned_by: &'static str,
    /// inferd extension: the model's own name (`id` may be an alias of it).
    pub model: String,
    /// inferd extension: the version this name routes to now.
    pub version: String,
    /// inferd extension: the `model_type` served (`bert`, `xlm-roberta`, `mpnet`, ...).
    pub architecture: String,
    /// inferd extension: pooling modes, in concatenation order.
    pub pooling: Vec<&'static str>,
    /// inferd extension: the embedding size (`dimensions` may ask for fewer).
    pub dimensions: usize,
    /// inferd extension: prompt name → text, for `prompt_name`.
    pub prompts: std::collections::BTreeMap<String, String>,
    /// inferd extension: the prompt applied when a request names none.
    pub default_prompt_name: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct OpenAiErrorResponse {
    pub error: OpenAiErrorBody,
}

#[derive(Serialize, ToSchema)]
pub struct OpenAiErrorBody {
    pub message: String,
    /// `invalid_request_error` for 4xx, `server_error` for 5xx.
    #[serde(rename = "type")]
    pub kind: String,
    pub param: Option<String>,
    /// inferd's stable error code.
    pub code: String,
}
