//! Tracing initialisation: human-readable text or one JSON object per line (`--log-format`),
//! filtered by `RUST_LOG` (default `info`). The server logs to stdout; operator commands whose
//! stdout is their result (`inferd batch`, `inferd embed`) log to stderr. Colours only on a
//! terminal, and never when `NO_COLOR` is set (<https://no-color.org>).

use std::io::IsTerminal;

use tracing_subscriber::{fmt::MakeWriter, EnvFilter};

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
    );
}

/// [`init_tracing`] writing to stderr, for commands that print their result on stdout.
pub fn init_stderr_tracing(format: LogFormat) {
    init_with(
        format,
        std::io::stderr,
        colours(std::io::stderr().is_terminal()),
    );
}

/// Colours on a terminal unless `NO_COLOR` is set to anything non-empty.
fn colours(terminal: bool) -> bool {
    terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Colours only on a terminal: piped or collected logs stay plain text.
fn init_with<W>(format: LogFormat, writer: W, ansi: bool)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
