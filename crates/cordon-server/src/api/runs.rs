//! `GET /api/runs`, `GET /api/runs/{id}`, `GET /api/runs/{id}/events`, `POST /api/runs/{id}/cancel` and `POST /api/runs/{id}/approvals/{call_id}`, scoped to the caller.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use cordon_core::{ModelUsage, RunFilter, RunId, RunRecord, RunStatus, ThreadId};
use cordon_engine::{CancelOutcome, ServiceError};
use cordon_protocol::rest::{
    ApprovalBody, ApprovalVerb, ApprovalView, CancelView, ErrorBody, RunUsageView, RunView,
};
use serde::Deserialize;

use crate::api::auth::invalid_body;
use crate::api::events::{EventsQuery, json_array};
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::state::AppState;

const DEFAULT_RUNS: u32 = 50;
const MAX_RUNS: u32 = 200;

#[derive(Debug, Deserialize)]
pub struct RunsQuery {
    status: Option<String>,
    thread_id: Option<String>,
    limit: Option<u32>,
}

/// The caller's runs, newest first, optionally by `status` and `thread_id`.
pub async fn list_runs(
    State(state): State<AppState>,
    user: AuthUser,
    query: Result<Query<RunsQuery>, QueryRejection>,
) -> Result<Json<Vec<RunView>>, ApiError> {
    let Query(query) = query?;
    let status = query
        .status
        .as_deref()
        .map(str::parse::<RunStatus>)
        .transpose()
        .map_err(|_| {
            ApiError::bad_request(
                "invalid_query",
                "`status` is one of queued, running, waiting_approval, completed, failed, cancelled, timed_out, rejected, interrupted",
            )
        })?;
    let thread_id = match query.thread_id {
        // Another user's thread, like a malformed id, simply has no runs.
        Some(raw) => match ThreadId::parse(raw) {
            Ok(id) => Some(id),
            Err(_) => return Ok(Json(Vec::new())),
        },
        None => None,
    };
    let filter = RunFilter {
        status,
        thread_id,
        limit: query.limit.unwrap_or(DEFAULT_RUNS).clamp(1, MAX_RUNS),
    };
    let runs = state.store.list_runs(&user.user_id, &filter).await?;
    let mut views = Vec::with_capacity(runs.len());
    for run in &runs {
        let usage = state.store.run_usage(&user.user_id, &run.id).await?;
        views.push(run_view(run, &usage));
    }
    Ok(Json(views))
}

/// Stops a running run, or ends a queued one; `404` for none of yours,
/// `409 run_finished` for one that already ended.
pub async fn cancel_run(
    State(state): State<AppState>,
    user: AuthUser,
    Path(run_id): Path<String>,
) -> Result<(StatusCode, Json<CancelView>), ApiError> {
    let status = match state.runs.cancel(&user.user_id, &run_id).await {
        Ok(CancelOutcome::Stopping) => "cancelling",
        Ok(CancelOutcome::Dequeued) => "cancelled",
        Ok(CancelOutcome::NotInProgress) | Err(ServiceError::RunNotFound) => {
            return Err(not_running(&state, &user, &run_id).await);
        }
        Err(error) => return Err(error.into()),
    };
    let view = CancelView {
        run_id,
        status: status.to_owned(),
    };
    Ok((StatusCode::ACCEPTED, Json(view)))
}

/// A person's answer to one of the run's calls that waits for approval:
/// `404 approval_not_found`, `409 already_resolved`, `410 approval_expired`.
pub async fn answer_approval(
    State(state): State<AppState>,
    user: AuthUser,
    Path((run_id, call_id)): Path<(String, String)>,
    body: Result<Json<ApprovalBody>, JsonRejection>,
) -> Result<Json<ApprovalView>, ApiError> {
    let Json(body) = body.map_err(invalid_body)?;
    let approve = body.decision == ApprovalVerb::Approve;
    let resolved = state
        .runs
        .answer_approval(&user.user_id, Some(&run_id), &call_id, approve, body.reason)
        .await?;
    Ok(Json(ApprovalView {
        run_id: resolved.run_id.to_string(),
        call_id: resolved.call_id,
        decision: resolved.decision,
        resumed: resolved.resumed,
    }))
}

/// Why a cancel found nothing to stop: the run ended, or it is not yours.
async fn not_running(state: &AppState, user: &AuthUser, raw: &str) -> ApiError {
    let Ok(run_id) = RunId::parse(raw) else {
        return ApiError::NotFound("run");
    };
    match state.store.get_run(&user.user_id, &run_id).await {
        Ok(Some(run)) => ApiError::Conflict {
            code: "run_finished",
            message: format!("the run already ended ({})", run.status.as_str()),
        },
        Ok(None) => ApiError::NotFound("run"),
        Err(error) => error.into(),
    }
}

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

/// The run's stored events after `after_seq`, exactly as they were sent, as
/// one JSON array (a run is small: `limit` does not apply).
pub async fn list_events(
    State(state): State<AppState>,
    user: AuthUser,
    Path(run_id): Path<String>,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    let run_id = RunId::parse(run_id).map_err(|_| ApiError::NotFound("run"))?;
    if state.store.get_run(&user.user_id, &run_id).await?.is_none() {
        return Err(ApiError::NotFound("run"));
    }
    let events = state
        .store
        .list_run_events(&user.user_id, &run_id, query.after_seq)
        .await?;
    Ok(json_array(&events))
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
        // `fold` from 0.0: `sum` of no floats is -0.0, printed as such.
        cost_usd: usage.iter().fold(0.0, |total, u| total + u.cost_usd),
    }
}
