//! The bounded export queue: finished spans wait here for the OTLP exporter, which runs on a
//! thread of its own with its own single-threaded runtime, never on the request runtime or the
//! model thread.
//!
//! Protocol: [`BoundedProcessor::on_end`] only `try_send`s into a queue of
//! `OTEL_BSP_MAX_QUEUE_SIZE` spans; a full queue drops the span and counts it
//! (`inferd_trace_spans_dropped_total{reason="queue_full"}`), so a request never waits for the
//! collector. The export thread sends a batch when `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` spans have
//! gathered or `OTEL_BSP_SCHEDULE_DELAY` has passed, each send bounded by
//! `OTEL_EXPORTER_OTLP_TIMEOUT`. A failed send drops its spans (`reason="export_failed"`) and
//! logs one warning until a send succeeds again: a collector that is down costs a log line.

use std::time::Duration;

use crossbeam_channel::{bounded, select, tick, unbounded, Receiver, Sender, TrySendError};
use metrics::counter;
use opentelemetry::Context;
use opentelemetry_otlp::{Protocol, SpanExporter as OtlpExporter, WithExportConfig};
use opentelemetry_sdk::{
    error::{OTelSdkError, OTelSdkResult},
    trace::{Span, SpanData, SpanExporter, SpanProcessor},
    Resource,
};

use super::{OtlpProtocol, QueueConfig, TraceConfig};
use crate::telemetry::{TRACE_SPANS_DROPPED, TRACE_SPANS_EXPORTED};

/// How long `force_flush` waits for the export thread.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// What the processor asks of the export thread besides spans; each is answered on its sender.
enum Command {
    Flush(Sender<()>),
    Shutdown(Sender<()>),
}

/// A span processor that never blocks: a bounded queue in front of the export thread.
#[derive(Debug)]
pub(super) struct BoundedProcessor {
    spans: Sender<SpanData>,
    commands: Sender<Command>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Flush(_) => "Flush",
            Self::Shutdown(_) => "Shutdown",
        })
    }
}

impl BoundedProcessor {
    /// Builds the OTLP exporter for `config` and starts the export thread.
    pub(super) fn start(config: &TraceConfig, resource: &Resource) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        // The gRPC channel spawns its connection task on the runtime it is built in.
        let mut exporter = {
            let _entered = runtime.enter();
            exporter(config)?
        };
        exporter.set_resource(resource);
        let (spans, queue) = bounded(config.queue.capacity);
        let (commands, inbox) = unbounded();
        let worker = Worker {
            runtime,
            exporter,
            queue,
            inbox,
            config: config.queue,
            endpoint: config.export_url(),
            failing: false,
        };
        std::thread::Builder::new()
            .name("inferd-trace-export".into())
            .spawn(move || worker.run())?;
        Ok(Self { spans, commands })
    }

    fn ask(&self, command: fn(Sender<()>) -> Command, timeout: Duration) -> OTelSdkResult {
        let (done, answered) = bounded(1);
        self.commands
            .send(command(done))
            .map_err(|_| OTelSdkError::AlreadyShutdown)?;
        answered
            .recv_timeout(timeout)
            .map_err(|_| OTelSdkError::Timeout(timeout))
    }
}

impl SpanProcessor for BoundedProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if let Err(err) = self.spans.try_send(span) {
            let reason = match err {
                TrySendError::Full(_) => "queue_full",
                TrySendError::Disconnected(_) => "shut_down",
            };
            counter!(TRACE_SPANS_DROPPED, "reason" => reason).increment(1);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.ask(Command::Flush, FLUSH_TIMEOUT)
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.ask(Command::Shutdown, timeout)
    }
}

/// The OTLP exporter `config` names (its own endpoint, protocol and timeout; any
/// `OTEL_EXPORTER_OTLP_HEADERS` the exporter reads itself).
fn exporter(config: &TraceConfig) -> anyhow::Result<OtlpExporter> {
    let builder = OtlpExporter::builder();
    let exporter = match config.protocol {
        OtlpProtocol::Grpc => builder
            .with_tonic()
            .with_endpoint(config.export_url())
            .with_timeout(config.queue.timeout)
            .build()?,
        OtlpProtocol::HttpProtobuf => builder
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(config.export_url())
            .with_timeout(config.queue.timeout)
            .build()?,
    };
    Ok(exporter)
}

/// The export thread's state.
struct Worker {
    runtime: tokio::runtime::Runtime,
    exporter: OtlpExporter,
    queue: Receiver<SpanData>,
    inbox: Receiver<Command>,
    config: QueueConfig,
    endpoint: String,
    /// Whether the last send failed (the warning is logged once per outage).
    failing: bool,
}

impl Worker {
    fn run(mut self) {
        let ticker = tick(self.config.delay);
        let mut batch = Vec::with_capacity(self.config.max_batch);
        loop {
            select! {
                recv(self.queue) -> span => match span {
                    Ok(span) => {
                        batch.push(span);
                        if batch.len() >= self.config.max_batch {
                            self.export(&mut batch);
                        }
                    }
                    Err(_) => return self.export(&mut batch),
                },
                recv(self.inbox) -> command => {
                    self.drain(&mut batch);
                    match command {
                        Ok(Command::Flush(done)) => {
                            let _ = done.send(());
                        }
                        Ok(Command::Shutdown(done)) => {
                            let _ = self.exporter.shutdown();
                            let _ = done.send(());
                            return;
                        }
                        Err(_) => return,
                    }
                },
                recv(ticker) -> _ => self.export(&mut batch),
            }
        }
    }

    /// Exports everything queued now, in batches.
    fn drain(&mut self, batch: &mut Vec<SpanData>) {
        while let Ok(span) = self.queue.try_recv() {
            batch.push(span);
            if batch.len() >= self.config.max_batch {
                self.export(batch);
            }
        }
        self.export(batch);
    }

    fn export(&mut self, batch: &mut Vec<SpanData>) {
        if batch.is_empty() {
            return;
        }
        let spans = std::mem::take(batch);
        let count = spans.len() as u64;
        let (exporter, timeout) = (&self.exporter, self.config.timeout);
        let send = async { tokio::time::timeout(timeout, exporter.export(spans)).await };
        match self.runtime.block_on(send) {
            Ok(Ok(())) => self.sent(count),
            Ok(Err(err)) => self.failed(count, &err.to_string()),
            Err(_) => self.failed(count, "timed out"),
        }
    }

    fn sent(&mut self, count: u64) {
        counter!(TRACE_SPANS_EXPORTED).increment(count);
        if std::mem::take(&mut self.failing) {
            tracing::info!(endpoint = %self.endpoint, "trace export recovered");
        }
    }

    fn failed(&mut self, count: u64, error: &str) {
        counter!(TRACE_SPANS_DROPPED, "reason" => "export_failed").increment(count);
        if std::mem::replace(&mut self.failing, true) {
            tracing::debug!(endpoint = %self.endpoint, error, spans = count, "trace export failed");
        } else {
            tracing::warn!(
                endpoint = %self.endpoint,
                error,
                "trace export failed; spans are dropped (inferd_trace_spans_dropped_total) \
                 until the collector answers"
            );
        }
    }
}
