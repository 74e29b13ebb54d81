//! Where and how spans are exported: inferd's flags first, then the standard OpenTelemetry
//! variables (<https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/>),
//! then the defaults. Pure: the environment comes in as a lookup function, so tests need no
//! process-wide variables.

use std::time::Duration;

/// The OTLP transport (`--otlp-protocol`, `OTEL_EXPORTER_OTLP_PROTOCOL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// OTLP/gRPC, port 4317 by convention (the default, as TEI's).
    Grpc,
    /// OTLP/HTTP with protobuf bodies, port 4318 by convention; posts to `<endpoint>/v1/traces`.
    HttpProtobuf,
}

impl OtlpProtocol {
    /// `grpc` or `http/protobuf`, the values the OpenTelemetry specification names.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim() {
            "grpc" => Ok(Self::Grpc),
            "http/protobuf" => Ok(Self::HttpProtobuf),
            other => Err(format!(
                "unsupported OTLP protocol `{other}`: use `grpc` or `http/protobuf`"
            )),
        }
    }
}

/// What the command line said; each `None` falls back to its standard variable.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TraceFlags {
    pub endpoint: Option<String>,
    pub protocol: Option<OtlpProtocol>,
    pub service_name: Option<String>,
    pub sample_ratio: Option<f64>,
}

/// The bounded export queue (`OTEL_BSP_*`, as the SDK's batch span processor reads them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueConfig {
    /// Finished spans waiting for export; more are dropped (`OTEL_BSP_MAX_QUEUE_SIZE`).
    pub capacity: usize,
    /// Spans per export call (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`).
    pub max_batch: usize,
    /// How long a span waits at most before its batch is sent (`OTEL_BSP_SCHEDULE_DELAY`).
    pub delay: Duration,
    /// How long one export may take before it counts as failed (`OTEL_EXPORTER_OTLP_TIMEOUT`).
    pub timeout: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            capacity: 2048,
            max_batch: 512,
            delay: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
        }
    }
}

/// A resolved export configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceConfig {
    /// Where to send: the collector's base URL, or for `http/protobuf` a full traces URL when it
    /// came from `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`.
    pub endpoint: String,
    /// Whether `endpoint` is already the full traces URL (the per-signal variable).
    pub signal_url: bool,
    pub protocol: OtlpProtocol,
    pub service_name: String,
    /// Share of traces that start here which are kept, 0..=1.
    pub sample_ratio: f64,
    pub queue: QueueConfig,
}

impl TraceConfig {
    /// The configuration `flags` and the process environment give; `None` when no endpoint is
    /// set (export off).
    pub fn from_env(flags: &TraceFlags) -> Result<Option<Self>, String> {
        Self::resolve(flags, |name| std::env::var(name).ok())
    }

    /// [`Self::from_env`] with `env` as the environment.
    pub fn resolve(
        flags: &TraceFlags,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, String> {
        let env = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let (endpoint, signal_url) = match flags.endpoint.clone().filter(|e| !e.is_empty()) {
            Some(endpoint) => (endpoint, false),
            None => match env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
                Some(endpoint) => (endpoint, true),
                None => match env("OTEL_EXPORTER_OTLP_ENDPOINT") {
                    Some(endpoint) => (endpoint, false),
                    None => return Ok(None),
                },
            },
        };
        let protocol = match (flags.protocol, env("OTEL_EXPORTER_OTLP_PROTOCOL")) {
            (Some(protocol), _) => protocol,
            (None, Some(name)) => OtlpProtocol::parse(&name)?,
            (None, None) => OtlpProtocol::Grpc,
        };
        let sample_ratio = match (flags.sample_ratio, env("OTEL_TRACES_SAMPLER_ARG")) {
            (Some(ratio), _) => ratio,
            (None, Some(arg)) => arg.trim().parse().map_err(|_| {
                format!("OTEL_TRACES_SAMPLER_ARG must be a number between 0 and 1, got `{arg}`")
            })?,
            (None, None) => 1.0,
        };
        if !(0.0..=1.0).contains(&sample_ratio) {
            return Err(format!(
                "the trace sample ratio must be between 0 and 1, got {sample_ratio}"
            ));
        }
        let service_name = flags
            .service_name
            .clone()
            .or_else(|| env("OTEL_SERVICE_NAME"))
            .unwrap_or_else(|| "inferd".into());
        Ok(Some(Self {
            endpoint: endpoint.trim().to_string(),
            signal_url,
            protocol,
            service_name,
            sample_ratio,
            queue: queue_config(&env)?,
        }))
    }

