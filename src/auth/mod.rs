//! Who may call the service and how it proves itself: API keys, admin tokens and the listeners'
//! TLS ([`tls`]). A leaf: no HTTP types, nothing from the crate.
//!
//! Keys come from `--api-key-file`, one per line, either `name:secret` or a bare `secret` (then
//! named `key-<line>`); blank lines and `#` comments are skipped. Callers present a key as
//! `Authorization: Bearer <secret>` (what the OpenAI and Hugging Face clients send) or
//! `X-API-Key: <secret>`. Comparison hashes both sides and compares the digests in constant time,
//! so neither the content nor the length of a secret leaks through timing. The same format and
//! comparison serve the admin tokens (`--admin-token-file`). Reading the key off a request is
//! `http::middleware::auth`'s business.
//!
//! Keys and certificates rotate without a restart ([`Reload`]): re-read on SIGHUP, and when a
//! file changed (size, modification time or inode: an edit in place, or a Kubernetes Secret
//! volume swapping its files). A file that no longer parses, or has no keys, keeps what is in
//! force and reports why.

mod stamp;
pub mod tls;

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::{Mutex, RwLock},
};

use anyhow::Context;
use sha2::{Digest, Sha256};

use stamp::{stamps, Stamps};

/// Secrets read from files that may change while the server runs.
pub trait Reload: Send + Sync {
    /// Re-reads the files; what is now in force, for the log. On an error what was in force
    /// stays.
    fn reload(&self) -> anyhow::Result<String>;
    /// [`reload`](Self::reload) when a file changed since it was last read; `None` if none did.
    fn reload_if_changed(&self) -> Option<anyhow::Result<String>>;
    /// The file, for the log.
    fn source(&self) -> String;
}

/// The configured keys; never printed.
pub struct ApiKeys {
    keys: RwLock<Vec<(String, [u8; 32])>>,
    /// The file they came from, and what it looked like when read.
    file: Option<(PathBuf, Mutex<Stamps>)>,
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeys")
            .field("count", &self.len())
            .finish()
    }
}

impl ApiKeys {
    /// Reads a key file; an empty file is an error (it would lock everyone out silently).
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let stamp = stamps([path]);
        let keys = read_keys(path)?;
        Ok(Self {
            keys: RwLock::new(keys),
            file: Some((path.to_path_buf(), Mutex::new(stamp))),
        })
    }

    /// Parses the key file format described in the module docs (keys not from a file).
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        Ok(Self {
            keys: RwLock::new(parse_keys(text)?),
            file: None,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn len(&self) -> usize {
        self.keys.read().expect("api keys").len()
    }

    /// The file the keys come from, if any.
    pub fn path(&self) -> Option<&Path> {
        self.file.as_ref().map(|(path, _)| path.as_path())
    }

    /// The name of the key matching `presented`, comparing every key in constant time.
    pub fn verify(&self, presented: &str) -> Option<String> {
        let presented = digest(presented.as_bytes());
        let keys = self.keys.read().expect("api keys");
        let mut found = None;
        for (name, secret) in keys.iter() {
            if constant_time_eq(secret, &presented) && found.is_none() {
                found = Some(name);
            }
        }
        found.cloned()
    }
}

impl Reload for ApiKeys {
    /// Keys not from a file have nothing to re-read.
    fn reload(&self) -> anyhow::Result<String> {
        let Some((path, stamp)) = &self.file else {
            return Ok(format!("{} keys", self.len()));
        };
        // The stamp first: a change made while reading is seen at the next check.
        *stamp.lock().expect("key file stamp") = stamps([path.as_path()]);
        let keys = read_keys(path)?;
        let count = keys.len();
        *self.keys.write().expect("api keys") = keys;
        Ok(format!("{count} keys"))
    }

    fn reload_if_changed(&self) -> Option<anyhow::Result<String>> {
        let (path, stamp) = self.file.as_ref()?;
        let now = stamps([path.as_path()]);
        if *stamp.lock().expect("key file stamp") == now {
            return None;
        }
        Some(self.reload())
    }

    fn source(&self) -> String {
        self.path()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    }
}

/// A key file's keys; none is an error.
fn read_keys(path: &Path) -> anyhow::Result<Vec<(String, [u8; 32])>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading API key file {}", path.display()))?;
    let keys = parse_keys(&text).with_context(|| format!("API key file {}", path.display()))?;
    anyhow::ensure!(
        !keys.is_empty(),
        "API key file {} has no keys",
        path.display()
    );
    Ok(keys)
}

fn parse_keys(text: &str) -> anyhow::Result<Vec<(String, [u8; 32])>> {
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, secret) = match line.split_once(':') {
            Some((name, secret)) => (name.trim().to_string(), secret.trim()),
            None => (format!("key-{}", n + 1), line),
        };
        anyhow::ensure!(!secret.is_empty(), "line {}: empty secret", n + 1);
        anyhow::ensure!(!name.is_empty(), "line {}: empty key name", n + 1);
        keys.push((name, digest(secret.as_bytes())));
    }
    Ok(keys)
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_named_and_bare_keys_and_skips_comments() {
        let keys = ApiKeys::parse("# ops\nalice: s3cret\n\nbare-secret\n").unwrap();
        assert_eq!(keys.verify("s3cret").as_deref(), Some("alice"));
        assert_eq!(keys.verify("bare-secret").as_deref(), Some("key-4"));
        assert_eq!(keys.verify("s3cre"), None);
        assert_eq!(keys.verify(""), None);
    }

    #[test]
    fn rejects_empty_secrets() {
        assert!(ApiKeys::parse("alice:\n").is_err());
        assert!(ApiKeys::parse(":secret\n").is_err());
    }

    #[test]
    fn a_changed_file_is_reloaded_and_a_broken_one_keeps_the_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        std::fs::write(&path, "alice:old\n").unwrap();
        let keys = ApiKeys::load(&path).unwrap();
        assert!(keys.reload_if_changed().is_none(), "unchanged");

        // Replaced by rename, as a Secret volume does: a new inode.
        std::fs::write(dir.path().join("next"), "bob:new\n").unwrap();
        std::fs::rename(dir.path().join("next"), &path).unwrap();
        assert_eq!(keys.reload_if_changed().unwrap().unwrap(), "1 keys");
        assert_eq!(keys.verify("old"), None);
        assert_eq!(keys.verify("new").as_deref(), Some("bob"));

        std::fs::write(&path, "# everyone removed by mistake\n").unwrap();
        assert!(keys.reload_if_changed().unwrap().is_err());
        assert_eq!(keys.verify("new").as_deref(), Some("bob"), "kept");
        assert!(keys.reload_if_changed().is_none(), "reported once");
    }
}
