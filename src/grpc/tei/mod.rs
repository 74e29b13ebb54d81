//! TEI's `tei.v1` services on inferd's one embedding path: `Info`, `Embed`, `Tokenize`,
//! `Rerank`, `Predict`, all on the default model as TEI serves one (canary split and the sticky
//! `x-inferd-route-key` metadata included).
//!
//! - [`embed`]: `Embed`, `EmbedStream` through [`Routed::embed`](crate::deploy::Routed::embed);
//!   `EmbedAll*` (token embeddings: the model path gives pooled vectors only) and `EmbedSparse*`
//!   (no sparse models) answer UNIMPLEMENTED;
//! - [`tokenize`]: `Tokenize`, `Decode` and their streams on the model's tokenizer pool;
//! - [`score`]: `Rerank` (a reranker's cross-encoder) and `Predict` (a classifier's head),
//!   FAILED_PRECONDITION on a model of another kind;
//! - [`info`] answers `Info`.
//!
//! Every call is [`admit`](super::GrpcState::admit)ted first and [observed](super::metrics::observe) for metrics.

mod embed;
mod info;
mod score;
mod tokenize;

use std::time::Instant;

use tonic::{metadata::MetadataMap, transport::server::Router};

use super::{
    proto::tei::v1::{
        embed_server::EmbedServer, info_server::InfoServer, predict_server::PredictServer,
        rerank_server::RerankServer, tokenize_server::TokenizeServer, Metadata,
        TruncationDirection,
    },
    GrpcState,
};
use crate::{deploy::Target, model::tokenizer::Truncation};

/// The services' full names, for health and metrics.
pub const SERVICE_NAMES: &[&str] = &[
    "tei.v1.Info",
    "tei.v1.Embed",
    "tei.v1.Tokenize",
    "tei.v1.Rerank",
    "tei.v1.Predict",
];

/// Each service's methods, for the metric series registered at zero.
pub const METHODS: &[(&str, &[&str])] = &[
    ("tei.v1.Info", &["Info"]),
    ("tei.v1.Embed", &["Embed", "EmbedStream"]),
    (
        "tei.v1.Tokenize",
        &["Tokenize", "TokenizeStream", "Decode", "DecodeStream"],
    ),
    ("tei.v1.Rerank", &["Rerank", "RerankStream"]),
    (
        "tei.v1.Predict",
        &[
            "Predict",
            "PredictPair",
            "PredictStream",
            "PredictPairStream",
        ],
    ),
];

/// The `tei.v1` service implementations; one value serves every service.
#[derive(Clone)]
pub struct Tei {
    state: GrpcState,
}

/// Adds every `tei.v1` service, with `--max-body-bytes` as the message-size limit both ways.
pub fn add_services<L>(mut router: Router<L>, state: &GrpcState) -> Router<L> {
    let tei = Tei {
        state: state.clone(),
    };
    let limit = state.limits.max_message_bytes;
    macro_rules! add {
        ($server:ident) => {
            router = router.add_service(
                $server::new(tei.clone())
                    .max_decoding_message_size(limit)
                    .max_encoding_message_size(limit),
            );
        };
    }
    add!(InfoServer);
    add!(EmbedServer);
    add!(TokenizeServer);
    add!(RerankServer);
    add!(PredictServer);
    router
}

/// The default model, with the caller's sticky key.
fn target(metadata: &MetadataMap) -> Target {
    Target {
        model: None,
        route_key: route_key(metadata),
    }
}

/// The caller's sticky key for canary routing (`x-inferd-route-key` metadata).
pub(super) fn route_key(metadata: &MetadataMap) -> Option<String> {
    metadata
        .get("x-inferd-route-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// TEI's `truncate` (false: refuse a text over the limit) and direction.
fn truncation(truncate: bool, direction: i32) -> Truncation {
    let left = direction == TruncationDirection::Left as i32;
    match (truncate, left) {
        (false, _) => Truncation::Refuse,
        (true, false) => Truncation::Right,
        (true, true) => Truncation::Left,
    }
}

/// What a response reports about its work. inferd measures the whole call; the split into
/// tokenization, queue and inference time is not tracked per request and reads 0.
fn metadata(chars: usize, tokens: usize, started: Instant) -> Metadata {
    Metadata {
        compute_chars: chars.try_into().unwrap_or(u32::MAX),
        compute_tokens: tokens.try_into().unwrap_or(u32::MAX),
        total_time_ns: started.elapsed().as_nanos().try_into().unwrap_or(u64::MAX),
        tokenization_time_ns: 0,
        queue_time_ns: 0,
        inference_time_ns: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_false_refuses_and_left_keeps_the_end() {
        let left = TruncationDirection::Left as i32;
        let right = TruncationDirection::Right as i32;
        assert_eq!(truncation(false, left), Truncation::Refuse);
        assert_eq!(truncation(true, right), Truncation::Right);
        assert_eq!(truncation(true, left), Truncation::Left);
    }
}
