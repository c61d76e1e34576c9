//! `POST /api/messages` and `POST /api/threads/{id}/messages`: a message over REST, through the same run service as `/ws`.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use cordon_core::{Multitask, StoreError, TraceParent};
use cordon_engine::{Accepted, NewMessage, ServiceError};
use cordon_protocol::rest::{AcceptedView, PostMessage};

use crate::api::auth::invalid_body;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::state::AppState;
use crate::trace_context::TraceparentHeader;

/// A message to the thread in `thread_id`, or to a new thread without one.
pub async fn post_new_thread(
    State(state): State<AppState>,
    user: AuthUser,
    TraceparentHeader(trace_parent): TraceparentHeader,
    body: Result<Json<PostMessage>, JsonRejection>,
) -> Result<(StatusCode, Json<AcceptedView>), ApiError> {
    let Json(body) = body.map_err(invalid_body)?;
    let thread_id = body.thread_id.clone();
    submit(&state, &user, thread_id, body, trace_parent).await
}

/// A message to the thread in the path.
pub async fn post_to_thread(
    State(state): State<AppState>,
    user: AuthUser,
    TraceparentHeader(trace_parent): TraceparentHeader,
    Path(thread_id): Path<String>,
    body: Result<Json<PostMessage>, JsonRejection>,
) -> Result<(StatusCode, Json<AcceptedView>), ApiError> {
    let Json(body) = body.map_err(invalid_body)?;
    if body.thread_id.as_ref().is_some_and(|id| id != &thread_id) {
        return Err(ApiError::bad_request(
            "invalid_body",
            "`thread_id` in the body differs from the path",
        ));
    }
    submit(&state, &user, Some(thread_id), body, trace_parent).await
}

/// Answers `202` only once the message and the run's first event are
/// stored: if writes failed in between (the failure epoch moved), they may
/// not be, and the answer is `503 storage_failed`.
async fn submit(
    state: &AppState,
    user: &AuthUser,
    thread_id: Option<String>,
    body: PostMessage,
    trace_parent: Option<TraceParent>,
) -> Result<(StatusCode, Json<AcceptedView>), ApiError> {
    let message = NewMessage {
        thread_id,
        content: body.content,
        client_request_id: body.client_request_id,
        multitask: body.multitask.unwrap_or(Multitask::Reject),
        connection_id: None,
        trace_parent,
    };
    let epoch = state.store.failure_epoch();
    let accepted = state.runs.submit_message(&user.user_id, message).await?;
    let stored = state.store.sync().await.and_then(|()| {
        if state.store.failure_epoch() == epoch {
            Ok(())
        } else {
            Err(StoreError::Backend(
                "writes failed while the message was stored".into(),
            ))
        }
    });
    stored.map_err(ServiceError::Storage)?;
    Ok((StatusCode::ACCEPTED, Json(accepted_view(&accepted))))
}

fn accepted_view(accepted: &Accepted) -> AcceptedView {
    AcceptedView {
        run_id: accepted.run_id.to_string(),
        thread_id: accepted.thread_id.to_string(),
        seq: accepted.seq,
        status: if accepted.queued.is_some() {
            "queued"
        } else {
            "running"
        }
        .to_owned(),
        position: accepted.queued,
    }
}
