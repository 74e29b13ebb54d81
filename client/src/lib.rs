//! A Rust client for inferd's `POST /infer`, for services that call it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), inferd_client::Error> {
//! use std::time::Duration;
//! use inferd_client::{Client, EmbedRequest};
//!
//! let client = Client::builder("http://inferd:8080")
//!     .api_key("s3cret")
//!     .timeout(Duration::from_secs(2))      // per attempt
//!     .deadline(Duration::from_secs(10))    // whole call, retries and backoff included
//!     .build()?;
//! let response = client.embed(&EmbedRequest::new(["hello", "world"])).await?;
//! assert_eq!(response.embeddings.len(), 2);
//! # Ok(()) }
//! ```
//!
//! Every call goes through, in order: the [circuit breaker](breaker) (open → short-circuit to
//! the [fallback](fallback) if one is configured, else [`Error::CircuitOpen`]), one HTTP attempt
//! with the per-attempt timeout, and the [retry policy](retry) (429/503 honouring `Retry-After`,
//! connection failures and resets; exponential backoff with full jitter; never past the
//! deadline). Embedding is idempotent, so retrying a request whose answer was lost is safe.
//!
//! Metrics (through the `metrics` facade; no-ops unless the application installs a recorder):
//! `inferd_client_requests_total{outcome}`, `inferd_client_retries_total`,
//! `inferd_client_breaker_state` (0 closed, 1 open, 2 half-open).

pub mod breaker;
pub mod fallback;
pub mod retry;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use reqwest::{header, StatusCode};
use serde::{Deserialize, Serialize};

pub use breaker::{BreakerConfig, BreakerState, CircuitBreaker, Clock, SystemClock};
pub use fallback::{CachedResponses, Fallback, SecondaryEndpoint};
pub use retry::RetryPolicy;

/// Metric names exported by the client.
pub mod metric_names {
    pub const REQUESTS: &str = "inferd_client_requests_total";
    pub const RETRIES: &str = "inferd_client_retries_total";
    pub const BREAKER_STATE: &str = "inferd_client_breaker_state";
}

/// `inputs` of a request: one text or a list.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Inputs {
    One(String),
    Many(Vec<String>),
}

impl From<&str> for Inputs {
    fn from(text: &str) -> Self {
        Self::One(text.to_string())
    }
}

impl From<String> for Inputs {
    fn from(text: String) -> Self {
        Self::One(text)
    }
}

impl From<Vec<String>> for Inputs {
    fn from(texts: Vec<String>) -> Self {
        Self::Many(texts)
    }
}

impl From<Vec<&str>> for Inputs {
    fn from(texts: Vec<&str>) -> Self {
        Self::Many(texts.into_iter().map(str::to_string).collect())
    }
}

impl<const N: usize> From<[&str; N]> for Inputs {
    fn from(texts: [&str; N]) -> Self {
        Self::Many(texts.iter().map(|t| t.to_string()).collect())
    }
}

/// The body of `POST /infer`. Unset options take the server's defaults (`normalize` and
/// `truncate` true, the default model).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EmbedRequest {
    pub inputs: Inputs,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub normalize: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncate: Option<bool>,
    /// `name` or `name@version`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

impl EmbedRequest {
    pub fn new(inputs: impl Into<Inputs>) -> Self {
        Self {
            inputs: inputs.into(),
            normalize: None,
            truncate: None,
            model: None,
        }
    }

    pub fn normalize(mut self, normalize: bool) -> Self {
        self.normalize = Some(normalize);
        self
    }

    pub fn truncate(mut self, truncate: bool) -> Self {
        self.truncate = Some(truncate);
        self
    }

    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }
}

/// The body `POST /infer` answers with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbedResponse {
    pub model: String,
    pub version: String,
    pub dimensions: usize,
    pub embeddings: Vec<Vec<f32>>,
    pub usage: Usage,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: usize,
}

