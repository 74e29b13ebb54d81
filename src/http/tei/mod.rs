//! The Hugging Face text-embeddings-inference (TEI) dialect: `POST /embed` (and `POST /`, TEI's
//! route for `huggingface_hub`'s `feature_extraction`), `/tokenize`, `/decode`, `/similarity`,
//! `/rerank`. TEI's `GET /info` fields are served by `/info` itself (see `info.rs`).
//!
//! Embedding goes through [`embed_texts`] like `/infer`; `/tokenize` and `/decode` run on the
//! model's tokenizer pool. These routes always use the default model, as TEI serves one.
//! Errors are re-shaped by [`error_shape`] to TEI's `{"error", "error_type"}`, keeping inferd's
//! status and adding its `code`. `/rerank` and `/similarity` are bi-encoder cosine similarities
//! of normalised embeddings, not a cross-encoder's scores.

use axum::{extract::State, http::StatusCode, response::Response, routing::post, Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::http::{
    native::infer::{
        check_batch, check_dimensions, embed_texts, json_type, parse_inputs, parse_texts,
        texts_schema,
    },
    ApiJson,
};
use crate::{
    http::error::{ApiError, ErrorParts},
    http::state::AppState,
    model::tokenizer::{TokenizeError, Truncation},
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", post(embed))
        .route("/embed", post(embed))
        .route("/tokenize", post(tokenize))
        .route("/decode", post(decode))
        .route("/similarity", post(similarity))
        .route("/rerank", post(rerank))
}

/// Re-shapes an inferd error into TEI's error object; a `map_response` layer.
pub async fn error_shape(response: Response) -> Response {
    crate::http::error::reshape(
        response,
        |parts: &ErrorParts, status: StatusCode| json!({"error": parts.message, "error_type": error_type(parts.code, status), "code": parts.code}),
    )
}

/// TEI's `error_type` for an inferd code.
fn error_type(code: &str, status: StatusCode) -> &'static str {
    match code {
        "overloaded" => "Overloaded",
        "not_ready" | "shutting_down" => "Unhealthy",
        "invalid_input" if status == StatusCode::UNPROCESSABLE_ENTITY => "Validation",
        _ if status.is_server_error() => "Backend",
        _ => "Validation",
    }
}

#[derive(Debug, Default, Clone, Copy, Deserialize, ToSchema)]
pub enum TruncationDirection {
    #[default]
    #[serde(alias = "right")]
    Right,
    #[serde(alias = "left")]
    Left,
}

/// TEI's `truncate` (default false: refuse long inputs) and `truncation_direction`.
fn truncation(truncate: Option<bool>, direction: TruncationDirection) -> Truncation {
    match (truncate.unwrap_or(false), direction) {
        (false, _) => Truncation::Refuse,
        (true, TruncationDirection::Right) => Truncation::Right,
        (true, TruncationDirection::Left) => Truncation::Left,
    }
}

/// inferd has no prompt templates; naming one is a clear 400 rather than silently ignored.
fn no_prompt(prompt_name: &Option<String>) -> Result<(), ApiError> {
    match prompt_name {
        None => Ok(()),
        Some(name) => Err(ApiError::UnsupportedParameter {
            param: "prompt_name",
            message: format!("prompt {name:?} is not defined: inferd models carry no prompts"),
        }),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct EmbedRequest {
    #[schema(schema_with = texts_schema)]
    pub inputs: Value,
    /// L2-normalise (default true).
    #[serde(default = "yes")]
    pub normalize: bool,
    /// Cut inputs longer than the model's limit (default false: they are a 413).
    pub truncate: Option<bool>,
    #[serde(default)]
    pub truncation_direction: TruncationDirection,
    /// Not supported: any value is a 400.
    pub prompt_name: Option<String>,
    /// Must equal the model's dimensions (no Matryoshka truncation).
    #[schema(minimum = 1)]
    pub dimensions: Option<usize>,
    /// Only `float`.
    pub encoding_format: Option<String>,
}

fn yes() -> bool {
    true
}

/// Embeds texts, TEI style: a list of vectors, one per input.
#[utoipa::path(post, path = "/embed", tag = "tei", request_body = EmbedRequest,
    responses((status = 200, body = Vec<Vec<f32>>),
        (status = "4XX", body = TeiErrorResponse), (status = "5XX", body = TeiErrorResponse)))]
pub(crate) async fn embed(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<EmbedRequest>,
) -> Result<Json<Vec<Vec<f32>>>, ApiError> {
    no_prompt(&req.prompt_name)?;
    check_dimensions(&state.registry.get(None)?.info, req.dimensions)?;
    if req.encoding_format.as_deref().is_some_and(|f| f != "float") {
        return Err(ApiError::UnsupportedParameter {
            param: "encoding_format",
            message: "`/embed` answers floats only; use `/v1/embeddings` for base64".into(),
        });
    }
    let texts = parse_inputs(req.inputs, state.limits.max_client_batch)?;
    let truncation = truncation(req.truncate, req.truncation_direction);
    let (_, embedded) = embed_texts(&state, None, texts, truncation, req.normalize).await?;
    Ok(Json(embedded.vectors))
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
    /// Not supported: any value is a 400.
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

/// Tokenizes texts with the model's tokenizer, untruncated.
#[utoipa::path(post, path = "/tokenize", tag = "tei", request_body = TokenizeRequest,
    responses((status = 200, body = Vec<Vec<SimpleToken>>),
        (status = "4XX", body = TeiErrorResponse), (status = "5XX", body = TeiErrorResponse)))]
