//! `POST /`: the Hugging Face Inference API's task shapes, as `huggingface_hub.InferenceClient`
//! sends them to a server given as its `base_url` (and as TEI's own `POST /` takes them).
//!
//! The task is read from the body: `{"inputs": text | [texts]}` is feature-extraction (a list of
//! vectors, as TEI's `/embed`), `{"inputs": {"source_sentence", "sentences"}}` is
//! sentence-similarity (cosine of normalised embeddings, one per sentence). Options may sit at
//! the top level (TEI style) or under `parameters` (Inference API style). Tasks an embedding
//! model cannot do — text-classification (`top_k`, `function_to_apply`), text pairs, rerank
//! (`query` + `texts`) — are a 400 saying what this route takes, never vectors passed off as
//! scores; so is `parameters: {}` with text inputs, the shape `huggingface_hub` gives every text
//! task but feature-extraction. Errors have TEI's shape. These routes use the default model, as TEI serves one.

mod types;

use axum::{extract::State, Json};
use serde_json::Value;
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    http::{
        embed::{self, parse_inputs, parse_texts},
        error::ApiError,
        extract::{ApiJson, RouteKey},
        state::AppState,
        tei::{TeiErrorResponse, TruncationDirection},
    },
    serving::{EmbedRequest, Priority},
};
pub use types::*;

#[derive(OpenApi)]
#[openapi(tags((name = "hub", description = "Hugging Face Inference API task shapes (`POST /`)")))]
struct HubApi;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(HubApi::openapi()).routes(routes!(task))
}

/// What `POST /` was asked to do.
#[derive(Debug, PartialEq)]
enum Task {
    FeatureExtraction(Vec<String>),
    SentenceSimilarity {
        source: String,
        sentences: Vec<String>,
    },
}

/// Runs a feature-extraction or sentence-similarity request (Hugging Face Inference API shapes).
#[utoipa::path(post, path = "/", tag = "hub", operation_id = "hub_task", request_body = HubRequest,
    responses((status = 200, body = HubResponse,
        description = "feature-extraction: one vector per input; sentence-similarity: one score per sentence"),
        (status = "4XX", body = TeiErrorResponse), (status = "5XX", body = TeiErrorResponse)))]
async fn task(
    State(state): State<AppState>,
    route_key: RouteKey,
    ApiJson(req): ApiJson<HubRequest>,
) -> Result<Json<HubResponse>, ApiError> {
    let options = req.options()?;
    refuse_other_tasks(&options)?;
    let max = state.limits.max_client_batch;
    let empty_parameters = req.empty_parameters();
    let (texts, similarity) = match task_of(req.inputs, max)? {
        Task::FeatureExtraction(_) if empty_parameters => return Err(unsupported(
            "`parameters: {}` with text inputs is how huggingface_hub sends text-classification \
                 and its other text tasks (feature-extraction sends its options at the top level)",
        )),
        Task::FeatureExtraction(texts) => (texts, false),
        Task::SentenceSimilarity { source, sentences } => {
            let mut texts = vec![source];
            texts.extend(sentences);
            (texts, true)
        }
    };
    let left = matches!(
        options.truncation_direction,
        Some(TruncationDirection::Left)
    );
    let request = EmbedRequest {
        texts,
        truncation: state.limits.truncation(options.truncate, left),
        // Similarities are cosines: of normalised vectors, whatever `normalize` says.
        normalize: similarity || options.normalize.unwrap_or(true),
        deadline: state.deadline(),
        prompt_name: options.prompt_name,
        dimensions: options.dimensions,
        priority: Priority::Interactive,
    };
    let target = embed::target(None, route_key);
    let (_, embedded) = embed::embed(&state, &target, request).await?;
    let vectors = embedded.vectors;
    Ok(Json(match similarity {
        false => HubResponse::Vectors(vectors),
        true => HubResponse::Scores(cosines(&vectors)),
    }))
}

/// Classification parameters mean a task an embedding model cannot do.
fn refuse_other_tasks(options: &HubOptions) -> Result<(), ApiError> {
    if options.top_k.is_some() || options.function_to_apply.is_some() {
        return Err(unsupported(
            "text-classification (`top_k`, `function_to_apply`) needs a classification model",
        ));
    }
    Ok(())
}