/// What can go wrong with a call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The server answered with an error status; `code` is the stable code of its JSON error
    /// body (`invalid_input`, `overloaded`, `rate_limited`, ...) when it sent one.
    #[error("inferd answered {status}{}: {message}", .code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Api {
        status: u16,
        code: Option<String>,
        message: String,
        /// The `Retry-After` the server sent, in whole seconds.
        retry_after: Option<Duration>,
    },
    /// One attempt took longer than the per-attempt timeout.
    #[error("the request timed out")]
    Timeout,
    /// The overall deadline passed before an attempt succeeded.
    #[error("the call's deadline passed after {attempts} attempt(s)")]
    DeadlineExceeded { attempts: u32 },
    /// No connection could be made.
    #[error("could not connect: {0}")]
    Connect(String),
    /// The connection failed mid-request or mid-response (reset, closed early).
    #[error("the connection failed: {0}")]
    Transport(String),
    /// The circuit breaker is open and no fallback answered.
    #[error("the circuit breaker is open: inferd is failing; not calling it")]
    CircuitOpen,
    /// The server's answer was not the expected JSON.
    #[error("could not decode the response: {0}")]
    Decode(String),
    /// The client was configured wrongly.
    #[error("invalid client configuration: {0}")]
    Config(String),
}

impl Error {
    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The server's stable error code, when it sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// Whether this outcome says the server is unhealthy (counts against the breaker): 5xx,
    /// timeouts and connection failures. 4xx, 429 included, are the caller's business.
    pub fn is_server_failure(&self) -> bool {
        match self {
            Self::Api { status, .. } => *status >= 500,
            Self::Timeout | Self::Connect(_) | Self::Transport(_) => true,
            Self::DeadlineExceeded { .. }
            | Self::CircuitOpen
            | Self::Decode(_)
            | Self::Config(_) => false,
        }
    }

    fn from_reqwest(err: reqwest::Error) -> Self {
        // Display alone hides the cause ("error sending request"); keep the chain.
        let mut detail = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            detail.push_str(": ");
            detail.push_str(&cause.to_string());
            source = cause.source();
        }
        if err.is_timeout() {
            Self::Timeout
        } else if err.is_connect() {
            Self::Connect(detail)
        } else if err.is_decode() {
            Self::Decode(detail)
        } else if err.is_builder() {
            Self::Config(detail)
        } else {
            Self::Transport(detail)
        }
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
    code: Option<String>,
}

/// Builds a [`Client`].
#[derive(Clone)]
pub struct ClientBuilder {
    base_url: String,
    api_key: Option<String>,
    timeout: Duration,
    connect_timeout: Duration,
    deadline: Option<Duration>,
    retry: RetryPolicy,
    breaker: BreakerConfig,
    clock: Arc<dyn Clock>,
    fallback: Option<Arc<dyn Fallback>>,
    http: Option<reqwest::Client>,
}

impl ClientBuilder {
    /// `Authorization: Bearer <key>` on every call (`--api-key-file` on the server).
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// Time one attempt may take, response body included (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Time to establish a connection (default 2 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Time the whole call may take, retries and backoff included (default: none, bounded by
    /// the retry policy's attempts).
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    pub fn breaker(mut self, config: BreakerConfig) -> Self {
        self.breaker = config;
        self
    }

    /// The breaker's time source (tests use a fake one).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Where calls go while the breaker is open.
    pub fn fallback(mut self, fallback: impl Fallback + 'static) -> Self {
        self.fallback = Some(Arc::new(fallback));
        self
    }

    /// A preconfigured `reqwest::Client` (proxies, TLS); timeouts set here still apply per call.
    pub fn http_client(mut self, http: reqwest::Client) -> Self {
        self.http = Some(http);
        self
    }

    pub fn build(self) -> Result<Client, Error> {
        let base = self.base_url.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error::Config(format!(
                "base URL {base:?} must start with http:// or https://"
            )));
        }
        self.retry.validate().map_err(Error::Config)?;
        self.breaker.validate().map_err(Error::Config)?;
        let http = match self.http {
            Some(http) => http,
            None => reqwest::Client::builder()
                .connect_timeout(self.connect_timeout)
                .build()
                .map_err(Error::from_reqwest)?,
        };
        Ok(Client {
            inner: Arc::new(Inner {
                infer_url: format!("{base}/infer"),
                breaker: CircuitBreaker::new(base, self.breaker, self.clock),
                http,
                api_key: self.api_key,
                timeout: self.timeout,
                deadline: self.deadline,
                retry: self.retry,
                fallback: self.fallback,
            }),
        })
    }
}

/// A client for one inferd endpoint; cheap to clone (clones share the breaker).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    infer_url: String,
    api_key: Option<String>,
    timeout: Duration,
    deadline: Option<Duration>,
    retry: RetryPolicy,
    breaker: CircuitBreaker,
    fallback: Option<Arc<dyn Fallback>>,
}

