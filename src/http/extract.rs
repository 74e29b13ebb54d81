//! A JSON body extractor whose rejections are [`ApiError`]s, so a bad body gets the same JSON
//! error shape and stable codes as everything else (axum's own rejections are plain text).

use axum::{
    extract::{rejection::JsonRejection, FromRequest, Request},
    http::StatusCode,
    Json,
};
use serde::de::DeserializeOwned;

use crate::{http::error::ApiError, http::state::AppState};

pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(map_rejection(rejection, state.limits.max_body_bytes)),
        }
    }
}

pub(crate) fn map_rejection(rejection: JsonRejection, limit: usize) -> ApiError {
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
