//! What the binary runs per subcommand: tracing, thread count, runtime, listener, and the
//! reports printed to stdout. `main` only parses the command line and picks one of these.

use std::path::Path;

use anyhow::Context;

use crate::{
    cli::{IndexBuildConfig, ServeConfig},
    model::verify,
    telemetry,
};

/// `inferd serve`: binds `--listen` and serves until SIGTERM/SIGINT.
/// The trace export (`--otlp-endpoint`) starts with the logs and is flushed on the way out.
pub fn serve(config: ServeConfig) -> anyhow::Result<()> {
    let traces = config.traces.config().map_err(anyhow::Error::msg)?;
    let _traces = telemetry::init_serve_tracing(config.log_format, traces.as_ref())?;
    if let Some(traces) = &traces {
        tracing::info!(endpoint = %traces.export_url(), protocol = ?traces.protocol,
            sample_ratio = traces.sample_ratio, "exporting traces");
    }
    config.validate().map_err(anyhow::Error::msg)?;
    set_threads(config.threads);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("inferd-http")
        .build()?
        .block_on(async move {
            let listener = super::listener::bind(config.listen)
                .with_context(|| format!("binding {}", config.listen))?;
            tracing::info!(addr = %listener.local_addr()?, "listening");
            super::serve(config, listener, super::shutdown::signal()).await
        })
}

/// `inferd index build`: embeds the catalog and prints what it built.
pub fn build_index(config: IndexBuildConfig) -> anyhow::Result<()> {
    telemetry::init_tracing(config.run.log_format);
    set_threads(config.run.threads);
    let out = config.out.clone();
    let report = tokio::runtime::Runtime::new()?.block_on(super::build_index(config))?;
    println!(
        "built index {out:?} (generation {}): {} items in {:.1} s, {:.1} items/s",
        report.generation,
        report.items,
        report.seconds,
        report.items_per_second()
    );
    Ok(())
}

/// `inferd models verify`: prints the report; `Ok(false)` when anything failed.
pub fn verify_models(manifest_dir: &Path, require_local: bool) -> anyhow::Result<bool> {
    let report = verify::verify_dir(manifest_dir)?;
    Ok(verify::print_report(&report, require_local))
}

/// candle's CPU kernels and gemm size their pools from `RAYON_NUM_THREADS` before first use.
pub(super) fn set_threads(threads: Option<usize>) {
    if let Some(threads) = threads {
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    }
}
