//! `inferd drift profile`: a model's drift reference, from a file of the texts it was
//! validated on, through the same embedding path `serve` runs (prompts, truncation, batching).

use std::{path::Path, time::Duration};

use anyhow::Context;

use crate::{
    cli::DriftProfileConfig,
    serving::{drift::DriftConfig, Deadline, EmbedRequest, HandleConfig},
    telemetry,
};

/// Texts per request: one full forward batch at the default `--max-batch-requests`.
const CHUNK: usize = 64;

pub fn profile(config: DriftProfileConfig) -> anyhow::Result<()> {
    telemetry::init_stderr_tracing(config.run.log_format);
    super::commands::set_threads(config.run.threads);
    tokio::runtime::Runtime::new()?.block_on(write_profile(config))
}

async fn write_profile(config: DriftProfileConfig) -> anyhow::Result<()> {
    let texts = read_texts(&config.texts)?;
    let handle_config = HandleConfig {
        // Never fixed: every text joins the reference.
        drift: DriftConfig {
            window: usize::MAX,
            reference: None,
        },
        ..super::wiring::offline_handle_config(&config.run)
    };
    let handle = super::start_model(config.load.load_options(), handle_config).await?;
    for chunk in texts.chunks(CHUNK) {
        let deadline = Deadline::after(Duration::from_secs(3600));
        handle
            .embed(EmbedRequest::new(chunk.to_vec(), deadline))
            .await
            .context("embedding the profile's texts")?;
    }
    let profile = handle.drift_profile().context("drift monitoring is on")?;
    let json = serde_json::to_string_pretty(&profile)?;
    std::fs::write(&config.out, json)
        .with_context(|| format!("writing {}", config.out.display()))?;
    let m = &profile.moments;
    println!(
        "wrote drift profile {}: {} texts of model {}, mean {:.1} tokens, {:.2}% unknown tokens, \
         {:.1}% truncated, {:.1}% non-Latin letters",
        config.out.display(),
        m.texts,
        profile.model,
        m.mean_tokens,
        m.unknown_rate * 100.0,
        m.truncation_rate * 100.0,
        m.non_latin_share * 100.0
    );
    Ok(())
}

/// One text per line, empty lines skipped; an empty file is an error.
fn read_texts(path: &Path) -> anyhow::Result<Vec<String>> {
    let content =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let texts: Vec<String> = content
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(str::to_string)
        .collect();
    anyhow::ensure!(!texts.is_empty(), "{} holds no texts", path.display());
    Ok(texts)
}