/// The task `inputs` asks for, with its texts checked.
fn task_of(inputs: Value, max_client_batch: usize) -> Result<Task, ApiError> {
    match inputs {
        Value::Object(mut fields) => {
            if fields.contains_key("source_sentence") || fields.contains_key("sentences") {
                let source = fields.remove("source_sentence").unwrap_or(Value::Null);
                let sentences = fields.remove("sentences").unwrap_or(Value::Null);
                return similarity_texts(source, sentences, max_client_batch);
            }
            if fields.contains_key("query") || fields.contains_key("texts") {
                return Err(unsupported(
                    "rerank (`query` and `texts`) is served at `POST /rerank`",
                ));
            }
            Err(unsupported(
                "an `inputs` object is sentence-similarity only",
            ))
        }
        Value::Array(items) if items.iter().any(Value::is_array) => Err(unsupported(
            "text pairs (classification or rerank of pairs) need a cross-encoder model",
        )),
        other => Ok(Task::FeatureExtraction(parse_inputs(
            other,
            max_client_batch,
        )?)),
    }
}

fn similarity_texts(source: Value, sentences: Value, max: usize) -> Result<Task, ApiError> {
    let Value::String(source) = source else {
        return Err(ApiError::InvalidInput(
            "`inputs.source_sentence` must be a non-empty string".into(),
        ));
    };
    if source.is_empty() {
        return Err(ApiError::InvalidInput(
            "`inputs.source_sentence` is an empty string".into(),
        ));
    }
    if !sentences.is_array() {
        return Err(ApiError::InvalidInput(
            "`inputs.sentences` must be a list of strings".into(),
        ));
    }
    // The source sentence rides in the same request, so the batch limit counts it too.
    let sentences = parse_texts("inputs.sentences", sentences, max.saturating_sub(1))?;
    Ok(Task::SentenceSimilarity { source, sentences })
}

/// A 400 naming what `POST /` does take.
fn unsupported(what: &str) -> ApiError {
    ApiError::UnsupportedParameter {
        param: "inputs",
        message: format!(
            "{what}; the model served here is an embedding model, and `POST /` takes \
             feature-extraction (`{{\"inputs\": text or [texts]}}`) and sentence-similarity \
             (`{{\"inputs\": {{\"source_sentence\": text, \"sentences\": [texts]}}}}`)"
        ),
    }
}

/// The cosine of each later vector to the first (all normalised).
fn cosines(vectors: &[Vec<f32>]) -> Vec<f32> {
    let (source, others) = vectors.split_first().expect("one vector per text");
    others
        .iter()
        .map(|v| v.iter().zip(source).map(|(a, b)| a * b).sum())
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_task_is_read_from_the_inputs() {
        assert_eq!(
            task_of(json!("a"), 4).unwrap(),
            Task::FeatureExtraction(vec!["a".into()])
        );
        assert_eq!(
            task_of(json!({"source_sentence": "a", "sentences": ["b", "c"]}), 4).unwrap(),
            Task::SentenceSimilarity {
                source: "a".into(),
                sentences: vec!["b".into(), "c".into()]
            }
        );
        for bad in [
            json!({"query": "a", "texts": ["b"]}),
            json!([["a", "b"]]),
            json!({"text": "a"}),
        ] {
            let err = task_of(bad.clone(), 4).unwrap_err();
            assert_eq!(err.status(), 400, "{bad}: {err}");
            assert!(err.to_string().contains("feature-extraction"), "{err}");
        }
        assert!(task_of(json!({"source_sentence": "a", "sentences": []}), 4).is_err());
        assert!(task_of(json!({"source_sentence": "", "sentences": ["b"]}), 4).is_err());
        let over = task_of(
            json!({"source_sentence": "a", "sentences": vec!["b"; 4]}),
            4,
        );
        assert!(over.unwrap_err().to_string().contains("at most 3"));
    }

    #[test]
    fn similarity_is_the_cosine_to_the_source() {
        let scores = cosines(&[vec![1.0, 0.0], vec![0.0, 1.0], vec![0.6, 0.8]]);
        assert_eq!(scores, vec![0.0, 0.6]);
    }
}