    /// The URL the exporter sends to: gRPC takes the endpoint as it is; OTLP/HTTP appends the
    /// traces path to a base URL, as the specification says.
    pub fn export_url(&self) -> String {
        match self.protocol {
            OtlpProtocol::HttpProtobuf if !self.signal_url => {
                format!("{}/v1/traces", self.endpoint.trim_end_matches('/'))
            }
            _ => self.endpoint.clone(),
        }
    }
}

fn queue_config(env: &impl Fn(&str) -> Option<String>) -> Result<QueueConfig, String> {
    let defaults = QueueConfig::default();
    let number = |name: &str, default: u64| -> Result<u64, String> {
        match env(name) {
            Some(v) => v
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{name} must be a positive whole number, got `{v}`")),
            None => Ok(default),
        }
    };
    let millis = |d: Duration| d.as_millis() as u64;
    Ok(QueueConfig {
        capacity: number("OTEL_BSP_MAX_QUEUE_SIZE", defaults.capacity as u64)? as usize,
        max_batch: number("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", defaults.max_batch as u64)? as usize,
        delay: Duration::from_millis(number("OTEL_BSP_SCHEDULE_DELAY", millis(defaults.delay))?),
        timeout: Duration::from_millis(number(
            "OTEL_EXPORTER_OTLP_TIMEOUT",
            millis(defaults.timeout),
        )?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(flags: &TraceFlags, vars: &[(&str, &str)]) -> Result<Option<TraceConfig>, String> {
        TraceConfig::resolve(flags, |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn off_without_an_endpoint() {
        assert_eq!(resolve(&TraceFlags::default(), &[]), Ok(None));
        let blank = [("OTEL_EXPORTER_OTLP_ENDPOINT", " ")];
        assert_eq!(resolve(&TraceFlags::default(), &blank), Ok(None));
    }

    #[test]
    fn standard_variables_fill_what_the_flags_leave() {
        let vars = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_SERVICE_NAME", "embedder"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ];
        let config = resolve(&TraceFlags::default(), &vars).unwrap().unwrap();
        assert_eq!(config.protocol, OtlpProtocol::HttpProtobuf);
        assert_eq!(config.export_url(), "http://collector:4318/v1/traces");
        assert_eq!(config.service_name, "embedder");
        assert_eq!(config.sample_ratio, 0.25);
        assert_eq!(config.queue.delay, Duration::from_millis(100));
        assert_eq!(config.queue.capacity, 2048);
    }

    #[test]
    fn flags_win_over_variables_and_grpc_is_the_default() {
        let flags = TraceFlags {
            endpoint: Some("http://127.0.0.1:4317".into()),
            sample_ratio: Some(1.0),
            ..TraceFlags::default()
        };
        let vars = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://elsewhere:4317"),
            ("OTEL_TRACES_SAMPLER_ARG", "0"),
        ];
        let config = resolve(&flags, &vars).unwrap().unwrap();
        assert_eq!(config.protocol, OtlpProtocol::Grpc);
        assert_eq!(config.export_url(), "http://127.0.0.1:4317");
        assert_eq!(config.sample_ratio, 1.0);
        assert_eq!(config.service_name, "inferd");
    }

    #[test]
    fn the_per_signal_endpoint_is_used_as_it_is() {
        let vars = [
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4318/custom"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ];
        let config = resolve(&TraceFlags::default(), &vars).unwrap().unwrap();
        assert_eq!(config.export_url(), "http://c:4318/custom");
    }

    #[test]
    fn refuses_what_it_cannot_honour() {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317");
        let bad = [
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
            ("OTEL_TRACES_SAMPLER_ARG", "half"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "0"),
        ];
        for var in bad {
            let err = resolve(&TraceFlags::default(), &[endpoint, var]).unwrap_err();
            assert!(!err.is_empty(), "{var:?}");
        }
    }
}
