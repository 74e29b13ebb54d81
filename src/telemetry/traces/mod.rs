//! Distributed tracing: OpenTelemetry export of the crate's `tracing` spans over OTLP, W3C
//! `traceparent`/`tracestate` propagation, and the batch span that links to the requests it
//! serves.
//!
//! Off unless an endpoint is set (`--otlp-endpoint`, else `OTEL_EXPORTER_OTLP_ENDPOINT`): then
//! spans stay local and feed only the logs. On, every span of this crate (target `inferd`) goes
//! to an OpenTelemetry tracer sampled parent-based: a caller's sampled `traceparent` is always
//! followed, a trace that starts here is kept with probability `--trace-sample-ratio` (else
//! `OTEL_TRACES_SAMPLER_ARG`, default 1). OTLP/gRPC by default, `http/protobuf` on request
//! (`--otlp-protocol`, else `OTEL_EXPORTER_OTLP_PROTOCOL`); the service is named by
//! `--otel-service-name`, else `OTEL_SERVICE_NAME`, default `inferd`.
//!
//! Export must never slow a request: finished spans go into a bounded queue ([`export`]) that
//! drops, and counts, what does not fit; a collector that is down costs a log line, not latency.
//!
//! Numeric span fields are recorded as `i64`: the OpenTelemetry layer exports other integer
//! types as strings.
//!
//! A leaf like the rest of `telemetry`: callers hand it `tracing` spans and HTTP headers.

mod config;
mod export;
mod propagate;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::{
    propagation::TraceContextPropagator,
    trace::{Sampler, SdkTracerProvider},
    Resource,
};
use tracing_subscriber::registry::LookupSpan;

pub use config::{OtlpProtocol, QueueConfig, TraceConfig, TraceFlags};
pub use propagate::{batch_span, ids_of, set_remote_parent};

/// The tracer provider of a running export, flushed and shut down when dropped (at the end of
/// `inferd serve`), so the last spans are not lost. Holds nothing when export is off.
#[must_use = "dropping the guard stops the export"]
pub struct TraceGuard(Option<SdkTracerProvider>);

impl Drop for TraceGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.0.take() {
            if let Err(err) = provider.shutdown() {
                tracing::debug!(error = %err, "trace export shutdown");
            }
        }
    }
}

/// The OpenTelemetry layer for `config` (`None`: export off) and the guard that flushes it.
/// Sets the W3C trace-context propagator, so [`set_remote_parent`] follows callers' traces.
pub fn layer<S>(
    config: Option<&TraceConfig>,
) -> anyhow::Result<(
    Option<tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>>,
    TraceGuard,
)>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span>,
{
    let Some(config) = config else {
        return Ok((None, TraceGuard(None)));
    };
    let resource = Resource::builder()
        .with_service_name(config.service_name.clone())
        .build();
    let processor = export::BoundedProcessor::start(config, &resource)?;
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            config.sample_ratio,
        ))))
        .with_resource(resource)
        .build();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let tracer = provider.tracer("inferd");
    let layer = tracing_opentelemetry::layer().with_tracer(tracer);
    Ok((Some(layer), TraceGuard(Some(provider))))
}
