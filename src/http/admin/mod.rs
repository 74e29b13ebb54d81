//! The admin API: model lifecycle over HTTP, on its own listener (`--admin-listen`).
//!
//! Every route needs `Authorization: Bearer <token>` with a token from `--admin-token-file`
//! (compared in constant time; the token's name is the actor in the audit log). The API is kept
//! off the serving listener so it can stay on loopback or a private network while `/infer` is
//! public; `app` refuses a non-loopback admin address without a token file.
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
//! | `GET /admin/openapi.json` | | this API's own OpenAPI document |
//!
//! Its OpenAPI document is its own, not merged into the serving API's: these routes are not
//! served on the serving listener, and a client generated from `/openapi.json` must not see them.

mod ops;
mod types;

use std::sync::Arc;

use axum::{
    extract::{DefaultBodyLimit, FromRef, Request, State},
    http::{header, Uri},
    middleware::{from_fn_with_state, Next},
    response::Response,
    routing::get,
    Router,
};
use utoipa::{
    openapi::{InfoBuilder, OpenApi, OpenApiBuilder},
    OpenApi as _,
};
use utoipa_axum::router::OpenApiRouter;

use super::{error::ApiError, extract::BodyLimit, middleware::auth::bearer};
use crate::{auth::ApiKeys, deploy::Lifecycle};

/// Admin request bodies are small; the limit only bounds a mistaken upload.
const MAX_BODY: usize = 64 * 1024;

#[derive(Clone)]
struct AdminState {
    lifecycle: Arc<Lifecycle>,
    tokens: Arc<ApiKeys>,
}

impl FromRef<AdminState> for BodyLimit {
    fn from_ref(_: &AdminState) -> Self {
        BodyLimit(MAX_BODY)
    }
}

/// Who is acting, from the token's name.
#[derive(Clone)]
struct Actor(Arc<str>);

#[derive(utoipa::OpenApi)]
#[openapi(tags((name = "admin", description = "model lifecycle: load, canary, shadow, promote, \
    rollback, unload (every route needs `Authorization: Bearer <admin token>`)")))]
struct AdminApi;

pub fn router(lifecycle: Arc<Lifecycle>, tokens: Arc<ApiKeys>) -> Router {
    let state = AdminState { lifecycle, tokens };
    let (routes, doc) = api().split_for_parts();
    let doc = doc
        .to_json()
        .expect("the admin OpenAPI document serialises");
    Router::new()
        .merge(routes)
        .route(
            "/admin/openapi.json",
            get(move || async move { ([(header::CONTENT_TYPE, "application/json")], doc) }),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(from_fn_with_state(state.clone(), require_token))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// The routes with their OpenAPI declarations.
fn api() -> OpenApiRouter<AdminState> {
    OpenApiRouter::with_openapi(head().merge_from(AdminApi::openapi())).merge(ops::routes())
}

/// The admin API's OpenAPI document, as `GET /admin/openapi.json` serves it.
pub fn document() -> OpenApi {
    api().into_openapi()
}

fn head() -> OpenApi {
    let info = InfoBuilder::new()
        .title("inferd admin")
        .description(Some(
            "The model lifecycle API, served on `--admin-listen` only; every route needs \
             `Authorization: Bearer <admin token>`.",
        ))
        .version(env!("CARGO_PKG_VERSION"))
        .build();
    OpenApiBuilder::new().info(info).build()
}

async fn require_token(
    State(state): State<AdminState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let presented = bearer(request.headers())
        .flatten()
        .ok_or(ApiError::Unauthorized(
            "the admin API needs `Authorization: Bearer <admin token>`",
        ))?;
    let name = state
        .tokens
        .verify(presented)
        .ok_or(ApiError::Unauthorized("the admin token is not valid"))?;
    let actor = Actor(name.into());
    request.extensions_mut().insert(actor);
    Ok(next.run(request).await)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(uri.path().to_string())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_admin_route_is_documented_once() {
        let doc = super::document();
        let paths: Vec<&str> = doc.paths.paths.keys().map(String::as_str).collect();
        for route in [
            "/admin/status",
            "/admin/events",
            "/admin/load",
            "/admin/canary",
            "/admin/shadow",
            "/admin/shadow/stop",
            "/admin/promote",
            "/admin/rollback",
            "/admin/unload",
        ] {
            assert!(paths.contains(&route), "{route} missing: {paths:?}");
        }
        let problems = crate::http::openapi::conflicts(&[doc, crate::http::document()]);
        assert!(problems.is_empty(), "{problems:#?}");
    }
}
