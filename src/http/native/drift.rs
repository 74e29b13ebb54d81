//! `GET /drift`: each loaded version's input drift, its reference and recent moments and the
//! signals `inferd_drift` exports (see [`crate::serving::drift`]).

use axum::{extract::State, Json};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::info::role_of;
use crate::{
    deploy::Role,
    http::{error::ApiError, schema::ErrorResponse, state::AppState},
    serving::drift::DriftReport,
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(drift))
}

#[derive(Serialize, ToSchema)]
pub struct DriftResponse {
    /// Whether drift is measured (`--drift-window` above 0).
    enabled: bool,
    /// One report per loaded version.
    models: Vec<VersionDrift>,
}

#[derive(Serialize, ToSchema)]
struct VersionDrift {
    /// `promoted`, `canary`, `shadow` or `standby`.
    #[schema(value_type = String)]
    role: Role,
    /// `model`, `version`, `state` (`learning` or `monitoring`), `window`, `reference_source`
    /// (`file` or `first_requests`), `reference_texts`, `recent_texts`, `signals` (`null` until a
    /// tenth of a window of recent inputs) and the `reference` and `recent` moments.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    report: DriftReport,
}

/// How far each version's recent inputs are from its reference.
#[utoipa::path(get, path = "/drift", tag = "inferd",
    responses((status = 200, body = DriftResponse),
        (status = "4XX", body = ErrorResponse), (status = "5XX", body = ErrorResponse)))]
async fn drift(State(state): State<AppState>) -> Result<Json<DriftResponse>, ApiError> {
    let handles = state.registry.all();
    let models: Vec<VersionDrift> = handles
        .iter()
        .filter_map(|h| {
            let report = h.drift_report()?;
            Some(VersionDrift {
                role: role_of(&state, h),
                report,
            })
        })
        .collect();
    Ok(Json(DriftResponse {
        enabled: handles.iter().any(|h| h.config.drift.window > 0),
        models,
    }))
}
