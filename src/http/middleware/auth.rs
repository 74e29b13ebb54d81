//! Who is calling: the API-key middleware and extractors of the serving API.
//!
//! Callers present a key as `Authorization: Bearer <secret>` (what the OpenAI and Hugging Face
//! clients send) or `X-API-Key: <secret>`; [`crate::auth::ApiKeys`] compares it in constant
//! time. [`require_api_key`] is the middleware for routes that need a key when keys are
//! configured; [`Caller`] is the extractor handlers use to learn which key called (for rate
//! limits and audit), and [`RequireKey`] the extractor for routes that always need one (writes).
//! They see only the [`Keys`] sub-state, never the whole `AppState`.

use std::sync::Arc;

use axum::{
    extract::{FromRef, FromRequestParts, Request, State},
    http::{header, request::Parts, HeaderMap},
    middleware::Next,
    response::Response,
};

use crate::{auth::ApiKeys, http::error::ApiError};

/// The token of an `Authorization: Bearer <token>` header. `None` without the header; `Some(None)`
/// when the header is there with another scheme (which must not fall back to `X-API-Key`).
pub fn bearer(headers: &HeaderMap) -> Option<Option<&str>> {
    let value = headers.get(header::AUTHORIZATION)?;
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    Some(token)
}

/// The secret a request presents, if any: a bearer token, else `X-API-Key`.
fn presented_key(parts: &Parts) -> Option<&str> {
    match bearer(&parts.headers) {
        Some(token) => token,
        None => parts.headers.get("x-api-key")?.to_str().ok().map(str::trim),
    }
}

/// The configured API keys as the extractors see them (`--api-key-file`; `None`: no keys).
#[derive(Clone, Default)]
pub struct Keys(pub Option<Arc<ApiKeys>>);

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

impl<S: Send + Sync> FromRequestParts<S> for Caller
where
    Keys: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        Self::identify(parts, Keys::from_ref(state).0.as_deref())
    }
}

/// A caller that presented a valid key; routes that change data take this, and refuse with
/// 403 `forbidden` when the service runs without `--api-key-file`.
#[derive(Debug, Clone)]
pub struct RequireKey(pub Arc<str>);

impl<S: Send + Sync> FromRequestParts<S> for RequireKey
where
    Keys: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        if Keys::from_ref(state).0.is_none() {
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
    State(Keys(keys)): State<Keys>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let (mut parts, body) = request.into_parts();
    let caller = Caller::identify(&parts, keys.as_deref())?;
    parts.extensions.insert(caller);
    Ok(next.run(Request::from_parts(parts, body)).await)
}

#[cfg(test)]
mod tests {
    use super::*;

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
