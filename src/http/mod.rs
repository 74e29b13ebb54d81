//! Everything HTTP: the serving API's router, state, extractors, middleware, error mapping, one
//! folder per dialect mirroring the URL tree, and the admin API. Nothing outside `app` imports it.
//!
//! - [`native`]: `/infer`, `/info`, probes; [`openai`]: `/v1/...`; [`tei`]: `/embed`,
//!   `/tokenize`, `/rerank`, `/predict`, ...; [`hub`]: `POST /` (Inference API tasks); [`kserve`]:
//!   `/v2/...`; [`cohere`]: `/v1/rerank`, `/v2/rerank`; [`recommend`]: `/recommend`, `/items`,
//!   `/indexes`;
//!   [`admin`]: `/admin/...` on its own listener;
//! - [`embed`]: the one embedding path every dialect takes, and the shared input checks;
//!   [`scoring`]: relevance for every rerank dialect (cross-encoder or bi-encoder);
//! - [`error`]: the one place errors become responses; [`extract`], [`middleware`], [`state`];
//! - [`openapi`]: merges each folder's OpenAPI fragment (declared with its routes) into
//!   `/openapi.json`.
//!
//! Unknown routes and wrong methods answer JSON like every other error; a panic in a handler
//! becomes a generic JSON 500. Request metrics and request spans are labelled by the matched
//! route; every response carries its `x-request-id`.

pub mod admin;
pub mod cohere;
pub mod embed;
pub mod error;
pub mod extract;
pub mod hub;
pub mod kserve;
pub mod metrics;
pub mod middleware;
pub mod native;
pub mod openai;
pub mod openapi;
pub mod recommend;
pub mod schema;
pub mod scoring;
pub mod state;
pub mod tei;

use axum::{
    extract::DefaultBodyLimit,
    http::Uri,
    middleware::{from_fn, from_fn_with_state, map_response},
    response::Response,
    Router,
};
use tower_http::catch_panic::CatchPanicLayer;
use utoipa_axum::router::OpenApiRouter;

use error::ApiError;
use middleware::{auth, rate_limit, trace, track};
use state::AppState;

/// One folder's routes with their OpenAPI fragment, whether they serve models (and so need the
/// API key when keys are configured), and how the dialect shapes error bodies.
struct Group {
    routes: OpenApiRouter<AppState>,
    keyed: bool,
    shape: Option<fn(Response) -> Response>,
}

impl Group {
    /// Routes that need the API key when keys are configured (and say so in the document).
    fn keyed(mut routes: OpenApiRouter<AppState>) -> Self {
        openapi::secured(routes.get_openapi_mut());
        Self {
            routes,
            keyed: true,
            shape: None,
        }
    }

    fn shaped(mut self, shape: fn(Response) -> Response) -> Self {
        self.shape = Some(shape);
        self
    }

    /// The routes with their layers. The last layer added runs first: the dialect's error shape
    /// wraps the key check, which runs before the key's rate limit.
    fn layered(self, state: &AppState) -> OpenApiRouter<AppState> {
        let mut routes = self.routes;
        if self.keyed {
            routes = routes
                .route_layer(from_fn_with_state(state.clone(), rate_limit::enforce))
                .route_layer(from_fn_with_state(state.clone(), auth::require_api_key));
        }
        match self.shape {
            Some(shape) => routes.layer(map_response(move |r: Response| async move { shape(r) })),
            None => routes,
        }
    }
}

/// Every route group, in the order the API description lists them. Probes, `/metrics` and the
/// API description stay open for the orchestrator, the scraper and readers.
fn groups() -> Vec<Group> {
    vec![
        Group::keyed(native::routes()),
        Group {
            routes: native::probe_routes(),
            keyed: false,
            shape: None,
        },
        Group {
            routes: openapi::home_routes(),
            keyed: false,
            shape: None,
        },
        Group::keyed(openai::routes()).shaped(openai::error_shape),
        Group::keyed(tei::routes()).shaped(tei::error_shape),
        Group::keyed(hub::routes()).shaped(tei::error_shape),
        Group::keyed(kserve::routes()).shaped(kserve::error_shape),
        Group::keyed(cohere::routes()).shaped(cohere::error_shape),
        Group::keyed(recommend::routes()),
    ]
}

/// The serving API: every group, `/openapi.json` and `/docs` built from the same declarations,
/// the JSON fallbacks, body limit, request metrics, request spans and ids, and panic recovery
/// (layers run bottom-up: the request id first, then panic recovery, the span, the metrics).
pub fn router(state: AppState) -> Router {
    let body_limit = state.limits.max_body_bytes;
    let api = groups().into_iter().fold(
        OpenApiRouter::with_openapi(openapi::base()),
        |api, group| api.merge(group.layered(&state)),
    );
    let (api, doc) = api.split_for_parts();
    Router::new()
        .merge(api)
        .merge(openapi::routes(doc))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(from_fn(track::track))
        .layer(trace::layer())
        .layer(CatchPanicLayer::custom(track::panic_response))
        .layer(from_fn(trace::request_id))
        .with_state(state)
}

/// The serving API's OpenAPI document, as `/openapi.json` serves it.
pub fn document() -> utoipa::openapi::OpenApi {
    openapi::merged(groups().into_iter().map(|g| g.routes.into_openapi()))
}

/// Each group's own fragment, for the checks that no two fragments disagree.
pub fn fragments() -> Vec<utoipa::openapi::OpenApi> {
    groups()
        .into_iter()
        .map(|g| g.routes.into_openapi())
        .collect()
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(uri.path().to_string())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
