//! text-embeddings-inference's wire types.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::http::schema::{texts_schema, yes};

#[derive(Debug, Default, Clone, Copy, Deserialize, ToSchema)]
pub enum TruncationDirection {
    #[default]
    #[serde(alias = "right")]
    Right,
    #[serde(alias = "left")]
    Left,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct EmbedRequest {
    #[schema(schema_with = texts_schema)]
    pub inputs: Value,
    /// L2-normalise (default true).
    #[serde(default = "yes")]
    pub normalize: bool,
    /// Cut inputs longer than the model's limit (absent: the server's `--auto-truncate`,
    /// default true); `false` makes them a 413.
    pub truncate: Option<bool>,
    #[serde(default)]
    pub truncation_direction: TruncationDirection,
    /// A sentence-transformers prompt of the model, prepended to every input (absent: the
    /// model's default prompt, if any); unknown names are a 422.
    pub prompt_name: Option<String>,
    /// Matryoshka truncation to the first N values, renormalised when `normalize`; 1 to the
    /// model's dimensions, else 422.
    #[schema(minimum = 1)]
    pub dimensions: Option<usize>,
    /// Only `float`.
    pub encoding_format: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TeiErrorResponse {
    pub error: String,
    /// `Validation`, `Overloaded`, `Unhealthy` or `Backend`.
    pub error_type: String,
    /// inferd's stable error code.
    pub code: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct TokenizeRequest {
    #[schema(schema_with = texts_schema)]
    pub inputs: Value,
    #[serde(default = "yes")]
    pub add_special_tokens: bool,
    /// A prompt of the model, prepended before tokenizing (absent: the default prompt).
    pub prompt_name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SimpleToken {
    pub id: u32,
    pub text: String,
    pub special: bool,
    /// Byte offset of the token in the input; null for special tokens.
    pub start: Option<usize>,
    pub stop: Option<usize>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct DecodeRequest {
    /// One list of token ids, or a list of them.
    #[schema(value_type = TokenIds)]
    pub ids: Value,
    #[serde(default = "yes")]
    pub skip_special_tokens: bool,
}

/// The OpenAPI view of `ids`.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // documentation only
pub enum TokenIds {
    One(Vec<u32>),
    Many(Vec<Vec<u32>>),
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SimilarityRequest {
    pub inputs: SimilarityInputs,
    pub parameters: Option<SimilarityParameters>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SimilarityInputs {
    #[schema(min_length = 1)]
    pub source_sentence: String,
    #[schema(min_items = 1)]
    pub sentences: Vec<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct SimilarityParameters {
    pub truncate: Option<bool>,
    #[serde(default)]
    pub truncation_direction: TruncationDirection,
    /// A prompt of the model for every sentence (absent: the default prompt).
    pub prompt_name: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RerankRequest {
    #[schema(min_length = 1)]
    pub query: String,
    #[schema(min_items = 1)]
    pub texts: Vec<String>,
    pub truncate: Option<bool>,
    #[serde(default)]
    pub truncation_direction: TruncationDirection,
    /// A reranker's raw logits instead of `sigmoid(logit)`; an embedding model's scores are
    /// cosine similarities either way.
    #[serde(default)]
    pub raw_scores: bool,
    /// Echo each text in its result.
    #[serde(default)]
    pub return_text: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Rank {
    pub index: usize,
    pub score: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PredictRequest {
    /// A text, a pair `[text, text]`, or a list of texts and pairs.
    #[schema(value_type = PredictInputs)]
    pub inputs: Value,
    /// Raw logits instead of softmax (sigmoid for a one-label model).
    #[serde(default)]
    pub raw_scores: bool,
    pub truncate: Option<bool>,
    #[serde(default)]
    pub truncation_direction: TruncationDirection,
}

/// The OpenAPI view of `/predict`'s `inputs`: a list of exactly two texts is one pair.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // documentation only
pub enum PredictInputs {
    Text(String),
    /// Exactly two texts.
    Pair(Vec<String>),
    Batch(Vec<PredictInput>),
}

/// One input of a `/predict` batch.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // documentation only
pub enum PredictInput {
    Text(String),
    /// Exactly two texts.
    Pair(Vec<String>),
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Prediction {
    pub label: String,
    pub score: f32,
}

/// One input's predictions (best first), or one list per input of a batch.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum PredictResponse {
    Single(Vec<Prediction>),
    Batch(Vec<Vec<Prediction>>),
}
