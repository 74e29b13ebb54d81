//! The `inferd` binary: parse configuration, set up logging, bind, and hand over to the library.

use anyhow::Context;
use clap::Parser;
use inferd::cli::{
    Cli, Command, IndexBuildConfig, IndexCommand, LogFormat, ModelsCommand, ServeConfig,
};
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    let Cli { command } = Cli::parse();
    let config = match command {
        Command::Serve(config) => config,
        Command::Models(ModelsCommand::Verify {
            manifest_dir,
            require_local,
        }) => {
            let report = inferd::model::verify::verify_dir(&manifest_dir)?;
            if inferd::model::verify::print_report(&report, require_local) {
                return Ok(());
            }
            std::process::exit(1);
        }
        Command::Index(IndexCommand::Build(config)) => return build_index(*config),
    };
    init_tracing(config.log_format);
    config.validate().map_err(anyhow::Error::msg)?;
    if let Some(threads) = config.threads {
        // candle's CPU kernels and gemm size their pools from this before first use.
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("inferd-http")
        .build()?
        .block_on(run(*config))
}

async fn run(config: ServeConfig) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    tracing::info!(addr = %listener.local_addr()?, "listening");
    inferd::serve(config, listener, inferd::app::shutdown::signal()).await
}

fn build_index(config: IndexBuildConfig) -> anyhow::Result<()> {
    init_tracing(config.log_format);
    if let Some(threads) = config.threads {
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    }
    let out = config.out.clone();
    let report = tokio::runtime::Runtime::new()?.block_on(inferd::build_index(config))?;
    println!(
        "built index {} (generation {}): {} items in {:.1} s, {:.1} items/s",
        out.display(),
        report.generation,
        report.items,
        report.seconds,
        report.items_per_second()
    );
    Ok(())
}

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
