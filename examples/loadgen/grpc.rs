//! The gRPC side of the load generator: `tei.v1.Embed` calls over one HTTP/2 channel shared by
//! every client (as a gRPC client library does), either one unary `Embed` per text or, per
//! client, one long `EmbedStream` that sends a text and waits for its answer before the next.

use std::{sync::Arc, time::Duration};

use inferd::grpc::proto::tei::v1::{embed_client::EmbedClient, EmbedRequest, EmbedResponse};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{transport::Channel, Streaming};

/// How each client calls.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    Unary,
    Stream,
}

impl Mode {
    pub fn parse(value: &str) -> Result<Self, String> {
        match value {
            "unary" => Ok(Self::Unary),
            "stream" => Ok(Self::Stream),
            other => Err(format!("--grpc must be unary or stream, got {other}")),
        }
    }
}

/// One client: the shared channel and, in stream mode, its open stream.
pub struct Conn {
    client: EmbedClient<Channel>,
    texts: Arc<Vec<String>>,
    mode: Mode,
    timeout: Duration,
    stream: Option<(mpsc::Sender<EmbedRequest>, Streaming<EmbedResponse>)>,
}

/// A failed call: its gRPC code (as a number) and message.
pub type Failure = (u16, String);

pub async fn channel(url: &str) -> Result<Channel, String> {
    Channel::from_shared(url.to_string())
        .map_err(|e| format!("bad --url {url}: {e}"))?
        .tcp_nodelay(true)
        .connect()
        .await
        .map_err(|e| format!("connecting to {url}: {e}"))
}

impl Conn {
    pub fn new(channel: Channel, texts: Arc<Vec<String>>, mode: Mode, timeout: Duration) -> Self {
        Self {
            client: EmbedClient::new(channel),
            texts,
            mode,
            timeout,
            stream: None,
        }
    }

    /// Embeds text `i` (cycling); the vector's length on success.
    pub async fn call(&mut self, i: u64) -> Result<usize, Failure> {
        let text = &self.texts[(i % self.texts.len() as u64) as usize];
        let request = EmbedRequest {
            inputs: text.clone(),
            truncate: true,
            normalize: Some(true),
            ..Default::default()
        };
        let timeout = self.timeout;
        let call = async {
            match self.mode {
                Mode::Unary => self
                    .client
                    .embed(request)
                    .await
                    .map(tonic::Response::into_inner),
                Mode::Stream => self.streamed(request).await,
            }
        };
        let answer = match tokio::time::timeout(timeout, call).await {
            Ok(answer) => answer,
            Err(_) => {
                self.stream = None;
                Err(tonic::Status::deadline_exceeded(
                    "no answer within --timeout",
                ))
            }
        };
        answer
            .map(|a| a.embeddings.len())
            .map_err(|s| (s.code() as u16, s.message().to_string()))
    }

    async fn streamed(&mut self, request: EmbedRequest) -> Result<EmbedResponse, tonic::Status> {
        if self.stream.is_none() {
            let (tx, rx) = mpsc::channel(1);
            let answers = self
                .client
                .embed_stream(ReceiverStream::new(rx))
                .await?
                .into_inner();
            self.stream = Some((tx, answers));
        }
        let (tx, answers) = self.stream.as_mut().expect("opened above");
        if tx.send(request).await.is_err() {
            self.stream = None;
            return Err(tonic::Status::unavailable("the stream closed"));
        }
        match answers.message().await {
            Ok(Some(answer)) => Ok(answer),
            Ok(None) => {
                self.stream = None;
                Err(tonic::Status::unavailable("the stream ended"))
            }
            Err(status) => {
                self.stream = None;
                Err(status)
            }
        }
    }
}
