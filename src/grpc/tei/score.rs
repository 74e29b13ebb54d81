//! `tei.v1.Rerank` and `tei.v1.Predict`: a reranker's cross-encoder on (query, text) pairs and a
//! classifier's (or reranker's) head on texts and pairs, through [`Routed::classify`] on the
//! same queue as embeddings. Another kind of model answers FAILED_PRECONDITION (gRPC reranking
//! runs cross-encoders only; HTTP `/rerank` also scores by cosine on an embedding model).
//!
//! Scores are the sigmoid of a one-label model's logit, a softmax over several labels, or the
//! raw logits with `raw_scores`; ranks and predictions come best first.

use std::time::Instant;

use tokio_stream::{wrappers::ReceiverStream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::{metadata, target, truncation, Tei};
use crate::{
    deploy::{Routed, Target},
    grpc::{
        call::{check_texts, ordered, Admitted},
        metrics::observe,
        proto::tei::v1::{
            predict_server::Predict, rerank_server::Rerank, PredictPairRequest, PredictRequest,
            PredictResponse, Prediction, Rank, RerankRequest, RerankResponse, RerankStreamRequest,
        },
        status::CallError,
        GrpcState,
    },
    model::{
        heads::{sigmoid, softmax, ModelKind},
        tokenizer::Truncation,
    },
    serving::{ClassifyInput, ClassifyRequest, Priority},
};

/// Scores `inputs` on the routed version: one row of logits each, and the tokens computed.
async fn classify(
    routed: &Routed,
    admitted: Admitted,
    inputs: Vec<ClassifyInput>,
    truncation: Truncation,
) -> Result<(Vec<Vec<f32>>, usize), CallError> {
    let classified = routed
        .classify(ClassifyRequest {
            inputs,
            truncation,
            deadline: admitted.deadline(),
            priority: Priority::Interactive,
        })
        .await?;
    Ok((classified.logits, classified.prompt_tokens))
}

/// A query and texts, ranked.
struct RerankCall {
    query: String,
    texts: Vec<String>,
    truncation: Truncation,
    raw_scores: bool,
    return_text: bool,
}

async fn rerank(
    state: &GrpcState,
    admitted: Admitted,
    target: &Target,
    call: RerankCall,
) -> Result<RerankResponse, CallError> {
    let started = Instant::now();
    if call.query.is_empty() {
        return Err(CallError::InvalidInput("`query` is an empty string".into()));
    }
    check_texts("texts", &call.texts, state.limits.max_client_batch)?;
    let routed = state.registry.route(target)?;
    routed
        .handle
        .expect_kind(&[ModelKind::Reranker], "tei.v1.Rerank")?;
    let chars = call.query.chars().count() * call.texts.len()
        + call.texts.iter().map(|t| t.chars().count()).sum::<usize>();
    let inputs = call
        .texts
        .iter()
        .map(|t| ClassifyInput::Pair(call.query.clone(), t.clone()))
        .collect();
    let (logits, tokens) = classify(&routed, admitted, inputs, call.truncation).await?;
    let mut ranks: Vec<Rank> = logits
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let logit = row.first().copied().unwrap_or_default();
            Rank {
                index: i as u32,
                text: call.return_text.then(|| call.texts[i].clone()),
                score: if call.raw_scores {
                    logit
                } else {
                    sigmoid(logit)
                },
            }
        })
        .collect();
    ranks.sort_by(|a, b| b.score.total_cmp(&a.score));
    Ok(RerankResponse {
        ranks,
        metadata: Some(metadata(chars, tokens, started)),
    })
}

/// One input through a classifier's or reranker's head: each label's score, best first.
async fn predict(
    state: &GrpcState,
    admitted: Admitted,
    target: &Target,
    input: ClassifyInput,
    truncation: Truncation,
    raw_scores: bool,
) -> Result<PredictResponse, CallError> {
    let started = Instant::now();
    let chars = match &input {
        ClassifyInput::Single(a) => a.chars().count(),
        ClassifyInput::Pair(a, b) => a.chars().count() + b.chars().count(),
    };
    let routed = state.registry.route(target)?;
    let (logits, tokens) = classify(&routed, admitted, vec![input], truncation).await?;
    let logits = logits.into_iter().next().unwrap_or_default();
    let scores = match (raw_scores, logits.len()) {
        (true, _) => logits,
        (false, 1) => vec![sigmoid(logits[0])],
        (false, _) => softmax(&logits),
    };
    let labels = &routed.handle.info.labels;
    let mut predictions: Vec<Prediction> = scores
        .into_iter()
        .enumerate()
        .map(|(i, score)| Prediction {
            score,
            label: labels
                .get(i)
                .cloned()
                .unwrap_or_else(|| format!("LABEL_{i}")),
        })
        .collect();
    predictions.sort_by(|a, b| b.score.total_cmp(&a.score));
    Ok(PredictResponse {
        predictions,
        metadata: Some(metadata(chars, tokens, started)),
    })
}

/// A `Predict` message: one text or a pair, with its options.
trait PredictMessage: Send + 'static {
    fn input(&self) -> Result<ClassifyInput, CallError>;
    fn truncation(&self) -> Truncation;
    fn raw_scores(&self) -> bool;
}

impl PredictMessage for PredictRequest {
    fn input(&self) -> Result<ClassifyInput, CallError> {
        match self.inputs.is_empty() {
            true => Err(CallError::InvalidInput(
                "`inputs` is an empty string".into(),
            )),
            false => Ok(ClassifyInput::Single(self.inputs.clone())),
        }
    }

