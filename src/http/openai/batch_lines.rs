//! The `/v1/embeddings` request lines of a batch: each body is an [`EmbeddingsRequest`], run
//! through the same code as `POST /v1/embeddings` on the version the batch is pinned to, at
//! background priority, and answered with the same body that route would send (errors in
//! OpenAI's shape, with the same status and code).

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::Value;

use super::{create, error_body, EmbeddingsRequest, OpenAiOptions};
use crate::{
    deploy::{DeployError, Routed},
    http::error::ApiError,
    jobs::endpoint::{BoxFuture, Endpoint, Outcome},
    serving::{Deadline, Priority},
};

/// How long one batch request may wait for its compute, queueing behind interactive work
/// included; when it passes, the request is retried rather than failed.
const LINE_DEADLINE: Duration = Duration::from_secs(600);

/// Runs batch lines of `/v1/embeddings`.
pub struct EmbeddingsLines {
    /// `--max-client-batch`, `--auto-truncate` and `--openai-token-ids`, as on the
    /// synchronous route.
    pub options: OpenAiOptions,
}

impl Endpoint for EmbeddingsLines {
    fn url(&self) -> &'static str {
        "/v1/embeddings"
    }

    fn call<'a>(&'a self, routed: &'a Routed, body: Value) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let request: EmbeddingsRequest = match serde_json::from_value(body) {
                Ok(request) => request,
                Err(err) => return outcome(ApiError::InvalidInput(err.to_string())),
            };
            let deadline = Deadline::after(LINE_DEADLINE);
            match create(
                routed,
                request,
                self.options,
                deadline,
                Priority::Background,
            )
            .await
            {
                Ok(response) => Outcome::Answered {
                    status: StatusCode::OK.as_u16(),
                    tokens: response.usage.prompt_tokens,
                    body: serde_json::to_value(response).expect("responses serialise"),
                },
                Err(err) => outcome(err),
            }
        })
    }

    fn unroutable(&self, err: &DeployError) -> Outcome {
        outcome(err.clone().into())
    }
}

/// What a refused request gets: capacity problems are retried, server faults retried a few
/// times, anything else answered as the synchronous route would.
fn outcome(err: ApiError) -> Outcome {
    let status = err.status();
    let body = error_body(&err.parts(), status);
    match err {
        ApiError::Overloaded { .. }
        | ApiError::DeadlineExceeded(_)
        | ApiError::NotReady
        | ApiError::ShuttingDown => Outcome::Busy,
        _ if status.is_server_error() => Outcome::Fault {
            status: status.as_u16(),
            body,
        },
        _ => Outcome::Answered {
            status: status.as_u16(),
            body,
            tokens: 0,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_keep_the_routes_status_and_shape() {
        let Outcome::Answered { status, body, .. } = outcome(ApiError::InvalidInput("x".into()))
        else {
            panic!("a client error is answered")
        };
        assert_eq!(status, 422);
        assert_eq!(body["error"]["code"], "invalid_input");
        assert_eq!(body["error"]["type"], "invalid_request_error");
        let busy = ApiError::Overloaded {
            retry_after: Duration::from_secs(1),
        };
        assert_eq!(outcome(busy), Outcome::Busy);
        assert!(matches!(
            outcome(ApiError::Internal("boom".into())),
            Outcome::Fault { status: 500, .. }
        ));
        let options = OpenAiOptions {
            max_client_batch: 4,
            auto_truncate: true,
            token_ids: crate::http::openai::TokenIds::Tiktoken,
        };
        let Outcome::Answered { status, .. } =
            EmbeddingsLines { options }.unroutable(&DeployError::ModelNotFound("m".into()))
        else {
            panic!("an unknown model is answered")
        };
        assert_eq!(status, 404);
    }
}
