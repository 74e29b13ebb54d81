//! The admin handlers: parse the body, call the lifecycle operation, answer its typed outcome.

use axum::{extract::State, Extension, Json};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    types::{AuditEvent, CanaryRequest, EventsQuery, LoadRequest, ModelRequest, ShadowRequest},
    Actor, AdminState,
};
use crate::{
    deploy::{
        audit::Event,
        status::{EventOutcome, LoadOutcome, StatusView, UnloadOutcome},
    },
    http::{
        error::ApiError,
        extract::{ApiJson, ApiQuery},
        schema::ErrorResponse,
    },
    serving::ModelRef,
};

pub(super) fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(status))
        .routes(routes!(events))
        .routes(routes!(load))
        .routes(routes!(canary))
        .routes(routes!(shadow))
        .routes(routes!(stop_shadow))
        .routes(routes!(promote))
        .routes(routes!(rollback))
        .routes(routes!(unload))
}

/// Every deployment: roles, weights, canary health, shadow agreement, lineage, policy.
#[utoipa::path(get, path = "/admin/status", tag = "admin",
    responses((status = 200, body = StatusView), (status = "4XX", body = ErrorResponse)))]
async fn status(State(s): State<AdminState>) -> Json<StatusView> {
    Json(s.lifecycle.status())
}

/// The last audit events, oldest first.
#[utoipa::path(get, path = "/admin/events", tag = "admin", params(EventsQuery),
    responses((status = 200, body = Vec<AuditEvent>),
        (status = "4XX", body = ErrorResponse), (status = "5XX", body = ErrorResponse)))]
async fn events(
    State(s): State<AdminState>,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> Result<Json<Vec<Event>>, ApiError> {
    Ok(Json(s.lifecycle.events(q.limit.unwrap_or(100))?))
}

/// Loads a version next to the serving ones; it stands by until given a role.
#[utoipa::path(post, path = "/admin/load", tag = "admin", request_body = LoadRequest,
    responses((status = 200, body = LoadOutcome),
        (status = "4XX", body = ErrorResponse), (status = "5XX", body = ErrorResponse)))]
async fn load(
    State(s): State<AdminState>,
    Extension(actor): Extension<Actor>,
    ApiJson(req): ApiJson<LoadRequest>,
) -> Result<Json<LoadOutcome>, ApiError> {
    Ok(Json(s.lifecycle.load(&actor.0, req.spec()?).await?))
}

/// Sends a weighted share of the model's traffic to a version, sticky by route key.
#[utoipa::path(post, path = "/admin/canary", tag = "admin", request_body = CanaryRequest,
    responses((status = 200, body = EventOutcome),
        (status = "4XX", body = ErrorResponse), (status = "5XX", body = ErrorResponse)))]
async fn canary(
    State(s): State<AdminState>,
    Extension(actor): Extension<Actor>,
    ApiJson(req): ApiJson<CanaryRequest>,
) -> Result<Json<EventOutcome>, ApiError> {
    let model = ModelRef::parse(&req.model).or_version(req.version.as_deref());
    Ok(Json(
        s.lifecycle.set_canary(&actor.0, &model, req.weight).await?,
    ))
}

/// Copies a share of live requests to a version and measures agreement.
#[utoipa::path(post, path = "/admin/shadow", tag = "admin", request_body = ShadowRequest,
    responses((status = 200, body = EventOutcome),
        (status = "4XX", body = ErrorResponse), (status = "5XX", body = ErrorResponse)))]
async fn shadow(
    State(s): State<AdminState>,
    Extension(actor): Extension<Actor>,
    ApiJson(req): ApiJson<ShadowRequest>,
) -> Result<Json<EventOutcome>, ApiError> {
    let model = ModelRef::parse(&req.model).or_version(req.version.as_deref());
    Ok(Json(
        s.lifecycle
            .start_shadow(&actor.0, &model, req.sample_rate)
            .await?,
    ))
}

/// Stops shadowing.
#[utoipa::path(post, path = "/admin/shadow/stop", tag = "admin", request_body = ModelRequest,
    responses((status = 200, body = EventOutcome),
        (status = "4XX", body = ErrorResponse), (status = "5XX", body = ErrorResponse)))]
async fn stop_shadow(
    State(s): State<AdminState>,
    Extension(actor): Extension<Actor>,
    ApiJson(req): ApiJson<ModelRequest>,
) -> Result<Json<EventOutcome>, ApiError> {
    Ok(Json(
        s.lifecycle.stop_shadow(&actor.0, &req.target()).await?,
    ))
}

/// Makes a version the one that answers the model, atomically; gated by shadow agreement
/// unless `force`.
#[utoipa::path(post, path = "/admin/promote", tag = "admin", request_body = ModelRequest,
    responses((status = 200, body = EventOutcome),
        (status = "4XX", body = ErrorResponse), (status = "5XX", body = ErrorResponse)))]
async fn promote(
    State(s): State<AdminState>,
    Extension(actor): Extension<Actor>,
    ApiJson(req): ApiJson<ModelRequest>,
) -> Result<Json<EventOutcome>, ApiError> {
    let outcome = s
        .lifecycle
        .promote(&actor.0, &req.target(), req.force)
        .await?;
    Ok(Json(outcome))
}

/// Back to the version promoted before the current one; ends any canary.
#[utoipa::path(post, path = "/admin/rollback", tag = "admin", request_body = ModelRequest,
    responses((status = 200, body = EventOutcome),
        (status = "4XX", body = ErrorResponse), (status = "5XX", body = ErrorResponse)))]
async fn rollback(
    State(s): State<AdminState>,
    Extension(actor): Extension<Actor>,
    ApiJson(req): ApiJson<ModelRequest>,
) -> Result<Json<EventOutcome>, ApiError> {
    Ok(Json(s.lifecycle.rollback(&actor.0, &req.target()).await?))
}

/// Takes a version out of routing, waits for its requests to finish, then drops it.
#[utoipa::path(post, path = "/admin/unload", tag = "admin", request_body = ModelRequest,
    responses((status = 200, body = UnloadOutcome),
        (status = "4XX", body = ErrorResponse), (status = "5XX", body = ErrorResponse)))]
async fn unload(
    State(s): State<AdminState>,
    Extension(actor): Extension<Actor>,
    ApiJson(req): ApiJson<ModelRequest>,
) -> Result<Json<UnloadOutcome>, ApiError> {
    Ok(Json(s.lifecycle.unload(&actor.0, &req.target()).await?))
}
