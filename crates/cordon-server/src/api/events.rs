//! `GET /api/events?after_seq=N&limit=M`: the caller's whole event log, for pollers; the same log `/ws` resumes from.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use cordon_core::StoredEvent;
use serde::Deserialize;

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::state::AppState;
use crate::ws::replay::{ReplayError, check_cursor};

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

/// `?after_seq=N&limit=M` of the event log routes.
#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    #[serde(default)]
    pub after_seq: u64,
    pub limit: Option<u32>,
}

/// Events with `seq > after_seq` in order, at most `limit` (default 100, at
/// most 1000), as a JSON array of frames exactly as sent; `410
/// cursor_expired` when retention deleted some of them.
pub async fn list_events(
    State(state): State<AppState>,
    user: AuthUser,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    check_cursor(state.store.as_ref(), &user.user_id, query.after_seq)
        .await
        .map_err(|error| match error {
            ReplayError::CursorExpired { oldest_seq } => ApiError::CursorExpired { oldest_seq },
            other => ApiError::Internal(other.to_string()),
        })?;
    let events = state
        .store
        .list_events(&user.user_id, query.after_seq, limit)
        .await?;
    Ok(json_array(&events))
}

/// Stored payloads are the exact frames; they are joined, not re-serialized.
pub fn json_array(events: &[StoredEvent]) -> Response {
    let payloads: Vec<&str> = events.iter().map(|event| &*event.payload).collect();
    let body = format!("[{}]", payloads.join(","));
    ([(CONTENT_TYPE, "application/json")], body).into_response()
}
