//! Item indexes at start-up (`--index`: a directory or PostgreSQL, checked against the loaded
//! weights) and
//! `inferd index build`.

use std::sync::Arc;

use anyhow::Context;

use super::{start_model, wiring};
use crate::{
    cli::{IndexBuildConfig, IndexLocation, IndexSpec, ServeConfig},
    deploy::Registry,
    index::{self, build::BuildReport, postgres::PgIndex, Backend, LiveIndex},
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

/// Loads every `--index` (a directory on the blocking pool, a PostgreSQL index through its
/// pool), refusing any built by weights that no loaded version has.
pub async fn open(config: &ServeConfig, models: &[ModelInfo]) -> anyhow::Result<Vec<Backend>> {
    let mut names = std::collections::HashSet::new();
    let mut opened = Vec::new();
    for spec in &config.indexes {
        anyhow::ensure!(
            names.insert(&spec.name),
            "--index {:?} given twice",
            spec.name
        );
        let backend = open_one(config, spec, models.to_vec())
            .await
            .with_context(|| format!("loading index {:?} from {:?}", spec.name, spec.location))?;
        opened.push(backend);
    }
    Ok(opened)
}

async fn open_one(
    config: &ServeConfig,
    spec: &IndexSpec,
    models: Vec<ModelInfo>,
) -> anyhow::Result<Backend> {
    let name = spec.name.clone();
    let check = move |header: &index::IndexHeader| {
        let builder = models.iter().find(|m| m.sha256 == header.model_sha256);
        index::check_model(&name, header, builder.unwrap_or(&models[0]))
    };
    match &spec.location {
        IndexLocation::Dir(dir) => {
            check_dir(dir)?;
            let (name, dir, tuning) =
                (spec.name.clone(), dir.clone(), wiring::index_tuning(config));
            tokio::task::spawn_blocking(move || LiveIndex::open(&name, &dir, tuning, check))
                .await
                .context("index loader panicked")?
                .map(Backend::Embedded)
        }
        IndexLocation::Postgres(url) => {
            PgIndex::open(&spec.name, url, wiring::pg_settings(config), check)
                .await
                .map(Backend::Postgres)
        }
    }
}

/// A directory index that is not there, or not a directory, says so (rather than looking like
/// an interrupted build).
fn check_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => anyhow::bail!("{} is a file, not an index directory", dir.display()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
            "index directory {} does not exist; build one with `inferd index build --out {}` \
             or fix the path in --index",
            dir.display(),
            dir.display()
        ),
        Err(err) => Err(err).with_context(|| format!("reading index directory {}", dir.display())),
    }
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
    index::build::build(
        model,
        items,
        &config.out,
        config.name.as_deref(),
        config.search,
    )
    .await
}
