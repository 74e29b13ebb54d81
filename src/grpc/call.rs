//! What every `tei.v1` call does before its work, and the stream driver.
//!
//! [`GrpcState::admit`] checks, in order: the API key (`authorization: Bearer <key>` or
//! `x-api-key` metadata, the same keys as HTTP), the rate limit of that key, and draining. Its
//! [`Admitted`] carries the call's deadline: `--request-timeout`, or the client's `grpc-timeout`
//! when that is shorter, so a client's deadline fails with `DEADLINE_EXCEEDED` from the batcher
//! instead of work done for nobody.
//!
//! [`ordered`] runs a bidirectional stream: each inbound message is handled as its own task (so
//! messages of one stream batch together), at most [`STREAM_WINDOW`] in flight, answers sent in
//! the messages' order. The window is the backpressure: a client that stops reading fills it and
//! the server stops reading its messages. A client that goes away aborts the messages in flight
//! at once (their batcher requests are dropped unanswered, `client_gone`), and a message that
//! tonic refuses as over the size limit ends the stream `RESOURCE_EXHAUSTED`.

use std::{future::Future, time::Duration, time::Instant};

use tokio::{sync::mpsc, task::JoinHandle};
use tokio_stream::{wrappers::ReceiverStream, StreamExt};
use tonic::{metadata::MetadataMap, Status, Streaming};

use super::{
    status::{over_limit, CallError},
    GrpcState,
};
use crate::serving::Deadline;

/// Messages of one stream handled at once, and answers buffered for a slow reader.
pub const STREAM_WINDOW: usize = 32;

/// The caller's name for rate limits when the service runs without keys.
const ANONYMOUS: &str = "anonymous";

/// A call that passed the checks.
#[derive(Debug, Clone, Copy)]
pub struct Admitted {
    budget: Duration,
}

impl Admitted {
    /// The deadline of work starting now.
    pub fn deadline(&self) -> Deadline {
        Deadline::after(self.budget)
    }
}

impl GrpcState {
    /// Key, rate limit, draining; the call's time budget.
    pub fn admit(&self, metadata: &MetadataMap) -> Result<Admitted, CallError> {
        self.authorize(metadata)?;
        if self.readiness.draining() {
            return Err(CallError::ShuttingDown);
        }
        let budget = match grpc_timeout(metadata) {
            Some(client) => client.min(self.limits.request_timeout),
            None => self.limits.request_timeout,
        };
        Ok(Admitted { budget })
    }

    /// The API key and its rate limit: the caller's key name (`None` without keys).
    pub fn authorize(&self, metadata: &MetadataMap) -> Result<Option<String>, CallError> {
        let caller = self.caller(metadata)?;
        if let Some(check) = &self.rate_limit {
            check(caller.as_deref().unwrap_or(ANONYMOUS), Instant::now())
                .map_err(CallError::RateLimited)?;
        }
        Ok(caller)
    }

    /// The key's name (`None` without keys); UNAUTHENTICATED for a missing or wrong key.
    fn caller(&self, metadata: &MetadataMap) -> Result<Option<String>, CallError> {
        let Some(keys) = &self.api_keys else {
            return Ok(None);
        };
        let presented = presented_key(metadata).ok_or(CallError::Unauthenticated(
            "this service needs an API key: send `authorization: Bearer <key>` metadata",
        ))?;
        keys.verify(presented)
            .map(Some)
            .ok_or(CallError::Unauthenticated("the API key is not valid"))
    }
}

/// `authorization: Bearer <key>`, else `x-api-key: <key>`.
fn presented_key(metadata: &MetadataMap) -> Option<&str> {
    if let Some(value) = metadata.get("authorization") {
        let value = value.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| token.trim());
    }
    metadata.get("x-api-key")?.to_str().ok().map(str::trim)
}

/// The client's `grpc-timeout` (`<digits><unit>`, unit one of `H M S m u n`).
pub fn grpc_timeout(metadata: &MetadataMap) -> Option<Duration> {
    let value = metadata.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// A list of texts of a request: not empty, at most `max` (`--max-client-batch`), no empty text.
pub fn check_texts(field: &str, texts: &[String], max: usize) -> Result<(), CallError> {
    if texts.is_empty() {
        return Err(CallError::InvalidInput(format!(
            "`{field}` must not be an empty list"
        )));
    }
    if texts.len() > max {
        return Err(CallError::InvalidInput(format!(
            "`{field}` has {} items; at most {max} are allowed per request",
            texts.len()
        )));
    }
    match texts.iter().position(String::is_empty) {
        Some(i) => Err(CallError::InvalidInput(format!(
            "`{field}[{i}]` is an empty string"
        ))),
        None => Ok(()),
    }
}

/// Aborts its task when dropped: work for a stream whose client left.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs `handle` on every message of `inbound`, answering in order with at most
/// [`STREAM_WINDOW`] messages in flight. An inbound error ends the stream with its status.
pub fn ordered<Req, Resp, F, Fut>(
    mut inbound: Streaming<Req>,
    handle: F,
) -> ReceiverStream<Result<Resp, Status>>
where
    Req: Send + 'static,
    Resp: Send + 'static,
    F: Fn(Req) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Resp, Status>> + Send + 'static,
{
    let (jobs_tx, mut jobs_rx) = mpsc::channel::<AbortOnDrop<Result<Resp, Status>>>(STREAM_WINDOW);
    let (out_tx, out_rx) = mpsc::channel(STREAM_WINDOW);
    tokio::spawn(async move {
        while let Some(message) = inbound.next().await {
            let job = match message {
                Ok(req) => tokio::spawn(handle(req)),
                Err(status) => tokio::spawn(async move { Err(over_limit(status)) }),
            };
            if jobs_tx.send(AbortOnDrop(job)).await.is_err() {
                return;
            }
        }
    });
    tokio::spawn(async move {
        while let Some(mut job) = jobs_rx.recv().await {
            // A client that leaves (cancels, resets) ends the wait: the jobs queued behind this
            // one are aborted now, before the batcher computes them.
            let joined = tokio::select! {
                joined = &mut job.0 => joined,
                () = out_tx.closed() => return,
            };
            let answer = match joined {
                Ok(answer) => answer,
                Err(e) => {
                    tracing::error!(error = %e, "a gRPC stream message's task failed");
                    Err(Status::internal("internal error"))
                }
            };
            let failed = answer.is_err();
            if out_tx.send(answer).await.is_err() || failed {
                return;
            }
        }
    });
    ReceiverStream::new(out_rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeout(value: &str) -> Option<Duration> {
        let mut metadata = MetadataMap::new();
        metadata.insert("grpc-timeout", value.parse().unwrap());
        grpc_timeout(&metadata)
    }

    #[test]
    fn reads_grpc_timeout() {
        assert_eq!(timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(timeout("5x"), None);
        assert_eq!(timeout("m"), None);
    }

    #[test]
    fn reads_bearer_and_x_api_key() {
        let mut metadata = MetadataMap::new();
        metadata.insert("authorization", "Bearer s3cret".parse().unwrap());
        assert_eq!(presented_key(&metadata), Some("s3cret"));
        let mut metadata = MetadataMap::new();
        metadata.insert("authorization", "Basic s3cret".parse().unwrap());
        assert_eq!(presented_key(&metadata), None);
        let mut metadata = MetadataMap::new();
        metadata.insert("x-api-key", "k".parse().unwrap());
        assert_eq!(presented_key(&metadata), Some("k"));
    }
}
