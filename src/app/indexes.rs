//! Item indexes at start-up (`--index`, checked against the loaded weights) and
//! `inferd index build`.

use std::sync::Arc;

use anyhow::Context;

use super::{start_model, wiring};
use crate::{
    cli::{IndexBuildConfig, IndexSpec},
    deploy::Registry,
    index::{self, build::BuildReport, LiveIndex},
    model::ModelInfo,
};

/// The loaded versions, the promoted one first: what `--index` directories are checked against.
pub fn loaded_models(registry: &Registry) -> anyhow::Result<Vec<ModelInfo>> {
    let promoted = registry.get(None)?;
    let mut models = vec![promoted.info.clone()];
    models.extend(
        registry
            .all()
            .into_iter()
            .filter(|h| h.info.sha256 != promoted.info.sha256)
            .map(|h| h.info.clone()),
    );
    Ok(models)
}

/// Loads every `--index`, refusing any built by weights that no loaded version has.
pub fn open(
    specs: &[IndexSpec],
    models: &[ModelInfo],
    compact_after: usize,
) -> anyhow::Result<Vec<Arc<LiveIndex>>> {
    let mut names = std::collections::HashSet::new();
    specs
        .iter()
        .map(|spec| {
            anyhow::ensure!(
                names.insert(&spec.name),
                "--index {:?} given twice",
                spec.name
            );
            LiveIndex::open(&spec.name, &spec.dir, compact_after, |header| {
                let builder = models.iter().find(|m| m.sha256 == header.model_sha256);
                index::check_model(&spec.name, header, builder.unwrap_or(&models[0]))
            })
            .with_context(|| format!("loading index {:?} from {}", spec.name, spec.dir.display()))
        })
        .collect()
}

/// `inferd index build`: loads the model as `serve` does and embeds the catalog through it.
pub async fn build_index(config: IndexBuildConfig) -> anyhow::Result<BuildReport> {
    let catalog = config.catalog.clone();
    let items = tokio::task::spawn_blocking(move || index::build::read_catalog(&catalog))
        .await
        .context("catalog reader panicked")??;
    anyhow::ensure!(
        !items.is_empty(),
        "catalog {} has no items",
        config.catalog.display()
    );
    let opts = config.load.load_options();
    let model = Arc::new(start_model(opts, wiring::offline_handle_config(&config.run)).await?);
    tracing::info!(items = items.len(), model = %model.info.name, version = %model.info.version, "embedding catalog");
    index::build::build(model, items, &config.out, config.search).await
}
