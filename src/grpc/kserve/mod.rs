//! The KServe Open Inference Protocol v2 over gRPC (`inference.GRPCInferenceService`), the
//! same dialect as the REST `/v2` routes: health, server and model metadata, and `ModelInfer`
//! with BYTES input `text` → FP32 output `embedding` `[n, dims]` (a reranker or classifier:
//! `text` and optionally `text_pair` → `logits` `[n, labels]`).
//!
//! `ModelInfer` with an empty `model_version` names the model like `/infer`'s `model` field: it
//! takes part in canaries (sticky by the `x-inferd-route-key` metadata) and shadows; a version
//! pins it. Every call needs the API key when keys are configured, as on REST; a draining server
//! answers `ServerReady` and `ModelReady` with `ready: false` and refuses `ModelInfer` with
//! UNAVAILABLE. Triton's extensions (repository, statistics, shared memory, streaming) are not
//! part of the protocol and answer UNIMPLEMENTED.
//!
//! - [`infer`]: the input tensor (typed `bytes_contents` or `raw_input_contents`), parameters and
//!   the output tensor (raw when the request was raw, as Triton does; else `fp32_contents`).

mod infer;

use std::sync::Arc;

use tonic::{metadata::MetadataMap, transport::server::Router, Request, Response, Status};

use super::{
    metrics::observe,
    proto::inference::{
        grpc_inference_service_server::{GrpcInferenceService, GrpcInferenceServiceServer},
        model_metadata_response::TensorMetadata,
        ModelInferRequest, ModelInferResponse, ModelMetadataRequest, ModelMetadataResponse,
        ModelReadyRequest, ModelReadyResponse, ServerLiveRequest, ServerLiveResponse,
        ServerMetadataRequest, ServerMetadataResponse, ServerReadyRequest, ServerReadyResponse,
    },
    status::CallError,
    GrpcState,
};
use crate::serving::{bytes_tensor::Signature, ModelHandle, ModelRef};

/// The service's full name, for health and metrics.
pub const SERVICE: &str = "inference.GRPCInferenceService";

/// Its methods, for the metric series registered at zero.
pub const METHODS: &[&str] = &[
    "ServerLive",
    "ServerReady",
    "ModelReady",
    "ServerMetadata",
    "ModelMetadata",
    "ModelInfer",
];

#[derive(Clone)]
pub struct KServe {
    state: GrpcState,
}

/// Adds the service, with `--max-body-bytes` as the message-size limit both ways.
pub fn add_service<L>(router: Router<L>, state: &GrpcState) -> Router<L> {
    let limit = state.limits.max_message_bytes;
    let kserve = KServe {
        state: state.clone(),
    };
    router.add_service(
        GrpcInferenceServiceServer::new(kserve)
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit),
    )
}

impl KServe {
    /// The API key and its rate limit (no draining check: health answers while draining).
    fn authorize(&self, metadata: &MetadataMap) -> Result<(), CallError> {
        self.state.authorize(metadata).map(|_| ())
    }

    /// `name` (its promoted version) or `name`'s `version` when not empty.
    fn lookup(&self, name: &str, version: &str) -> Result<Arc<ModelHandle>, CallError> {
        if name.is_empty() {
            return Err(CallError::InvalidInput("`name` is required".into()));
        }
        let version = (!version.is_empty()).then_some(version);
        let model = ModelRef::named(name).or_version(version);
        Ok(self.state.registry.get(Some(&model))?)
    }
}

fn tensor(name: &str, datatype: &str, shape: Vec<i64>) -> TensorMetadata {
    TensorMetadata {
        name: name.into(),
        datatype: datatype.into(),
        shape,
    }
}

#[tonic::async_trait]
impl GrpcInferenceService for KServe {
    async fn server_live(
        &self,
        request: Request<ServerLiveRequest>,
    ) -> Result<Response<ServerLiveResponse>, Status> {
        observe(SERVICE, "ServerLive", async {
            self.authorize(request.metadata())?;
            Ok::<_, Status>(Response::new(ServerLiveResponse { live: true }))
        })
        .await
    }

    async fn server_ready(
        &self,
        request: Request<ServerReadyRequest>,
    ) -> Result<Response<ServerReadyResponse>, Status> {
        observe(SERVICE, "ServerReady", async {
            self.authorize(request.metadata())?;
            let ready = self.state.readiness.ready();
            Ok::<_, Status>(Response::new(ServerReadyResponse { ready }))
        })
        .await
    }

    async fn model_ready(
        &self,
        request: Request<ModelReadyRequest>,
    ) -> Result<Response<ModelReadyResponse>, Status> {
        observe(SERVICE, "ModelReady", async {
            self.authorize(request.metadata())?;
            let req = request.get_ref();
            self.lookup(&req.name, &req.version)?;
            let ready = self.state.readiness.ready();
            Ok::<_, Status>(Response::new(ModelReadyResponse { ready }))
        })
        .await
    }

    async fn server_metadata(
        &self,
        request: Request<ServerMetadataRequest>,
    ) -> Result<Response<ServerMetadataResponse>, Status> {
        observe(SERVICE, "ServerMetadata", async {
            self.authorize(request.metadata())?;
            Ok::<_, Status>(Response::new(ServerMetadataResponse {
                name: "inferd".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                extensions: Vec::new(),
            }))
        })
        .await
    }

    async fn model_metadata(
        &self,
        request: Request<ModelMetadataRequest>,
    ) -> Result<Response<ModelMetadataResponse>, Status> {
        observe(SERVICE, "ModelMetadata", async {
            self.authorize(request.metadata())?;
            let req = request.get_ref();
            let handle = self.lookup(&req.name, &req.version)?;
            let info = &handle.info;
            let signature = Signature::of(info.kind);
            let inputs = signature.inputs.iter();
            Ok::<_, Status>(Response::new(ModelMetadataResponse {
                name: info.name.clone(),
                versions: vec![info.version.clone()],
                platform: "inferd".into(),
                inputs: inputs.map(|n| tensor(n, "BYTES", vec![-1])).collect(),
                outputs: vec![tensor(
                    signature.output,
                    "FP32",
                    vec![-1, info.dimensions as i64],
                )],
            }))
        })
        .await
    }

    async fn model_infer(
        &self,
        request: Request<ModelInferRequest>,
    ) -> Result<Response<ModelInferResponse>, Status> {
        observe(SERVICE, "ModelInfer", async {
            let admitted = self.state.admit(request.metadata())?;
            let route_key = super::tei::route_key(request.metadata());
            let answer = infer::run(&self.state, admitted, route_key, request.into_inner()).await?;
            Ok::<_, Status>(Response::new(answer))
        })
        .await
    }
}
