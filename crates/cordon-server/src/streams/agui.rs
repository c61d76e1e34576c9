//! AG-UI over SSE: `POST /api/agui` takes a `RunAgentInput` and streams the run as AG-UI events; a call that needs approval ends the run with an interrupt outcome, answered by the next input's `resume`.
//!
//! `threadId` and `runId` are the client's and are echoed; cordon's own ids
//! arrive in a `CUSTOM` event named `cordon.run` (a client that sends
//! cordon's thread id as its `threadId` continues that thread). An
//! interrupt's id is `RUN_ID:CALL_ID`.

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::HeaderMap;
use axum::response::Response;
use cordon_core::{Decision, Multitask, RunId};
use cordon_engine::{ApprovalError, NewMessage, ServiceError, WaitingCall};
use serde::Deserialize;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;

use super::step::Step;
use super::{Adapter, CallAnswer, Outbox};
use crate::api::auth::invalid_body;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::state::AppState;
use crate::trace_context::TraceparentHeader;

/// The parts of AG-UI's `RunAgentInput` cordon uses.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunAgentInput {
    thread_id: String,
    run_id: String,
    #[serde(default)]
    messages: Vec<Value>,
    /// Answers to the interrupts of the previous run.
    #[serde(default)]
    resume: Vec<Resume>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Resume {
    interrupt_id: String,
    /// `resolved` or `cancelled`.
    status: String,
    #[serde(default)]
    payload: Value,
}

/// `POST /api/agui`: a run of the input's last user message, or the run
/// its `resume` answers, as AG-UI events.
pub async fn post_agui(
    State(state): State<AppState>,
    user: AuthUser,
    TraceparentHeader(trace_parent): TraceparentHeader,
    body: Result<Json<RunAgentInput>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(input) = body.map_err(invalid_body)?;
    let stream = AguiStream::new(&input);
    if !input.resume.is_empty() {
        let (run_id, answers) = interrupt_answers(&input.resume)?;
        let headers = HeaderMap::new();
        return super::answer_and_continue(&state, &user, run_id, answers, stream, headers).await;
    }
    let content = last_user_text(&input.messages).ok_or_else(|| {
        ApiError::bad_request("invalid_message", "no user message with text to send")
    })?;
    let thread_id = state
        .runs
        .find_own_thread(&user.user_id, &input.thread_id)
        .await?;
    let message = NewMessage {
        thread_id: thread_id.map(|id| id.to_string()),
        content,
        multitask: Multitask::Reject,
        trace_parent,
        ..NewMessage::default()
    };
    super::stream_new_run(&state, &user, message, stream, HeaderMap::new()).await
}

/// The run the interrupts belong to, and each answer.
fn interrupt_answers(resume: &[Resume]) -> Result<(RunId, Vec<CallAnswer>), ApiError> {
    let mut run = None;
    let mut answers = Vec::new();
    for answer in resume {
        let (run_id, call_id) =
            super::parse_approval_id(&answer.interrupt_id).ok_or_else(no_such_interrupt)?;
        if run.as_ref().is_some_and(|known| known != &run_id) {
            return Err(ApiError::bad_request(
                "invalid_body",
                "`resume` answers the interrupts of one run",
            ));
        }
        run = Some(run_id);
        answers.push(CallAnswer {
            call_id: call_id.to_owned(),
            approve: answer.status == "resolved" && answer.payload["approved"] != false,
            reason: answer.payload["reason"].as_str().map(str::to_owned),
        });
    }
    Ok((run.ok_or_else(no_such_interrupt)?, answers))
}

/// An interrupt id that names no call of yours.
fn no_such_interrupt() -> ApiError {
    ApiError::Service(ServiceError::Approval(ApprovalError::NotFound))
}

