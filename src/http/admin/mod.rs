//! The admin API: model lifecycle over HTTP, on its own listener (`--admin-listen`).
//!
//! Every route needs `Authorization: Bearer <token>` with a token from `--admin-token-file`
//! (compared in constant time; the token's name is the actor in the audit log). The API is kept
//! off the serving listener so it can stay on loopback or a private network while `/infer` is
//! public; [`check_bind`] refuses a non-loopback admin address without a token file.
//!
//! | route | body | does |
//! |---|---|---|
//! | `GET /admin/status` | | roles, weights, canary health, shadow agreement, lineage |
//! | `GET /admin/events?limit=N` | | the last audit events |
//! | `POST /admin/load` | `{model, version?, source?, faults?}` | load a version (stands by) |
//! | `POST /admin/canary` | `{model, version?, weight}` | weighted, sticky canary |
//! | `POST /admin/shadow` | `{model, version, sample_rate}` | start shadowing |
//! | `POST /admin/shadow/stop` | `{model}` | stop shadowing |
//! | `POST /admin/promote` | `{model, version, force?}` | atomic switch, gated by agreement |
//! | `POST /admin/rollback` | `{model}` | back to the previous promoted version |
//! | `POST /admin/unload` | `{model, version}` | drain and drop a version |

use std::{net::SocketAddr, path::Path, sync::Arc};

use axum::{
    extract::{Query, Request, State},
    http::{header, Uri},
    middleware::{self, Next},
    response::Response,
    routing::{get, post},
    Extension, Json, Router,
};
use serde::Deserialize;
use serde_json::Value;

use crate::deploy::{
    audit::Event,
    controller::{Lifecycle, LoadRequest},
};
use crate::{auth::ApiKeys, http::error::ApiError, http::map_rejection};

/// Admin request bodies are small; the limit only bounds a mistaken upload.
const MAX_BODY: usize = 64 * 1024;

/// JSON body whose rejections are [`ApiError`]s, like the serving API's.
struct ApiJson<T>(T);

impl<T: serde::de::DeserializeOwned> axum::extract::FromRequest<AdminState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AdminState) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(map_rejection(rejection, MAX_BODY)),
        }
    }
}

#[derive(Clone)]
struct AdminState {
    lifecycle: Arc<Lifecycle>,
    tokens: Arc<ApiKeys>,
}

/// Who is acting, from the token's name.
#[derive(Clone)]
struct Actor(Arc<str>);

pub fn router(lifecycle: Arc<Lifecycle>, tokens: Arc<ApiKeys>) -> Router {
    let state = AdminState { lifecycle, tokens };
    Router::new()
        .route("/admin/status", get(status))
        .route("/admin/events", get(events))
        .route("/admin/load", post(load))
        .route("/admin/canary", post(canary))
        .route("/admin/shadow", post(shadow))
        .route("/admin/shadow/stop", post(stop_shadow))
        .route("/admin/promote", post(promote))
        .route("/admin/rollback", post(rollback))
        .route("/admin/unload", post(unload))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// Refuses to expose the admin API beyond loopback without a token file.
pub fn check_bind(addr: SocketAddr, token_file: Option<&Path>) -> anyhow::Result<()> {
    if token_file.is_none() && !addr.ip().is_loopback() {
        anyhow::bail!(
            "refusing to serve the admin API on non-loopback address {addr} without \
             --admin-token-file"
        );
    }
    Ok(())
}

async fn require_token(
    State(state): State<AdminState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_string())
        .ok_or(ApiError::Unauthorized(
            "the admin API needs `Authorization: Bearer <admin token>`",
        ))?;
    let name = state
        .tokens
        .verify(&presented)
        .ok_or(ApiError::Unauthorized("the admin token is not valid"))?;
    request.extensions_mut().insert(Actor(name.into()));
    Ok(next.run(request).await)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(uri.path().to_string())
}

async fn status(State(s): State<AdminState>) -> Json<Value> {
    Json(s.lifecycle.status())
}

#[derive(Deserialize)]
struct EventsQuery {
    limit: Option<usize>,
}

async fn events(
    State(s): State<AdminState>,
    Query(q): Query<EventsQuery>,
) -> Result<Json<Vec<Event>>, ApiError> {
    Ok(Json(s.lifecycle.events(q.limit.unwrap_or(100))?))
}

async fn load(
    State(s): State<AdminState>,
    Extension(actor): Extension<Actor>,
    ApiJson(req): ApiJson<LoadRequest>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(s.lifecycle.load(&actor.0, req).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CanaryRequest {
    model: String,
    version: Option<String>,
    weight: f64,
}

async fn canary(
    State(s): State<AdminState>,
    Extension(actor): Extension<Actor>,
    ApiJson(req): ApiJson<CanaryRequest>,
) -> Result<Json<Value>, ApiError> {
    let version = req.version.as_deref();
    Ok(Json(
        s.lifecycle
            .set_canary(&actor.0, &req.model, version, req.weight)
            .await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShadowRequest {
    model: String,
    version: Option<String>,
    #[serde(default = "full")]
    sample_rate: f64,
}

fn full() -> f64 {
    1.0
}

async fn shadow(
    State(s): State<AdminState>,
    Extension(actor): Extension<Actor>,
    ApiJson(req): ApiJson<ShadowRequest>,
) -> Result<Json<Value>, ApiError> {
    let version = req.version.as_deref();
    Ok(Json(
        s.lifecycle
            .start_shadow(&actor.0, &req.model, version, req.sample_rate)
            .await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelRequest {
    model: String,
    version: Option<String>,
    #[serde(default)]
    force: bool,
}

async fn stop_shadow(
    State(s): State<AdminState>,
    Extension(actor): Extension<Actor>,
    ApiJson(req): ApiJson<ModelRequest>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(s.lifecycle.stop_shadow(&actor.0, &req.model).await?))
}

async fn promote(
    State(s): State<AdminState>,
    Extension(actor): Extension<Actor>,
    ApiJson(req): ApiJson<ModelRequest>,
) -> Result<Json<Value>, ApiError> {
    let version = req.version.as_deref();
    Ok(Json(
        s.lifecycle
            .promote(&actor.0, &req.model, version, req.force)
            .await?,
    ))
}

async fn rollback(
    State(s): State<AdminState>,
    Extension(actor): Extension<Actor>,
    ApiJson(req): ApiJson<ModelRequest>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(s.lifecycle.rollback(&actor.0, &req.model).await?))
}

async fn unload(
    State(s): State<AdminState>,
    Extension(actor): Extension<Actor>,
    ApiJson(req): ApiJson<ModelRequest>,
) -> Result<Json<Value>, ApiError> {
    let version = req.version.as_deref();
    Ok(Json(
        s.lifecycle.unload(&actor.0, &req.model, version).await?,
    ))
}
