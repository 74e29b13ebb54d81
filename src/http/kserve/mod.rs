//! The KServe Open Inference Protocol v2 (REST) dialect: server and model metadata, health, and
//! `infer` with BYTES input tensors of texts → one FP32 output tensor: an embedding model's
//! `embedding` `[n, dims]`, a reranker's or classifier's `logits` `[n, labels]` (its inputs:
//! `text` and optionally `text_pair`; see [`Signature`](crate::serving::bytes_tensor::Signature)).
//!
//! - [`metadata`]: `/v2`, health, model metadata and readiness;
//! - [`infer`]: the two infer routes, through the one embedding path (canary and shadow on the
//!   unversioned route, pinned on the versioned one);
//! - [`tensor`]: the JSON and binary tensor codecs (`tritonclient.http` sends binary by default);
//! - [`types`]: the protocol's wire types.
//!
//! Errors are re-shaped to OIP's `{"error": "..."}` by [`error_shape`].

mod infer;
mod metadata;
mod tensor;
mod types;

use axum::{http::StatusCode, response::Response};
use serde_json::json;
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::http::{
    error::{reshape, ErrorParts},
    state::AppState,
};
pub use types::*;

const HEADER_LENGTH: &str = "inference-header-content-length";

#[derive(OpenApi)]
#[openapi(tags((name = "kserve", description = "KServe Open Inference Protocol v2 (REST)")))]
struct KServeApi;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(KServeApi::openapi())
        .routes(routes!(metadata::server_metadata))
        .routes(routes!(metadata::live))
        .routes(routes!(metadata::ready))
        .routes(routes!(metadata::model_metadata))
        .routes(routes!(metadata::version_metadata))
        .routes(routes!(metadata::model_ready))
        .routes(routes!(metadata::version_ready))
        .routes(routes!(infer::infer))
        .routes(routes!(infer::version_infer))
}

/// Re-shapes an inferd error into OIP's `{"error": "..."}`.
pub fn error_shape(response: Response) -> Response {
    reshape(
        response,
        |parts: &ErrorParts, _: StatusCode| json!({ "error": parts.message }),
    )
}