/// The text of the last user message (`content` a string or text parts).
fn last_user_text(messages: &[Value]) -> Option<String> {
    let last = messages.iter().rev().find(|m| m["role"] == "user")?;
    let text = match &last["content"] {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter(|part| part["type"] == "text")
            .filter_map(|part| part["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => return None,
    };
    (!text.trim().is_empty()).then_some(text)
}

/// One run as AG-UI events.
pub struct AguiStream {
    thread_id: String,
    run_id: String,
    /// cordon's run and thread, once its first event came.
    cordon_run: Option<String>,
    cordon_thread: String,
    /// The open text message, if any.
    text: Option<String>,
    /// Calls whose tool call was announced before this stream (answered approvals).
    announced: BTreeSet<String>,
    /// The `seq` of the event being mapped: message ids are unique per user.
    seq: u64,
}

impl AguiStream {
    fn new(input: &RunAgentInput) -> Self {
        Self {
            thread_id: input.thread_id.clone(),
            run_id: input.run_id.clone(),
            cordon_run: None,
            cordon_thread: String::new(),
            text: None,
            announced: BTreeSet::new(),
            seq: 0,
        }
    }

    fn close_text(&mut self, out: &mut Outbox) {
        if let Some(id) = self.text.take() {
            out.json(&json!({"type": "TEXT_MESSAGE_END", "messageId": id}));
        }
    }

    fn text(&mut self, delta: &str, out: &mut Outbox) {
        let id = match &self.text {
            Some(id) => id.clone(),
            None => {
                let id = format!("msg-{}", self.seq);
                out.json(
                    &json!({"type": "TEXT_MESSAGE_START", "messageId": id, "role": "assistant"}),
                );
                self.text = Some(id.clone());
                id
            }
        };
        out.json(&json!({"type": "TEXT_MESSAGE_CONTENT", "messageId": id, "delta": delta}));
    }

    fn tool_call(&mut self, call_id: &str, tool: &str, arguments: &Value, out: &mut Outbox) {
        self.close_text(out);
        if !self.announced.insert(call_id.to_owned()) {
            return;
        }
        out.json(&json!({"type": "TOOL_CALL_START", "toolCallId": call_id, "toolCallName": tool}));
        out.json(&json!({"type": "TOOL_CALL_ARGS", "toolCallId": call_id, "delta": arguments.to_string()}));
        out.json(&json!({"type": "TOOL_CALL_END", "toolCallId": call_id}));
    }

    fn tool_result(&mut self, call_id: &str, content: &Value, out: &mut Outbox) {
        out.json(&json!({
            "type": "TOOL_CALL_RESULT",
            "messageId": format!("result-{call_id}"),
            "toolCallId": call_id,
            "content": content.to_string(),
            "role": "tool",
        }));
    }

    fn finished(&mut self, outcome: Value, result: Option<Value>, out: &mut Outbox) {
        self.close_text(out);
        let mut finished = json!({
            "type": "RUN_FINISHED",
            "threadId": self.thread_id,
            "runId": self.run_id,
            "outcome": outcome,
        });
        if let Some(result) = result {
            finished["result"] = result;
        }
        out.json(&finished);
    }
}

impl Adapter for AguiStream {
    fn open(&mut self, out: &mut Outbox) {
        out.json(&json!({"type": "RUN_STARTED", "threadId": self.thread_id, "runId": self.run_id}));
    }

    fn run(&mut self, run_id: &str, thread_id: &str, out: &mut Outbox) {
        self.cordon_run = Some(run_id.to_owned());
        self.cordon_thread = thread_id.to_owned();
        out.json(&json!({"type": "CUSTOM", "name": "cordon.run",
                         "value": {"thread_id": thread_id, "run_id": run_id}}));
    }

    fn step(&mut self, seq: u64, step: &Step<'_>, out: &mut Outbox) -> bool {
        self.seq = seq;
        match step {
            Step::Thinking { agent, text } => {
                out.json(&json!({"type": "CUSTOM", "name": "cordon.thinking",
                                 "value": {"agent": agent, "text": text}}));
            }
            Step::Text(text) => self.text(text, out),
            Step::ToolInput {
                call_id,
                tool,
                arguments,
            } => self.tool_call(call_id, tool, arguments, out),
            Step::ToolOutput {
                call_id, result, ..
            } => self.tool_result(call_id, result, out),
            Step::Answered {
                call_id,
                decision,
                reason,
            } => {
                self.announced.insert((*call_id).to_owned());
                if *decision != Decision::Approved {
                    let why = reason.unwrap_or(<&str>::from(*decision));
                    self.tool_result(call_id, &json!({"error": why}), out);
                }
            }
            Step::Done { answer } => {
                let run_id = self.cordon_run.clone().unwrap_or_default();
                let result = json!({"answer": answer, "run_id": run_id,
                                    "thread_id": self.cordon_thread});
                self.finished(json!({"type": "success"}), Some(result), out);
                return true;
            }
            Step::Failed { code, message } => {
                self.close_text(out);
                out.json(&json!({"type": "RUN_ERROR", "message": message, "code": code.as_str()}));
                return true;
            }
        }
        false
    }

    fn paused(&mut self, waiting: &[WaitingCall], out: &mut Outbox) {
        let run = self.cordon_run.clone().unwrap_or_default();
        let interrupts: Vec<Value> = waiting
            .iter()
            .map(|call| {
                let mut interrupt = json!({
                    "id": super::approval_id(&run, &call.call_id),
                    "reason": "tool_approval",
                    "message": format!("Approve calling `{}`?", call.tool),
                    "toolCallId": call.call_id,
                    "metadata": {"tool": call.tool, "arguments": call.arguments},
                });
                if let Ok(at) = call.expires_at.format(&Rfc3339) {
                    interrupt["expiresAt"] = Value::String(at);
                }
                interrupt
            })
            .collect();
        self.finished(
            json!({"type": "interrupt", "interrupts": interrupts}),
            None,
            out,
        );
    }

    fn failed(&mut self, message: &str, out: &mut Outbox) {
        self.close_text(out);
        out.json(&json!({"type": "RUN_ERROR", "message": message, "code": "storage_failed"}));
    }
}
