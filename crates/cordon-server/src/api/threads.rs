//! `GET /api/threads` and `GET /api/threads/{id}/messages`, scoped to the caller.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use cordon_core::{Message, MessageId, MessagePage, Thread, ThreadId};
use cordon_protocol::rest::{MessageView, ThreadView};

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::state::AppState;

/// Threads a page holds by default, and at most.
pub const DEFAULT_THREAD_PAGE: u32 = 50;
pub const MAX_THREAD_PAGE: u32 = 500;

/// `?limit=&before=`: the page of threads after the thread `before` (in the
/// listing's order: most recently active first).
#[derive(Debug, serde::Deserialize)]
pub struct ThreadsQuery {
    limit: Option<u32>,
    before: Option<String>,
}

pub async fn list_threads(
    State(state): State<AppState>,
    user: AuthUser,
    query: Result<Query<ThreadsQuery>, QueryRejection>,
) -> Result<Json<Vec<ThreadView>>, ApiError> {
    let Query(query) = query?;
    let before = query
        .before
        .map(|raw| ThreadId::parse(raw).map_err(|_| cursor_error("a thread id")))
        .transpose()?;
    let limit = query
        .limit
        .unwrap_or(DEFAULT_THREAD_PAGE)
        .clamp(1, MAX_THREAD_PAGE);
    let threads = state
        .store
        .list_threads(&user.user_id, limit, before.as_ref())
        .await?;
    Ok(Json(threads.iter().map(thread_view).collect()))
}

fn cursor_error(what: &str) -> ApiError {
    ApiError::bad_request("invalid_query", format!("`before` is not {what}"))
}

/// Messages a page holds by default, and at most.
pub const DEFAULT_MESSAGE_PAGE: u32 = 100;
pub const MAX_MESSAGE_PAGE: u32 = 1000;

/// `?limit=&before=`: the newest `limit` messages before the message `before`.
#[derive(Debug, serde::Deserialize)]
pub struct MessagesQuery {
    limit: Option<u32>,
    before: Option<String>,
}

/// One page of the thread, oldest first: by default its newest 100
/// messages; the `id` of the first one is the `before` of the page before.
pub async fn list_messages(
    State(state): State<AppState>,
    user: AuthUser,
    Path(thread_id): Path<String>,
    query: Result<Query<MessagesQuery>, QueryRejection>,
) -> Result<Json<Vec<MessageView>>, ApiError> {
    let Query(query) = query?;
    let thread_id = ThreadId::parse(thread_id).map_err(|_| ApiError::NotFound("thread"))?;
    let before = query
        .before
        .map(|raw| MessageId::parse(raw).map_err(|_| cursor_error("a message id")))
        .transpose()?;
    let page = MessagePage {
        limit: query
            .limit
            .unwrap_or(DEFAULT_MESSAGE_PAGE)
            .clamp(1, MAX_MESSAGE_PAGE),
        before,
    };
    let messages = state
        .store
        .list_messages(&user.user_id, &thread_id, &page)
        .await?
        .ok_or(ApiError::NotFound("thread"))?;
    Ok(Json(messages.iter().map(message_view).collect()))
}

fn thread_view(thread: &Thread) -> ThreadView {
    ThreadView {
        id: thread.id.to_string(),
        title: thread.title.clone(),
        created_at: thread.created_at,
        updated_at: thread.updated_at,
    }
}

fn message_view(message: &Message) -> MessageView {
    MessageView {
        id: message.id.to_string(),
        thread_id: message.thread_id.to_string(),
        role: message.role.as_str().to_owned(),
        content: message.content.clone(),
        run_id: message.run_id.as_ref().map(ToString::to_string),
        created_at: message.created_at,
    }
}
