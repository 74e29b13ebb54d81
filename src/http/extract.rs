//! Extractors every route shares, whose rejections are [`ApiError`]s (axum's own are plain
//! text): a JSON body that must be an object ([`ApiJson`]), path parameters ([`ApiPath`]) and
//! a query string ([`ApiQuery`]); the caller's route key; and [`BodyTimeout`], the error a
//! listener puts in a request body that did not arrive in time (408 `body_timeout` here).
//!
//! Messages speak the API's words: serde's Rust type names (`expected struct InferRequest`)
//! are rewritten before they reach a client.

use std::time::Duration;

use axum::{
    extract::{
        rejection::{JsonRejection, PathRejection, QueryRejection},
        FromRef, FromRequest, FromRequestParts, Path, Query, Request,
    },
    http::{request::Parts, StatusCode},
    Json,
};
use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, Visitor};

use super::error::ApiError;

/// Header a caller sets to be routed consistently during a canary (a user id, a tenant, a
/// session); honoured by every dialect.
pub const ROUTE_KEY_HEADER: &str = "x-inferd-route-key";

/// The largest body a router accepts, for the `payload_too_large` message.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// A JSON object body; a bad one gets the same JSON error shape and stable codes as everything
/// else. Only an object is taken: serde would also accept a struct's fields as a positional
/// array (`["hello", true]`), which no route documents.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
    BodyLimit: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<Object<T>>::from_request(req, state).await {
            Ok(Json(Object(value))) => Ok(Self(value)),
            Err(rejection) => Err(map_rejection(rejection, BodyLimit::from_ref(state).0)),
        }
    }
}

/// The error a request body yields when it did not arrive within the listener's
/// `--body-read-timeout`; extractors that meet it answer 408 `body_timeout`.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub struct BodyTimeout(pub Duration);

impl BodyTimeout {
    /// The timeout behind `err`, if any error in its chain is one.
    pub fn find(err: &(dyn std::error::Error + 'static)) -> Option<Self> {
        std::iter::successors(Some(err), |e| e.source()).find_map(|e| e.downcast_ref().copied())
    }
}

fn map_rejection(rejection: JsonRejection, limit: usize) -> ApiError {
    if let Some(BodyTimeout(after)) = BodyTimeout::find(&rejection) {
        return ApiError::BodyTimeout(after);
    }
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
        JsonRejection::JsonDataError(err) => ApiError::InvalidInput(api_words(&err.body_text())),
        JsonRejection::JsonSyntaxError(err) => ApiError::InvalidJson(err.body_text()),
        JsonRejection::BytesRejection(err) if err.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::PayloadTooLarge { limit }
        }
        other => ApiError::InvalidJson(other.body_text()),
    }
}

/// The caller's route key ([`ROUTE_KEY_HEADER`]), which keeps it on one version during a canary;
/// `None` without the header (or with a value that is not visible ASCII).
#[derive(Debug, Clone, Default)]
pub struct RouteKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for RouteKey {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let key = parts
            .headers
            .get(ROUTE_KEY_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Ok(Self(key))
    }
}

/// `T` deserialised from a JSON object only.
#[derive(Debug)]
struct Object<T>(T);

impl<'de, T: DeserializeOwned> de::Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Only<T>(std::marker::PhantomData<T>);
        impl<'de, T: DeserializeOwned> Visitor<'de> for Only<T> {
            type Value = T;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map))
            }
        }
        deserializer
            .deserialize_map(Only(std::marker::PhantomData))
            .map(Object)
    }
}

/// Rewrites serde's Rust type names in a message: `struct X` reads "a JSON object",
/// `enum X` "one of the documented values".
fn api_words(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = ["expected struct ", "expected enum "]
        .iter()
        .filter_map(|p| rest.find(p).map(|i| (i, *p)))
        .min()
    {
        let (i, prefix) = at;
        out.push_str(&rest[..i]);
        out.push_str(match prefix {
            "expected struct " => "expected a JSON object",
            _ => "expected one of the documented values",
        });
        let after = &rest[i + prefix.len()..];
        let name_end = after
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        rest = &after[name_end..];
    }
    out.push_str(rest);
    out
}

/// Path parameters; one that does not decode (`/items/%ff`) is 400 `invalid_url`.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(Self(value)),
            Err(PathRejection::FailedToDeserializePathParams(err)) => {
                Err(ApiError::InvalidUrl(format!(
                    "the URL path does not decode: {}",
                    api_words(&err.body_text())
                )))
            }
            Err(other) => Err(ApiError::Internal(other.body_text())),
        }
    }
}

/// A query string; one that does not parse (a repeated `?index=`, `?limit=abc`) is 400
/// `invalid_url`.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(Self(value)),
            Err(QueryRejection::FailedToDeserializeQueryString(err)) => {
                Err(ApiError::InvalidUrl(api_words(&err.body_text())))
            }
            Err(other) => Err(ApiError::InvalidUrl(other.body_text())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_type_names_become_api_words() {
        assert_eq!(
            api_words("invalid type: string \"x\", expected struct InferRequest at line 1"),
            "invalid type: string \"x\", expected a JSON object at line 1"
        );
        assert_eq!(
            api_words("faults: expected enum Kind, or expected struct Faults"),
            "faults: expected one of the documented values, or expected a JSON object"
        );
        assert_eq!(
            api_words("missing field `inputs`"),
            "missing field `inputs`"
        );
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Pair {
        text: String,
        flag: bool,
    }

    #[test]
    fn only_objects_are_bodies() {
        let object: Object<Pair> = serde_json::from_str(r#"{"text": "a", "flag": true}"#).unwrap();
        assert_eq!(object.0.text, "a");
        let array = serde_json::from_str::<Object<Pair>>(r#"["a", true]"#).unwrap_err();
        assert!(
            array.to_string().contains("expected a JSON object"),
            "{array}"
        );
        // The bare struct would have taken the array: the wrapper is what refuses it.
        assert!(serde_json::from_str::<Pair>(r#"["a", true]"#).is_ok());
    }
}
