//! `GET /api/runs/{id}` and `GET /api/runs/{id}/events`, scoped to the caller.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use cordon_core::{ModelUsage, RunId, RunRecord};
use cordon_protocol::rest::{ErrorBody, RunUsageView, RunView};
use serde::Deserialize;

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::state::AppState;

pub async fn get_run(
    State(state): State<AppState>,
    user: AuthUser,
    Path(run_id): Path<String>,
) -> Result<Json<RunView>, ApiError> {
    let run_id = RunId::parse(run_id).map_err(|_| ApiError::NotFound("run"))?;
    let run = state
        .store
        .get_run(&user.user_id, &run_id)
        .await?
        .ok_or(ApiError::NotFound("run"))?;
    let usage = state.store.run_usage(&user.user_id, &run_id).await?;
    Ok(Json(run_view(&run, &usage)))
}

#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    #[serde(default)]
    after_seq: u64,
}

/// The run's stored events, exactly as they were sent, as one JSON array.
pub async fn list_events(
    State(state): State<AppState>,
    user: AuthUser,
    Path(run_id): Path<String>,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) =
        query.map_err(|rejection| ApiError::bad_request("invalid_query", rejection.body_text()))?;
    let run_id = RunId::parse(run_id).map_err(|_| ApiError::NotFound("run"))?;
    if state.store.get_run(&user.user_id, &run_id).await?.is_none() {
        return Err(ApiError::NotFound("run"));
    }
    let events = state
        .store
        .list_run_events(&user.user_id, &run_id, query.after_seq)
        .await?;
    let payloads: Vec<&str> = events.iter().map(|event| event.payload.as_str()).collect();
    let body = format!("[{}]", payloads.join(","));
    Ok(([(CONTENT_TYPE, "application/json")], body).into_response())
}

fn run_view(run: &RunRecord, usage: &[ModelUsage]) -> RunView {
    let duration_ms = run
        .finished_at
        .map(|end| u64::try_from((end - run.created_at).whole_milliseconds()).unwrap_or(0));
    let error = run.error_code.as_ref().map(|code| ErrorBody {
        code: code.clone(),
        message: run.error_message.clone().unwrap_or_default(),
    });
    RunView {
        id: run.id.to_string(),
        thread_id: run.thread_id.to_string(),
        agent: run.agent.clone(),
        status: run.status.as_str().to_owned(),
        created_at: run.created_at,
        finished_at: run.finished_at,
        duration_ms,
        error,
        usage: run_usage_view(usage),
    }
}

/// The run's usage over all models; `model` names the most-called one.
fn run_usage_view(usage: &[ModelUsage]) -> RunUsageView {
    RunUsageView {
        model: usage.first().map(|first| first.model.clone()),
        calls: usage.iter().map(|u| u.calls).sum(),
        input_tokens: usage.iter().map(|u| u.input_tokens).sum(),
        output_tokens: usage.iter().map(|u| u.output_tokens).sum(),
        cost_usd: usage.iter().map(|u| u.cost_usd).sum(),
    }
}
