//! The Vercel AI SDK UI message stream: `POST /api/chat` (what `useChat` sends) and `GET /api/chat/{id}/stream` (its resume).
//!
//! The assistant message of a run has the run's id. Reasoning (`agent_thinking`)
//! becomes reasoning parts, streamed text becomes text parts, tool calls
//! become tool parts with their input and output, a call that needs approval
//! becomes a `tool-approval-request` (its `approvalId` is `RUN_ID:CALL_ID`),
//! and the stream finishes; the client's next request carries the answer
//! (a tool part in `approval-responded`) and continues the same message.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cordon_core::{Decision, Multitask, RunFilter, RunId};
use cordon_engine::{NewMessage, WaitingCall};
use serde::Deserialize;
use serde_json::{Value, json};

use super::step::Step;
use super::{Adapter, CallAnswer, Outbox};
use crate::api::auth::invalid_body;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::state::AppState;
use crate::trace_context::TraceparentHeader;

/// What `useChat`'s `DefaultChatTransport` posts.
#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    /// The chat's id: a thread of yours continues it, anything else starts a thread.
    #[serde(default)]
    id: Option<String>,
    /// Explicitly the thread to continue (e.g. from a previous `start`'s metadata).
    #[serde(default)]
    thread_id: Option<String>,
    #[serde(default)]
    messages: Vec<UiMessage>,
}

#[derive(Debug, Deserialize)]
struct UiMessage {
    role: String,
    /// On assistant messages: what `start` said (`thread_id`, `run_id`).
    #[serde(default)]
    metadata: Value,
    #[serde(default)]
    parts: Vec<Value>,
}

/// `POST /api/chat`: the last user message as a new run (or, when the last
/// assistant message answers approvals, those answers), streamed back.
pub async fn post_chat(
    State(state): State<AppState>,
    user: AuthUser,
    TraceparentHeader(trace_parent): TraceparentHeader,
    body: Result<Json<ChatRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(invalid_body)?;
    if let Some((run_id, answers)) = approval_answers(&body.messages) {
        let stream = UiMessageStream::new();
        return super::answer_and_continue(&state, &user, run_id, answers, stream, headers()).await;
    }
    let content = last_user_text(&body.messages).ok_or_else(|| {
        ApiError::bad_request("invalid_message", "no user message with text to send")
    })?;
    let thread_id = chat_thread(&state, &user, &body).await?;
    let message = NewMessage {
        thread_id: thread_id.map(|id| id.to_string()),
        content,
        multitask: Multitask::Reject,
        trace_parent,
        ..NewMessage::default()
    };
    super::stream_new_run(&state, &user, message, UiMessageStream::new(), headers()).await
}

/// `GET /api/chat/{id}/stream`: the run in progress on the chat's thread,
/// from its start (`resumeStreamIsReplay`) or after `Last-Event-ID`; `204`
/// when none is.
pub async fn resume_chat(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    request_headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Some(thread_id) = state.runs.find_own_thread(&user.user_id, &id).await? else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let filter = RunFilter {
        thread_id: Some(thread_id),
        limit: 1,
        ..RunFilter::default()
    };
    let latest = state.store.list_runs(&user.user_id, &filter).await?;
    let Some(run) = latest.into_iter().find(|run| !run.status.is_terminal()) else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let after = super::last_event_id(&request_headers).unwrap_or(0);
    let stream = UiMessageStream::new();
    super::stream_run(&state, &user, run.id, after, stream, headers()).await
}

/// The thread a chat continues: `thread_id`, else the chat's `id`, else the
/// thread named by an earlier answer's metadata, if it is one of the
/// user's; `None` starts a new thread.
async fn chat_thread(
    state: &AppState,
    user: &AuthUser,
    body: &ChatRequest,
) -> Result<Option<cordon_core::ThreadId>, ApiError> {
    let from_answers = body
        .messages
        .iter()
        .rev()
        .filter_map(|message| message.metadata["thread_id"].as_str());
    let candidates = body
        .thread_id
        .as_deref()
        .into_iter()
        .chain(body.id.as_deref())
        .chain(from_answers.take(1));
    for raw in candidates {
        if let Some(thread_id) = state.runs.find_own_thread(&user.user_id, raw).await? {
            return Ok(Some(thread_id));
        }
    }
    Ok(None)
}

/// The approvals the last assistant message responded to: its run and
/// each call's answer; `None` when it has none (a new user message).
fn approval_answers(messages: &[UiMessage]) -> Option<(RunId, Vec<CallAnswer>)> {
    let last = messages.last().filter(|m| m.role == "assistant")?;
    let mut run = None;
    let mut answers = Vec::new();
    for part in &last.parts {
        if part["state"] != "approval-responded" {
            continue;
        }
        let approval = &part["approval"];
        let (run_id, call_id) = super::parse_approval_id(approval["id"].as_str()?)?;
        answers.push(CallAnswer {
            call_id: call_id.to_owned(),
            approve: approval["approved"].as_bool().unwrap_or(false),
            reason: approval["reason"].as_str().map(str::to_owned),
        });
        run = Some(run_id);
    }
    Some((run?, answers))
}

