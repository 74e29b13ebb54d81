//! Extractors every route shares: a JSON body whose rejections are [`ApiError`]s (axum's own are
//! plain text), and the caller's route key.

use axum::{
    extract::{rejection::JsonRejection, FromRef, FromRequest, FromRequestParts, Request},
    http::{request::Parts, StatusCode},
    Json,
};
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// Header a caller sets to be routed consistently during a canary (a user id, a tenant, a
/// session); honoured by every dialect.
pub const ROUTE_KEY_HEADER: &str = "x-inferd-route-key";

/// The largest body a router accepts, for the `payload_too_large` message.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// A JSON body; a bad one gets the same JSON error shape and stable codes as everything else.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
    BodyLimit: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(map_rejection(rejection, BodyLimit::from_ref(state).0)),
        }
    }
}

fn map_rejection(rejection: JsonRejection, limit: usize) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
        JsonRejection::JsonDataError(err) => ApiError::InvalidInput(err.body_text()),
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
