//! `POST /predict`: a classifier's (or reranker's) labels and scores for texts and text pairs,
//! TEI style. `inputs` is a text, a pair `[text, text]` (a list of exactly two texts is one
//! pair, as in TEI), or a list of texts and pairs. Scores are the softmax over the labels
//! (sigmoid for a one-label model) unless `raw_scores`; each input's labels come best first.
//! An embedding model answers 400 `wrong_model_kind`.

use axum::{extract::State, Json};
use serde_json::Value;

use super::{truncation, PredictRequest, PredictResponse, Prediction, TeiErrorResponse};
use crate::{
    http::{
        embed::{self, check_batch, json_type},
        error::ApiError,
        extract::{ApiJson, RouteKey},
        state::AppState,
    },
    model::heads::{sigmoid, softmax},
    serving::{ClassifyInput, ClassifyRequest, Priority},
};

/// Labels and scores for each input, best first.
#[utoipa::path(post, path = "/predict", tag = "tei", request_body = PredictRequest,
    responses((status = 200, body = PredictResponse),
        (status = "4XX", body = TeiErrorResponse), (status = "5XX", body = TeiErrorResponse)))]
pub(super) async fn predict(
    State(state): State<AppState>,
    route_key: RouteKey,
    ApiJson(req): ApiJson<PredictRequest>,
) -> Result<Json<PredictResponse>, ApiError> {
    let (inputs, batch) = parse_predict_inputs(req.inputs, state.limits.max_client_batch)?;
    let routed = embed::route(&state, &embed::target(None, route_key))?;
    let request = ClassifyRequest {
        inputs,
        truncation: truncation(&state.limits, req.truncate, req.truncation_direction),
        deadline: state.deadline(),
        priority: Priority::Interactive,
    };
    let classified = routed.classify(request).await?;
    let labels = &routed.handle.info.labels;
    let mut predictions: Vec<Vec<Prediction>> = classified
        .logits
        .iter()
        .map(|logits| predictions(labels, logits, req.raw_scores))
        .collect();
    Ok(Json(match batch {
        true => PredictResponse::Batch(predictions),
        false => PredictResponse::Single(predictions.remove(0)),
    }))
}

/// Each label with its score, best first.
fn predictions(labels: &[String], logits: &[f32], raw_scores: bool) -> Vec<Prediction> {
    let scores = match (raw_scores, logits.len()) {
        (true, _) => logits.to_vec(),
        (false, 1) => vec![sigmoid(logits[0])],
        (false, _) => softmax(logits),
    };
    let mut out: Vec<Prediction> = labels
        .iter()
        .zip(scores)
        .map(|(label, score)| Prediction {
            label: label.clone(),
            score,
        })
        .collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    out
}

/// The inputs, and whether they came as a batch (a list of texts or pairs).
fn parse_predict_inputs(
    inputs: Value,
    max_client_batch: usize,
) -> Result<(Vec<ClassifyInput>, bool), ApiError> {
    if let Some(one) = as_input(&inputs) {
        return Ok((vec![check_input("inputs", one?)?], false));
    }
    let items = match inputs {
        Value::Array(items) => items,
        other => {
            return Err(invalid(format!(
                "`inputs` must be a text, a pair [text, text] or a list of them, got {}",
                json_type(&other)
            )))
        }
    };
    check_batch("inputs", items.len(), max_client_batch)?;
    let parsed = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let field = format!("inputs[{i}]");
            match as_input(item) {
                Some(input) => check_input(&field, input?),
                None => Err(invalid(format!(
                    "`{field}` must be a text or a pair [text, text], got {}",
                    json_type(item)
                ))),
            }
        })
        .collect::<Result<_, _>>()?;
    Ok((parsed, true))
}

/// A text or a pair of texts; `None` for anything else (a list may still be a batch).
fn as_input(value: &Value) -> Option<Result<ClassifyInput, ApiError>> {
    match value {
        Value::String(text) => Some(Ok(ClassifyInput::Single(text.clone()))),
        Value::Array(pair) if pair.len() == 2 && pair.iter().all(Value::is_string) => {
            let text = |i: usize| pair[i].as_str().unwrap_or_default().to_string();
            Some(Ok(ClassifyInput::Pair(text(0), text(1))))
        }
        _ => None,
    }
}

fn check_input(field: &str, input: ClassifyInput) -> Result<ClassifyInput, ApiError> {
    let empty = match &input {
        ClassifyInput::Single(a) => a.is_empty(),
        ClassifyInput::Pair(a, b) => a.is_empty() || b.is_empty(),
    };
    match empty {
        true => Err(invalid(format!("`{field}` holds an empty string"))),
        false => Ok(input),
    }
}

fn invalid(message: String) -> ApiError {
    ApiError::InvalidInput(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<(Vec<ClassifyInput>, bool), ApiError> {
        parse_predict_inputs(v, 3)
    }

    fn pair(a: &str, b: &str) -> ClassifyInput {
        ClassifyInput::Pair(a.into(), b.into())
    }

    #[test]
    fn every_input_shape() {
        let single = ClassifyInput::Single("a".into());
        assert_eq!(parse(json!("a")).unwrap(), (vec![single.clone()], false));
        assert_eq!(
            parse(json!(["a", "b"])).unwrap(),
            (vec![pair("a", "b")], false)
        );
        let batch = parse(json!([["a", "b"], "a"])).unwrap();
        assert_eq!(batch, (vec![pair("a", "b"), single.clone()], true));
        let texts = parse(json!(["a", "a", "a"])).unwrap();
        assert_eq!(texts.0.len(), 3);
        assert!(texts.1);
    }

    #[test]
    fn bad_inputs_say_what_is_wrong() {
        let msg = |v| parse(v).unwrap_err().to_string();
        assert!(msg(json!([])).contains("empty list"));
        assert!(msg(json!(["a", 3, "c"])).contains("inputs[1]"));
        assert!(msg(json!([["a", "b", "c"]])).contains("inputs[0]"));
        assert!(msg(json!(["a", "a", "a", "a"])).contains("at most 3"));
        assert!(msg(json!("")).contains("empty string"));
        assert!(msg(json!(["a", ""])).contains("empty string"));
        assert!(msg(json!(7)).contains("got a number"));
    }

    #[test]
    fn scores_are_softmax_or_sigmoid_best_first() {
        let labels = ["neg".to_string(), "pos".to_string()];
        let p = predictions(&labels, &[0.0, 2.0f32.ln()], false);
        assert_eq!(p[0].label, "pos");
        assert!((p[0].score - 2.0 / 3.0).abs() < 1e-6);
        let raw = predictions(&labels, &[0.5, -1.0], true);
        assert_eq!((raw[0].label.as_str(), raw[0].score), ("neg", 0.5));
        let one = predictions(&labels[..1], &[0.0], false);
        assert!((one[0].score - 0.5).abs() < 1e-7);
    }
}
