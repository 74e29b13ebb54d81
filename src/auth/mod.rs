//! API keys: who may call the service. A leaf: no HTTP types, nothing from the crate.
//!
//! Keys come from `--api-key-file`, one per line, either `name:secret` or a bare `secret` (then
//! named `key-<line>`); blank lines and `#` comments are skipped. Callers present a key as
//! `Authorization: Bearer <secret>` (what the OpenAI and Hugging Face clients send) or
//! `X-API-Key: <secret>`. Comparison hashes both sides and compares the digests in constant time,
//! so neither the content nor the length of a secret leaks through timing. The same format and
//! comparison serve the admin tokens (`--admin-token-file`). Reading the key off a request is
//! `http::middleware::auth`'s business.

use std::{fmt, path::Path};

use anyhow::Context;
use sha2::{Digest, Sha256};

/// The configured keys; never printed.
pub struct ApiKeys {
    keys: Vec<(String, [u8; 32])>,
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeys")
            .field("count", &self.keys.len())
            .finish()
    }
}

impl ApiKeys {
    /// Reads a key file; an empty file is an error (it would lock everyone out silently).
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading API key file {}", path.display()))?;
        let keys = Self::parse(&text)?;
        anyhow::ensure!(
            !keys.is_empty(),
            "API key file {} has no keys",
            path.display()
        );
        Ok(keys)
    }

    /// Parses the key file format described in the module docs.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
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
        Ok(Self { keys })
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The name of the key matching `presented`, comparing every key in constant time.
    pub fn verify(&self, presented: &str) -> Option<&str> {
        let presented = digest(presented.as_bytes());
        let mut found = None;
        for (name, secret) in &self.keys {
            if constant_time_eq(secret, &presented) && found.is_none() {
                found = Some(name.as_str());
            }
        }
        found
    }
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
        assert_eq!(keys.verify("s3cret"), Some("alice"));
        assert_eq!(keys.verify("bare-secret"), Some("key-4"));
        assert_eq!(keys.verify("s3cre"), None);
        assert_eq!(keys.verify(""), None);
    }

    #[test]
    fn rejects_empty_secrets() {
        assert!(ApiKeys::parse("alice:\n").is_err());
        assert!(ApiKeys::parse(":secret\n").is_err());
    }
}
