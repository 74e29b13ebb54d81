//! `tei.v1.Info`: the default model's id, kind and the serving limits.

use tonic::{Request, Response, Status};

use super::Tei;
use crate::{
    grpc::{
        metrics::observe,
        proto::tei::v1::{info_server::Info, InfoRequest, InfoResponse, ModelType},
        status::CallError,
    },
    model::heads::ModelKind,
};

fn clamp(n: usize) -> u32 {
    n.try_into().unwrap_or(u32::MAX)
}

#[tonic::async_trait]
impl Info for Tei {
    async fn info(&self, request: Request<InfoRequest>) -> Result<Response<InfoResponse>, Status> {
        observe("tei.v1.Info", "Info", async {
            let state = &self.state;
            state.admit(request.metadata())?;
            let model = state.registry.get(None).map_err(CallError::from)?;
            let info = &model.info;
            let model_type = match info.kind {
                ModelKind::Embedding => ModelType::Embedding,
                ModelKind::Classifier => ModelType::Classifier,
                ModelKind::Reranker => ModelType::Reranker,
            };
            Ok::<_, Status>(Response::new(InfoResponse {
                version: env!("CARGO_PKG_VERSION").into(),
                sha: None,
                docker_label: None,
                model_id: info.hub_repo.clone().unwrap_or_else(|| info.name.clone()),
                model_sha: Some(info.sha256.clone()),
                model_dtype: info.dtype.clone(),
                model_type: model_type as i32,
                max_concurrent_requests: clamp(model.config.queue_capacity),
                max_input_length: clamp(info.max_seq_length),
                max_batch_tokens: clamp(model.config.limits.max_tokens),
                max_batch_requests: Some(clamp(model.config.limits.max_sequences)),
                max_client_batch_size: clamp(state.limits.max_client_batch),
                tokenization_workers: clamp(model.config.tokenizer_workers),
            }))
        })
        .await
    }
}
