//! inferd's own routes: `POST /infer`, `GET /info`, `GET /drift` and the probes (`/livez`, `/readyz`,
//! `/health`, `/metrics`), with their OpenAPI fragment (tags `inferd` and `probes`).

pub mod drift;
pub mod infer;
pub mod info;
pub mod probes;

use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::http::state::AppState;

#[derive(OpenApi)]
#[openapi(tags((name = "inferd", description = "inferd's own API")))]
struct NativeApi;

#[derive(OpenApi)]
#[openapi(tags((name = "probes", description = "health and metrics")))]
struct ProbesApi;

/// `/infer`, `/info` and `/drift`: model routes (behind the API key when keys are configured).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(NativeApi::openapi())
        .merge(infer::routes())
        .merge(info::routes())
        .merge(drift::routes())
}

/// The probes' and `/metrics`' paths: still answered on a connection over the listener's
/// `--max-connections`, so an orchestrator sees the pod while clients hold every connection.
pub const OPEN_PATHS: &[&str] = &["/livez", "/readyz", "/health", "/metrics"];

/// The probes and `/metrics`: always open, for the orchestrator and the scraper.
pub fn probe_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ProbesApi::openapi()).merge(probes::routes())
}
