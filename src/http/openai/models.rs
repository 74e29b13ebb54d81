//! `GET /v1/models` and `GET /v1/models/{model}`: every name a request may use.
//!
//! A loaded model answers to its name, each `name@version`, its hub repo id and its aliases
//! (`--model-alias`); the list holds one object per such name, each describing the version the
//! name routes to now (canary-blind). A hub id in the path needs its slash escaped (`%2F`).

use axum::{extract::State, Json};

use super::{ModelList, ModelObject, OpenAiErrorResponse};
use crate::{
    http::{error::ApiError, extract::ApiPath, state::AppState},
    serving::{ModelHandle, ModelRef},
};

/// Lists every name the served models answer to.
#[utoipa::path(get, path = "/v1/models", tag = "openai", operation_id = "openai_list_models",
    responses((status = 200, body = ModelList),
        (status = "4XX", body = OpenAiErrorResponse), (status = "5XX", body = OpenAiErrorResponse)))]
pub(super) async fn list_models(State(state): State<AppState>) -> Json<ModelList> {
    let data = state
        .registry
        .names()
        .into_iter()
        .filter_map(|name| {
            let handle = state.registry.get(Some(&ModelRef::parse(&name))).ok()?;
            Some(model_object(name, &handle))
        })
        .collect();
    Json(ModelList {
        object: "list",
        data,
    })
}

/// Describes one served model, by any name it answers to.
#[utoipa::path(get, path = "/v1/models/{model}", tag = "openai", operation_id = "openai_get_model",
    params(("model" = String, Path,
        description = "a name the model answers to: `name`, `name@version`, its hub repo id \
                       (slash escaped as `%2F`) or an alias")),
    responses((status = 200, body = ModelObject),
        (status = "4XX", body = OpenAiErrorResponse), (status = "5XX", body = OpenAiErrorResponse)))]
pub(super) async fn get_model(
    State(state): State<AppState>,
    ApiPath(model): ApiPath<String>,
) -> Result<Json<ModelObject>, ApiError> {
    let handle = state.registry.get(Some(&ModelRef::parse(&model)))?;
    Ok(Json(model_object(model, &handle)))
}

fn model_object(id: String, handle: &ModelHandle) -> ModelObject {
    ModelObject {
        id,
        object: "model",
        created: 0,
        owned_by: "inferd",
        model: handle.info.name.clone(),
        version: handle.info.version.clone(),
        architecture: handle.info.architecture.clone(),
        pooling: handle.info.pooling.clone(),
        dimensions: handle.info.dimensions,
        prompts: handle.info.prompts.prompts.clone(),
        default_prompt_name: handle.info.prompts.default_prompt_name.clone(),
    }
}