/// The text of the last user message.
fn last_user_text(messages: &[UiMessage]) -> Option<String> {
    let last = messages.iter().rev().find(|m| m.role == "user")?;
    let text: Vec<&str> = last
        .parts
        .iter()
        .filter(|part| part["type"] == "text")
        .filter_map(|part| part["text"].as_str())
        .collect();
    let text = text.join("\n");
    (!text.trim().is_empty()).then_some(text)
}

fn headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        HeaderName::from_static("x-vercel-ai-ui-message-stream"),
        HeaderValue::from_static("v1"),
    );
    headers
}

/// One run as a UI message stream.
pub struct UiMessageStream {
    /// The run (and so the message id), once its first event came.
    run_id: Option<String>,
    /// The open text part, if any.
    text: Option<String>,
    /// The `seq` of the event being mapped: part ids are unique per user.
    seq: u64,
}

impl UiMessageStream {
    fn new() -> Self {
        Self {
            run_id: None,
            text: None,
            seq: 0,
        }
    }

    fn next_id(&self, prefix: &str) -> String {
        format!("{prefix}-{}", self.seq)
    }

    fn close_text(&mut self, out: &mut Outbox) {
        if let Some(id) = self.text.take() {
            out.json(&json!({"type": "text-end", "id": id}));
        }
    }

    fn text(&mut self, text: &str, out: &mut Outbox) {
        let id = match &self.text {
            Some(id) => id.clone(),
            None => {
                let id = self.next_id("text");
                out.json(&json!({"type": "text-start", "id": id}));
                self.text = Some(id.clone());
                id
            }
        };
        out.json(&json!({"type": "text-delta", "id": id, "delta": text}));
    }

    fn reasoning(&mut self, text: &str, out: &mut Outbox) {
        self.close_text(out);
        let id = self.next_id("reasoning");
        out.json(&json!({"type": "reasoning-start", "id": id}));
        out.json(&json!({"type": "reasoning-delta", "id": id, "delta": text}));
        out.json(&json!({"type": "reasoning-end", "id": id}));
    }

    fn tool_input(&mut self, call_id: &str, tool: &str, input: &Value, out: &mut Outbox) {
        self.close_text(out);
        out.json(&json!({
            "type": "tool-input-available",
            "toolCallId": call_id,
            "toolName": tool,
            "input": input,
        }));
    }

    fn finish(&mut self, reason: &str, out: &mut Outbox) {
        self.close_text(out);
        out.json(&json!({"type": "finish", "finishReason": reason}));
        out.raw("[DONE]");
    }
}

impl Adapter for UiMessageStream {
    fn open(&mut self, _out: &mut Outbox) {}

    fn run(&mut self, run_id: &str, thread_id: &str, out: &mut Outbox) {
        self.run_id = Some(run_id.to_owned());
        out.json(&json!({
            "type": "start",
            "messageId": run_id,
            "messageMetadata": {"thread_id": thread_id, "run_id": run_id},
        }));
    }

    fn step(&mut self, seq: u64, step: &Step<'_>, out: &mut Outbox) -> bool {
        self.seq = seq;
        match step {
            Step::Thinking { text, .. } => self.reasoning(text, out),
            Step::Text(text) => self.text(text, out),
            Step::ToolInput {
                call_id,
                tool,
                arguments,
            } => self.tool_input(call_id, tool, arguments, out),
            Step::ToolOutput {
                call_id,
                result,
                is_error,
            } => {
                let part = match is_error {
                    false => {
                        json!({"type": "tool-output-available", "toolCallId": call_id, "output": result})
                    }
                    true => json!({"type": "tool-output-error", "toolCallId": call_id,
                                   "errorText": error_text(result)}),
                };
                out.json(&part);
            }
            Step::Answered {
                call_id, decision, ..
            } if *decision != Decision::Approved => {
                out.json(&json!({"type": "tool-output-denied", "toolCallId": call_id}));
            }
            Step::Answered { .. } => {}
            Step::Done { .. } => {
                self.finish("stop", out);
                return true;
            }
            Step::Failed { code, message } => {
                self.close_text(out);
                out.json(
                    &json!({"type": "error", "errorText": format!("{}: {message}", code.as_str())}),
                );
                out.raw("[DONE]");
                return true;
            }
        }
        false
    }

    fn paused(&mut self, waiting: &[WaitingCall], out: &mut Outbox) {
        let run_id = self.run_id.clone().unwrap_or_default();
        for call in waiting {
            out.json(&json!({
                "type": "tool-approval-request",
                "approvalId": super::approval_id(&run_id, &call.call_id),
                "toolCallId": call.call_id,
            }));
        }
        self.finish("tool-calls", out);
    }

    fn failed(&mut self, message: &str, out: &mut Outbox) {
        out.json(&json!({"type": "error", "errorText": message}));
        out.raw("[DONE]");
    }
}

fn error_text(result: &Value) -> String {
    match result["error"].as_str() {
        Some(error) => error.to_owned(),
        None => result.to_string(),
    }
}
