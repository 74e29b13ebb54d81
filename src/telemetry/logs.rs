//! Tracing initialisation: human-readable text or one JSON object per line (`--log-format`),
//! filtered by `RUST_LOG` (default `info`). The server logs to stdout; operator commands whose
//! stdout is their result (`inferd batch`, `inferd embed`) log to stderr.

use tracing_subscriber::{fmt::MakeWriter, EnvFilter};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global subscriber; call once, before anything logs.
pub fn init_tracing(format: LogFormat) {
    init_with(format, std::io::stdout);
}

/// [`init_tracing`] writing to stderr, for commands that print their result on stdout.
pub fn init_stderr_tracing(format: LogFormat) {
    init_with(format, std::io::stderr);
}

fn init_with<W>(format: LogFormat, writer: W)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