    fn truncation(&self) -> Truncation {
        truncation(self.truncate, self.truncation_direction)
    }

    fn raw_scores(&self) -> bool {
        self.raw_scores
    }
}

impl PredictMessage for PredictPairRequest {
    fn input(&self) -> Result<ClassifyInput, CallError> {
        match self.inputs.as_slice() {
            [a, b] if !a.is_empty() && !b.is_empty() => {
                Ok(ClassifyInput::Pair(a.clone(), b.clone()))
            }
            _ => Err(CallError::InvalidInput(
                "`inputs` must be a pair of two non-empty texts".into(),
            )),
        }
    }

    fn truncation(&self) -> Truncation {
        truncation(self.truncate, self.truncation_direction)
    }

    fn raw_scores(&self) -> bool {
        self.raw_scores
    }
}

/// One `Predict` message, checked and scored.
async fn predict_message(
    state: &GrpcState,
    admitted: Admitted,
    target: &Target,
    message: impl PredictMessage,
) -> Result<PredictResponse, CallError> {
    let input = message.input()?;
    let (trunc, raw) = (message.truncation(), message.raw_scores());
    predict(state, admitted, target, input, trunc, raw).await
}

impl Tei {
    /// `Predict` and `PredictPair`.
    async fn predict_unary<M: PredictMessage>(
        &self,
        method: &'static str,
        request: Request<M>,
    ) -> Result<Response<PredictResponse>, Status> {
        observe("tei.v1.Predict", method, async {
            let admitted = self.state.admit(request.metadata())?;
            let target = target(request.metadata());
            let answer = predict_message(&self.state, admitted, &target, request.into_inner());
            Ok::<_, Status>(Response::new(answer.await?))
        })
        .await
    }

    /// `PredictStream` and `PredictPairStream`: each message answered in order.
    async fn predict_streaming<M: PredictMessage>(
        &self,
        method: &'static str,
        request: Request<Streaming<M>>,
    ) -> Result<Response<Predictions>, Status> {
        observe("tei.v1.Predict", method, async {
            let admitted = self.state.admit(request.metadata())?;
            let target = target(request.metadata());
            let state = self.state.clone();
            Ok::<_, Status>(Response::new(ordered(request.into_inner(), move |req| {
                let (state, target) = (state.clone(), target.clone());
                async move { Ok::<_, Status>(predict_message(&state, admitted, &target, req).await?) }
            })))
        })
        .await
    }
}

#[tonic::async_trait]
impl Rerank for Tei {
    async fn rerank(
        &self,
        request: Request<RerankRequest>,
    ) -> Result<Response<RerankResponse>, Status> {
        observe("tei.v1.Rerank", "Rerank", async {
            let admitted = self.state.admit(request.metadata())?;
            let target = target(request.metadata());
            let req = request.into_inner();
            let call = RerankCall {
                query: req.query,
                texts: req.texts,
                truncation: truncation(req.truncate, req.truncation_direction),
                raw_scores: req.raw_scores,
                return_text: req.return_text,
            };
            Ok::<_, Status>(Response::new(
                rerank(&self.state, admitted, &target, call).await?,
            ))
        })
        .await
    }

    /// Collects the pairs (at most `--max-client-batch`), then ranks them as one request; the
    /// first message's query, `raw_scores`, `return_text` and truncation apply.
    async fn rerank_stream(
        &self,
        request: Request<Streaming<RerankStreamRequest>>,
    ) -> Result<Response<RerankResponse>, Status> {
        observe("tei.v1.Rerank", "RerankStream", async {
            let admitted = self.state.admit(request.metadata())?;
            let target = target(request.metadata());
            let max = self.state.limits.max_client_batch;
            let mut inbound = request.into_inner();
            let mut call: Option<RerankCall> = None;
            while let Some(message) = inbound.next().await {
                let message = message?;
                let call = call.get_or_insert_with(|| RerankCall {
                    query: message.query.clone(),
                    texts: Vec::new(),
                    truncation: truncation(message.truncate, message.truncation_direction),
                    raw_scores: message.raw_scores,
                    return_text: message.return_text,
                });
                if call.texts.len() == max {
                    return Err(Status::from(CallError::InvalidInput(format!(
                        "more than {max} texts in one rerank stream"
                    ))));
                }
                call.texts.push(message.text);
            }
            let call = call.ok_or_else(|| {
                CallError::InvalidInput("the rerank stream sent no messages".into())
            })?;
            Ok::<_, Status>(Response::new(
                rerank(&self.state, admitted, &target, call).await?,
            ))
        })
        .await
    }
}

type Predictions = ReceiverStream<Result<PredictResponse, Status>>;

#[tonic::async_trait]
impl Predict for Tei {
    async fn predict(
        &self,
        request: Request<PredictRequest>,
    ) -> Result<Response<PredictResponse>, Status> {
        self.predict_unary("Predict", request).await
    }

    async fn predict_pair(
        &self,
        request: Request<PredictPairRequest>,
    ) -> Result<Response<PredictResponse>, Status> {
        self.predict_unary("PredictPair", request).await
    }

    type PredictStreamStream = Predictions;

    async fn predict_stream(
        &self,
        request: Request<Streaming<PredictRequest>>,
    ) -> Result<Response<Predictions>, Status> {
        self.predict_streaming("PredictStream", request).await
    }

    type PredictPairStreamStream = Predictions;

    async fn predict_pair_stream(
        &self,
        request: Request<Streaming<PredictPairRequest>>,
    ) -> Result<Response<Predictions>, Status> {
        self.predict_streaming("PredictPairStream", request).await
    }
}
