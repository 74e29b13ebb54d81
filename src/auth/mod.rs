//! API keys: who may call the service.
//!
//! Keys come from `--api-key-file`, one per line, either `name:secret` or a bare `secret` (then
//! named `key-<line>`); blank lines and `#` comments are skipped. Callers present a key as
//! `Authorization: Bearer <secret>` (what the OpenAI and Hugging Face clients send) or
//! `X-API-Key: <secret>`. Comparison hashes both sides and compares the digests in constant time,
//! so neither the content nor the length of a secret leaks through timing.
//!
//! [`require_api_key`] is the middleware for routes that need a key when keys are configured;
//! [`Caller`] is the extractor handlers use to learn which key called (for rate limits and
//! audit), and [`RequireKey`] the extractor for routes that always need one (writes).

use std::{fmt, path::Path, sync::Arc};

use anyhow::Context;
use axum::{
    extract::{FromRequestParts, Request, State},
    http::{header, request::Parts},
    middleware::Next,
    response::Response,
};
use sha2::{Digest, Sha256};

use crate::http::{error::ApiError, state::AppState};

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

/// The secret a request presents, if any.
fn presented_key(parts: &Parts) -> Option<&str> {
    if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
        let value = value.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| token.trim());
    }
    parts.headers.get("x-api-key")?.to_str().ok().map(str::trim)
}

/// Which key called: `None` when the service runs without keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller(pub Option<Arc<str>>);

impl Caller {
    /// Checks the request against the configured keys: 401 `unauthorized` when keys are
    /// configured and the request presents none or a wrong one.
    fn identify(parts: &Parts, keys: Option<&ApiKeys>) -> Result<Self, ApiError> {
        let Some(keys) = keys else {
            return Ok(Self(None));
        };
        let presented = presented_key(parts).ok_or(ApiError::Unauthorized(
            "this route needs an API key: send `Authorization: Bearer <key>`",
        ))?;
        keys.verify(presented)
            .map(|name| Self(Some(name.into())))
            .ok_or(ApiError::Unauthorized("the API key is not valid"))
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        Self::identify(parts, state.api_keys.as_deref())
    }
}

/// A caller that presented a valid key; routes that change data take this, and refuse with
/// 403 `forbidden` when the service runs without `--api-key-file`.
#[derive(Debug, Clone)]
pub struct RequireKey(pub Arc<str>);

impl FromRequestParts<AppState> for RequireKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if state.api_keys.is_none() {
            return Err(ApiError::Forbidden(
                "this route changes data and is disabled: start the server with --api-key-file",
            ));
        }
        match Caller::from_request_parts(parts, state).await?.0 {
            Some(name) => Ok(Self(name)),
            None => Err(ApiError::Unauthorized("this route needs an API key")),
        }
    }
}

/// Middleware for API routes: with keys configured, a request without a valid key is answered
/// 401 before it reaches its handler; the [`Caller`] is left in the request extensions.
pub async fn require_api_key(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let (mut parts, body) = request.into_parts();
    let caller = Caller::identify(&parts, state.api_keys.as_deref())?;
    parts.extensions.insert(caller);
    Ok(next.run(Request::from_parts(parts, body)).await)
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

    #[test]
    fn reads_bearer_and_x_api_key() {
        let request = |name: &str, value: &str| {
            axum::http::Request::builder()
                .header(name, value)
                .body(())
                .unwrap()
                .into_parts()
                .0
        };
        let keys = ApiKeys::parse("k:abc").unwrap();
        let bearer = request("authorization", "Bearer abc");
        let lower = request("authorization", "bearer abc");
        let header = request("x-api-key", "abc");
        let basic = request("authorization", "Basic abc");
        for ok in [&bearer, &lower, &header] {
            assert_eq!(
                Caller::identify(ok, Some(&keys)).unwrap(),
                Caller(Some("k".into()))
            );
        }
        assert!(Caller::identify(&basic, Some(&keys)).is_err());
        assert_eq!(Caller::identify(&basic, None).unwrap(), Caller(None));
    }
}
