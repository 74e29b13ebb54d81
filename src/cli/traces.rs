//! Trace export flags of `inferd serve` (Observability). Each falls back to its standard
//! OpenTelemetry variable when unset, so a collector sidecar's usual environment just works;
//! [`crate::telemetry::traces`] resolves them.

use clap::Args;

use crate::telemetry::traces::{OtlpProtocol, TraceConfig, TraceFlags};

/// Where spans go and which of them are kept.
#[derive(Debug, Clone, Args)]
pub struct TraceArgs {
    /// Export spans over OTLP to this collector, e.g. `http://otel-collector:4317` (default:
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`; unset: no export). Export never slows a request: spans
    /// beyond the bounded queue are dropped and counted in `inferd_trace_spans_dropped_total`.
    #[arg(help_heading = "Observability", long, env = "INFERD_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,

    /// OTLP transport: `grpc` or `http/protobuf` (default: `OTEL_EXPORTER_OTLP_PROTOCOL`, else
    /// `grpc`).
    #[arg(help_heading = "Observability", long, env = "INFERD_OTLP_PROTOCOL", value_parser = OtlpProtocol::parse)]
    pub otlp_protocol: Option<OtlpProtocol>,

    /// The `service.name` of exported spans (default: `OTEL_SERVICE_NAME`, else `inferd`).
    #[arg(help_heading = "Observability", long, env = "INFERD_OTEL_SERVICE_NAME")]
    pub otel_service_name: Option<String>,

    /// Share of traces starting here that are exported, 0 to 1 (default:
    /// `OTEL_TRACES_SAMPLER_ARG`, else 1). Parent-based: a caller's `traceparent` decides for
    /// its own trace.
    #[arg(
        help_heading = "Observability",
        long,
        env = "INFERD_TRACE_SAMPLE_RATIO"
    )]
    pub trace_sample_ratio: Option<f64>,
}

impl TraceArgs {
    /// The export these flags and the environment ask for; `None`: export off.
    pub fn config(&self) -> Result<Option<TraceConfig>, String> {
        TraceConfig::from_env(&TraceFlags {
            endpoint: self.otlp_endpoint.clone(),
            protocol: self.otlp_protocol,
            service_name: self.otel_service_name.clone(),
            sample_ratio: self.trace_sample_ratio,
        })
    }
}