pub(crate) async fn tokenize(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<TokenizeRequest>,
) -> Result<Json<Vec<Vec<SimpleToken>>>, ApiError> {
    no_prompt(&req.prompt_name)?;
    let texts = parse_inputs(req.inputs, state.limits.max_client_batch)?;
    let model = state.registry.get(None)?;
    let special = req.add_special_tokens;
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
        })
        .await??;
    Ok(Json(tokens))
}

fn tokenize_error(index: usize, err: TokenizeError) -> ApiError {
    ApiError::InvalidInput(format!("input {index}: {err}"))
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

/// Token ids back to text; one string per id list.
#[utoipa::path(post, path = "/decode", tag = "tei", request_body = DecodeRequest,
    responses((status = 200, body = Vec<String>),
        (status = "4XX", body = TeiErrorResponse), (status = "5XX", body = TeiErrorResponse)))]
pub(crate) async fn decode(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<DecodeRequest>,
) -> Result<Json<Vec<String>>, ApiError> {
    let lists = id_lists(req.ids, state.limits.max_client_batch)?;
    let model = state.registry.get(None)?;
    let skip = req.skip_special_tokens;
    let texts = model
        .with_tokenizer(move |tokenizer| {
            lists
                .iter()
                .enumerate()
                .map(|(i, ids)| {
                    tokenizer
                        .decode(ids, skip)
                        .map_err(|e| tokenize_error(i, e))
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .await??;
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
    /// Not supported: any value is a 400.
    pub prompt_name: Option<String>,
}

/// Cosine similarity of `source_sentence` to each of `sentences`, in their order.
#[utoipa::path(post, path = "/similarity", tag = "tei", request_body = SimilarityRequest,
    responses((status = 200, body = Vec<f32>),
        (status = "4XX", body = TeiErrorResponse), (status = "5XX", body = TeiErrorResponse)))]
pub(crate) async fn similarity(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<SimilarityRequest>,
) -> Result<Json<Vec<f32>>, ApiError> {
    let params = req.parameters.unwrap_or_default();
    no_prompt(&params.prompt_name)?;
    let truncation = truncation(params.truncate, params.truncation_direction);
    let scores = scores(
        &state,
        req.inputs.source_sentence,
        req.inputs.sentences,
        "sentences",
        truncation,
    )
    .await?;
    Ok(Json(scores))
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
    /// Accepted and ignored: scores are always cosine similarities.
    #[serde(default)]
    #[allow(dead_code)] // parsed so a wrong type is still a clear 422
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

/// Scores `texts` against `query` (cosine of normalised embeddings), best first.
#[utoipa::path(post, path = "/rerank", tag = "tei", request_body = RerankRequest,
    responses((status = 200, body = Vec<Rank>),
        (status = "4XX", body = TeiErrorResponse), (status = "5XX", body = TeiErrorResponse)))]
pub(crate) async fn rerank(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<RerankRequest>,
) -> Result<Json<Vec<Rank>>, ApiError> {
    let truncation = truncation(req.truncate, req.truncation_direction);
    let texts = req.return_text.then(|| req.texts.clone());
    let scores = scores(&state, req.query, req.texts, "texts", truncation).await?;
    let mut ranks: Vec<Rank> = scores
        .into_iter()
        .enumerate()
        .map(|(index, score)| Rank {
            index,
            score,
            text: texts.as_ref().map(|t| t[index].clone()),
        })
        .collect();
    ranks.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.index.cmp(&b.index)));
    Ok(Json(ranks))
}

/// Embeds `query` with `others` in one request and returns the cosine of each to the query.
async fn scores(
    state: &AppState,
    query: String,
    others: Vec<String>,
    field: &str,
    truncation: Truncation,
) -> Result<Vec<f32>, ApiError> {
    // The query rides in the same request, so the batch limit counts it too.
    let max = state.limits.max_client_batch.saturating_sub(1);
    let mut texts = parse_texts(field, Value::from(others), max)?;
    if query.is_empty() {
        return Err(ApiError::InvalidInput(
            "the query is an empty string".into(),
        ));
    }
    texts.insert(0, query);
    let (_, embedded) = embed_texts(state, None, texts, truncation, true).await?;
    let (query, others) = embedded.vectors.split_first().expect("one vector per text");
    Ok(others
        .iter()
        .map(|v| v.iter().zip(query).map(|(a, b)| a * b).sum())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn truncate_defaults_to_refusing() {
        assert_eq!(
            truncation(None, TruncationDirection::Left),
            Truncation::Refuse
        );
        assert_eq!(
            truncation(Some(true), TruncationDirection::Left),
            Truncation::Left
        );
    }
}
