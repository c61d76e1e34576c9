//! `GET /api/threads` and `GET /api/threads/{id}/messages`, scoped to the caller.

use axum::Json;
use axum::extract::{Path, State};
use cordon_core::{Message, Thread, ThreadId};
use cordon_protocol::rest::{MessageView, ThreadView};

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::state::AppState;

pub async fn list_threads(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<Json<Vec<ThreadView>>, ApiError> {
    let threads = state.store.list_threads(&user.user_id).await?;
    Ok(Json(threads.iter().map(thread_view).collect()))
}

pub async fn list_messages(
    State(state): State<AppState>,
    user: AuthUser,
    Path(thread_id): Path<String>,
) -> Result<Json<Vec<MessageView>>, ApiError> {
    let thread_id = ThreadId::parse(thread_id).map_err(|_| ApiError::NotFound("thread"))?;
    let messages = state
        .store
        .list_messages(&user.user_id, &thread_id)
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
