//! Tracing initialisation: human-readable text or one JSON object per line (`--log-format`),
//! filtered by `RUST_LOG` (default `info`). The server logs to stdout; operator commands whose
//! stdout is their result (`inferd batch`, `inferd embed`) log to stderr. Colours only on a
//! terminal, and never when `NO_COLOR` is set (<https://no-color.org>).
//!
//! `inferd serve` may also export its spans ([`super::traces`]); `RUST_LOG` filters the logs
//! only, so quieter logs never thin the traces. While a span of an exported trace is active,
//! each JSON line carries its `trace_id` and `span_id`, which is how a log line is found from a
//! trace and back.

use std::io::IsTerminal;

use tracing::{Event, Subscriber};
use tracing_subscriber::{
    filter::{LevelFilter, Targets},
    fmt::{
        format::{self, Writer},
        FmtContext, FormatEvent, FormatFields, MakeWriter,
    },
    layer::SubscriberExt,
    registry::LookupSpan,
    util::SubscriberInitExt,
    EnvFilter, Layer,
};

use super::traces::{self, TraceConfig, TraceGuard};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global subscriber; call once, before anything logs.
pub fn init_tracing(format: LogFormat) {
    init_with(
        format,
        std::io::stdout,
        colours(std::io::stdout().is_terminal()),
        None,
    )
    .map(drop) // holds no export
    .expect("no trace export to start");
}

/// [`init_tracing`] that also exports spans when `traces` is set; the guard flushes the last
/// spans when dropped.
pub fn init_serve_tracing(
    format: LogFormat,
    traces: Option<&TraceConfig>,
) -> anyhow::Result<TraceGuard> {
    init_with(
        format,
        std::io::stdout,
        colours(std::io::stdout().is_terminal()),
        traces,
    )
}

/// [`init_tracing`] writing to stderr, for commands that print their result on stdout.
pub fn init_stderr_tracing(format: LogFormat) {
    init_with(
        format,
        std::io::stderr,
        colours(std::io::stderr().is_terminal()),
        None,
    )
    .map(drop) // holds no export
    .expect("no trace export to start");
}

/// Colours on a terminal unless `NO_COLOR` is set to anything non-empty.
fn colours(terminal: bool) -> bool {
    terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Colours only on a terminal: piped or collected logs stay plain text. The trace layer sees
/// this crate's spans only: a dependency's spans (the exporter's own HTTP/2 client among them)
/// would otherwise be exported in a loop.
fn init_with<W>(
    format: LogFormat,
    writer: W,
    ansi: bool,
    traces: Option<&TraceConfig>,
) -> anyhow::Result<TraceGuard>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(ansi);
    let logs = match format {
        LogFormat::Json => logs
            .json()
            .event_format(WithTraceIds(format::format().json()))
            .with_filter(filter)
            .boxed(),
        LogFormat::Text => logs.with_filter(filter).boxed(),
    };
    let (export, guard) = traces::layer(traces)?;
    let export = export
        .map(|layer| layer.with_filter(Targets::new().with_target("inferd", LevelFilter::INFO)));
    tracing_subscriber::registry()
        .with(logs)
        .with(export)
        .try_init()?;
    Ok(guard)
}

/// A JSON event format that adds `trace_id` and `span_id` to the line while a span of an
/// exported trace is active.
struct WithTraceIds<E>(E);

impl<S, N, E> FormatEvent<S, N> for WithTraceIds<E>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    E: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let ids = ctx
            .lookup_current()
            .and_then(|_| traces::ids_of(&tracing::Span::current()));
        let Some((trace_id, span_id)) = ids else {
            return self.0.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        writer.write_str(&with_ids(&line, &trace_id, &span_id))
    }
}

/// `line` (one JSON object and a newline) with the two ids added as its last fields.
fn with_ids(line: &str, trace_id: &str, span_id: &str) -> String {
    match line.trim_end().strip_suffix('}') {
        Some(head) => format!("{head},\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\"}}\n"),
        None => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_become_the_last_fields_of_the_object() {
        let line = "{\"level\":\"INFO\",\"fields\":{\"message\":\"hi\"}}\n";
        let out = with_ids(line, "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["trace_id"], "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(v["span_id"], "b7ad6b7169203331");
        assert_eq!(v["fields"]["message"], "hi");
        assert!(out.ends_with("}\n"));
    }
}
