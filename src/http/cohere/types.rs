//! Cohere's rerank wire types (`/v1/rerank`, `/v2/rerank`).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
pub struct CohereRerankRequest {
    /// The served model's name (`name` or `name@version`).
    pub model: String,
    #[schema(min_length = 1)]
    pub query: String,
    /// Texts (v1 also takes `{"text": ...}` objects).
    #[schema(value_type = Vec<CohereDocument>, min_items = 1)]
    pub documents: Value,
    /// Only the best N results (1 to the number of documents); absent: all.
    pub top_n: Option<i64>,
    /// v1: echo each document in its result.
    #[serde(default)]
    pub return_documents: bool,
    /// Cuts each document to this many tokens before it is scored (at least 1); the pair is cut
    /// to the model's limit in any case.
    #[schema(minimum = 1)]
    pub max_tokens_per_doc: Option<i64>,
}

/// The OpenAPI view of one document.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // documentation only
pub enum CohereDocument {
    Text(String),
    Object { text: String },
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CohereRerankResponse {
    pub id: String,
    pub results: Vec<CohereRerankResult>,
    pub meta: CohereMeta,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CohereRerankResult {
    pub index: usize,
    /// `sigmoid(logit)` of a reranker, in 0..1; an embedding model's cosine.
    pub relevance_score: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<CohereDocumentText>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CohereDocumentText {
    pub text: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CohereMeta {
    pub api_version: CohereApiVersion,
    pub billed_units: CohereBilledUnits,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CohereApiVersion {
    pub version: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CohereBilledUnits {
    /// One per request, as Cohere counts up to 100 documents.
    pub search_units: u64,
}

/// Cohere's error body.
#[derive(Serialize, ToSchema)]
pub struct CohereErrorResponse {
    pub message: String,
    /// inferd's stable error code.
    pub code: String,
}
