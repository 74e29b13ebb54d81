//! `tei.v1.Embed`: one text per message, pooled through the one embedding path.

use std::time::Instant;

use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::{metadata, target, truncation, Tei};
use crate::{
    deploy::Target,
    grpc::{
        call::{ordered, Admitted},
        metrics::observe,
        proto::tei::v1::{
            embed_server::Embed, EmbedAllRequest, EmbedAllResponse, EmbedRequest, EmbedResponse,
            EmbedSparseRequest, EmbedSparseResponse,
        },
        status::CallError,
        GrpcState,
    },
    serving::{self, Priority},
};

const SERVICE: &str = "tei.v1.Embed";

type Answers<T> = ReceiverStream<Result<T, Status>>;

/// Embeds one message's text.
async fn embed_one(
    state: &GrpcState,
    admitted: Admitted,
    target: &Target,
    req: EmbedRequest,
) -> Result<EmbedResponse, CallError> {
    let started = Instant::now();
    if req.inputs.is_empty() {
        return Err(CallError::InvalidInput(
            "`inputs` is an empty string".into(),
        ));
    }
    let chars = req.inputs.chars().count();
    let request = serving::EmbedRequest {
        texts: vec![req.inputs],
        truncation: truncation(req.truncate, req.truncation_direction),
        normalize: req.normalize.unwrap_or(true),
        deadline: admitted.deadline(),
        prompt_name: req.prompt_name,
        dimensions: req.dimensions.map(|d| d as usize),
        priority: Priority::Interactive,
    };
    let routed = state.registry.route(target)?;
    let embedded = routed.embed(request).await?;
    let embeddings = embedded.vectors.into_iter().next().unwrap_or_default();
    Ok(EmbedResponse {
        embeddings,
        metadata: Some(metadata(chars, embedded.prompt_tokens, started)),
    })
}

fn not_served(what: &str) -> Status {
    CallError::Unimplemented(what.into()).into()
}

const NO_SPARSE: &str = "sparse embeddings need a SPLADE-style model; inferd serves dense \
                         embedding, reranker and classifier models";
const NO_TOKEN_EMBEDDINGS: &str = "token embeddings are not exposed: inferd's model path returns \
                                   pooled vectors only; use Embed";

#[tonic::async_trait]
impl Embed for Tei {
    async fn embed(
        &self,
        request: Request<EmbedRequest>,
    ) -> Result<Response<EmbedResponse>, Status> {
        observe(SERVICE, "Embed", async {
            let admitted = self.state.admit(request.metadata())?;
            let target = target(request.metadata());
            let answer = embed_one(&self.state, admitted, &target, request.into_inner()).await?;
            Ok::<_, Status>(Response::new(answer))
        })
        .await
    }

    type EmbedStreamStream = Answers<EmbedResponse>;

    async fn embed_stream(
        &self,
        request: Request<Streaming<EmbedRequest>>,
    ) -> Result<Response<Self::EmbedStreamStream>, Status> {
        observe(SERVICE, "EmbedStream", async {
            let admitted = self.state.admit(request.metadata())?;
            let target = target(request.metadata());
            let state = self.state.clone();
            let answers = ordered(request.into_inner(), move |req| {
                let (state, target) = (state.clone(), target.clone());
                async move {
                    embed_one(&state, admitted, &target, req)
                        .await
                        .map_err(Status::from)
                }
            });
            Ok::<_, Status>(Response::new(answers))
        })
        .await
    }

    async fn embed_sparse(
        &self,
        _request: Request<EmbedSparseRequest>,
    ) -> Result<Response<EmbedSparseResponse>, Status> {
        Err(not_served(NO_SPARSE))
    }

    type EmbedSparseStreamStream = Answers<EmbedSparseResponse>;

    async fn embed_sparse_stream(
        &self,
        _request: Request<Streaming<EmbedSparseRequest>>,
    ) -> Result<Response<Self::EmbedSparseStreamStream>, Status> {
        Err(not_served(NO_SPARSE))
    }

    async fn embed_all(
        &self,
        _request: Request<EmbedAllRequest>,
    ) -> Result<Response<EmbedAllResponse>, Status> {
        Err(not_served(NO_TOKEN_EMBEDDINGS))
    }

    type EmbedAllStreamStream = Answers<EmbedAllResponse>;

    async fn embed_all_stream(
        &self,
        _request: Request<Streaming<EmbedAllRequest>>,
    ) -> Result<Response<Self::EmbedAllStreamStream>, Status> {
        Err(not_served(NO_TOKEN_EMBEDDINGS))
    }
}