impl Client {
    /// A builder for the server at `base_url` (e.g. `http://inferd:8080`).
    pub fn builder(base_url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            base_url: base_url.into(),
            api_key: None,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(2),
            deadline: None,
            retry: RetryPolicy::default(),
            breaker: BreakerConfig::default(),
            clock: Arc::new(SystemClock),
            fallback: None,
            http: None,
        }
    }

    /// The breaker's state now.
    pub fn breaker_state(&self) -> BreakerState {
        self.inner.breaker.state()
    }

    /// One embedding for one text.
    pub async fn embed_one(&self, text: &str) -> Result<Vec<f32>, Error> {
        let mut response = self.embed(&EmbedRequest::new(text)).await?;
        response
            .embeddings
            .pop()
            .ok_or_else(|| Error::Decode("the response has no embedding".into()))
    }

    /// Embeds `request`, with retries, the breaker and the fallback.
    pub async fn embed(&self, request: &EmbedRequest) -> Result<EmbedResponse, Error> {
        let inner = &*self.inner;
        let started = Instant::now();
        let deadline = inner.deadline.map(|d| started + d);
        let mut attempt: u32 = 0;
        loop {
            let Some(permit) = inner.breaker.try_acquire() else {
                return self.short_circuit(request).await;
            };
            let timeout = match deadline {
                Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left.min(inner.timeout),
                    _ => {
                        drop(permit);
                        return Err(self.finish(Error::DeadlineExceeded { attempts: attempt }));
                    }
                },
                None => inner.timeout,
            };
            attempt += 1;
            let result = self.attempt(request, timeout).await;
            match &result {
                Ok(_) => permit.success(),
                Err(err) if err.is_server_failure() => permit.failure(),
                Err(_) => permit.success(),
            }
            let err = match result {
                Ok(response) => {
                    if let Some(fallback) = &inner.fallback {
                        fallback.observe(request, &response);
                    }
                    record_outcome("success");
                    return Ok(response);
                }
                Err(err) => err,
            };
            let Some(delay) = inner.retry.delay(attempt, &err) else {
                return Err(self.finish(err));
            };
            if let Some(deadline) = deadline {
                if Instant::now() + delay >= deadline {
                    // Sleeping would overrun the deadline: answer now with what we know.
                    return Err(self.finish(err));
                }
            }
            metrics::counter!(metric_names::RETRIES).increment(1);
            tokio::time::sleep(delay).await;
        }
    }

    fn finish(&self, err: Error) -> Error {
        record_outcome("error");
        err
    }

    async fn short_circuit(&self, request: &EmbedRequest) -> Result<EmbedResponse, Error> {
        match &self.inner.fallback {
            Some(fallback) => {
                let answer = fallback.embed(request).await;
                record_outcome(if answer.is_ok() {
                    "fallback"
                } else {
                    "short_circuit"
                });
                answer
            }
            None => {
                record_outcome("short_circuit");
                Err(Error::CircuitOpen)
            }
        }
    }

    async fn attempt(
        &self,
        request: &EmbedRequest,
        timeout: Duration,
    ) -> Result<EmbedResponse, Error> {
        let inner = &*self.inner;
        let mut call = inner
            .http
            .post(&inner.infer_url)
            .json(request)
            .timeout(timeout);
        if let Some(key) = &inner.api_key {
            call = call.bearer_auth(key);
        }
        let response = call.send().await.map_err(Error::from_reqwest)?;
        let status = response.status();
        if status.is_success() {
            // The JSON is decoded below, so a failed read is the connection's fault (reqwest
            // labels a body cut short "error decoding response body").
            let body = response
                .bytes()
                .await
                .map_err(|err| match Error::from_reqwest(err) {
                    Error::Decode(detail) => Error::Transport(detail),
                    other => other,
                })?;
            return serde_json::from_slice(&body).map_err(|e| Error::Decode(e.to_string()));
        }
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        // A failed read of an error body still leaves the status to act on.
        let body = response.bytes().await.unwrap_or_default();
        let (message, code) = match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(parsed) => (parsed.error, parsed.code),
            Err(_) => (
                status
                    .canonical_reason()
                    .unwrap_or("unexpected status")
                    .to_string(),
                None,
            ),
        };
        Err(Error::Api {
            status: status.as_u16(),
            code,
            message,
            retry_after,
        })
    }
}

fn record_outcome(outcome: &'static str) {
    metrics::counter!(metric_names::REQUESTS, "outcome" => outcome).increment(1);
}

/// Statuses the retry policy may retry.
pub(crate) fn retryable_status(status: u16) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS.as_u16()
        || status == StatusCode::SERVICE_UNAVAILABLE.as_u16()
}
