//! `assistant`: the model/tool loop that turns the thread into an answer.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use cordon_core::{
    Decision, ErrorCode, LlmError, LlmObserver, LlmRequest, LlmResponse, LlmTurn, Message,
    MessagePage, Role, RunEventKind, ToolCall, ToolContext,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::registry::{Agent, AgentContext, AgentInput, CallDecision, Conclusion, RunFailure};

/// Streamed text arriving within this long of the first pending piece goes out as one event.
const STREAM_BATCH: Duration = Duration::from_millis(5);

/// How much of the thread the model sees.
const HISTORY_MESSAGES: usize = 20;

const SYSTEM_PROMPT: &str = "You are cordon's assistant. Use the tools when they help, \
then answer briefly from their results.";

pub struct AssistantAgent;

/// Where the assistant paused: the conversation so far, ending with the
/// model's turn whose calls wait, and that turn's step.
#[derive(Serialize, Deserialize)]
struct Paused {
    turns: Vec<LlmTurn>,
    step: u32,
    calls: Vec<ToolCall>,
}

#[async_trait]
impl Agent for AssistantAgent {
    fn name(&self) -> &'static str {
        "assistant"
    }

    async fn run(
        &self,
        cx: &AgentContext<'_>,
        input: &AgentInput,
    ) -> Result<Conclusion, RunFailure> {
        let turns = conversation(cx, input).await;
        self.converse(cx, input, turns, 1, &[], &HashMap::new())
            .await
    }

    async fn resume(
        &self,
        cx: &AgentContext<'_>,
        input: &AgentInput,
        state: Value,
        answers: &HashMap<String, CallDecision>,
    ) -> Result<Conclusion, RunFailure> {
        let paused: Paused = serde_json::from_value(state).map_err(|error| {
            RunFailure::new(ErrorCode::Internal, format!("unreadable pause: {error}"))
        })?;
        self.converse(
            cx,
            input,
            paused.turns,
            paused.step + 1,
            &paused.calls,
            answers,
        )
        .await
    }
}

impl AssistantAgent {
    /// The model/tool loop from step `first_step`, after running `calls`
    /// (a paused step's, as people answered them). Pauses, before running
    /// any of a step's calls, when one of them needs approval.
    async fn converse(
        &self,
        cx: &AgentContext<'_>,
        input: &AgentInput,
        turns: Vec<LlmTurn>,
        first_step: u32,
        calls: &[ToolCall],
        answers: &HashMap<String, CallDecision>,
    ) -> Result<Conclusion, RunFailure> {
        let tool_cx = ToolContext {
            ctx: cx.ctx.clone(),
            store: cx.store.clone(),
        };
        let mut request = LlmRequest {
            system: system_prompt(&input.notes),
            turns,
            tools: cx.tools.specs_for(&tool_cx).await,
        };
        self.run_calls(cx, &tool_cx, &mut request, calls, answers)
            .await;
        for step in first_step..=cx.max_steps {
            cx.events.room().await;
            let (result, streamed_thinking) = self.call_model(cx, step, &request).await;
            let response =
                result.map_err(|error| RunFailure::new(error.code(), error.to_string()))?;
            self.report_thinking(cx, step, &response, streamed_thinking);
            if response.tool_calls.is_empty() {
                return Ok(Conclusion::Done(response.text));
            }
            request.turns.push(LlmTurn::Assistant {
                text: response.text.clone(),
                tool_calls: response.tool_calls.clone(),
            });
            let waiting: Vec<ToolCall> = response
                .tool_calls
                .iter()
                .filter(|call| cx.approval_tools.contains(&call.name))
                .cloned()
                .collect();
            if !waiting.is_empty() {
                let paused = Paused {
                    turns: request.turns,
                    step,
                    calls: response.tool_calls,
                };
                let state = serde_json::to_value(&paused).map_err(|error| {
                    RunFailure::new(ErrorCode::Internal, format!("could not pause: {error}"))
                })?;
                return Ok(Conclusion::Paused {
                    calls: waiting,
                    state,
                });
            }
            self.run_calls(cx, &tool_cx, &mut request, &response.tool_calls, answers)
                .await;
        }
        Err(RunFailure::new(
            ErrorCode::StepLimit,
            format!("the model did not answer within {} steps", cx.max_steps),
        ))
    }

    /// Runs one step's calls in order, each result a turn for the model. A
    /// call that needed approval runs only if it was approved; otherwise the
    /// model is told why it did not.
    async fn run_calls(
        &self,
        cx: &AgentContext<'_>,
        tool_cx: &ToolContext,
        request: &mut LlmRequest,
        calls: &[ToolCall],
        answers: &HashMap<String, CallDecision>,
    ) {
        for call in calls {
            let refused = answers
                .get(&call.id)
                .filter(|answer| answer.decision != Decision::Approved);
            let (content, is_error) = match refused {
                Some(answer) => (refusal(answer), true),
                None => {
                    let outcome = cx
                        .tools
                        .dispatch(tool_cx, cx.events, self.name(), call)
                        .await;
                    (outcome.result, outcome.is_error)
                }
            };
            request.turns.push(LlmTurn::ToolResult {
                call_id: call.id.clone(),
                name: call.name.clone(),
                content,
                is_error,
            });
        }
    }

    /// One model call whose streamed output becomes events as it arrives: answer
    /// text as `agent_delta`, reasoning as `agent_thinking`, batched over
    /// [`STREAM_BATCH`] and strictly in order. Returns whether thinking was streamed.
    async fn call_model(
        &self,
        cx: &AgentContext<'_>,
        step: u32,
        request: &LlmRequest,
    ) -> (Result<LlmResponse, LlmError>, bool) {
        let observer = StreamToEvents::new(cx, self.name(), step);
        let call = cx.llm.complete(request, &observer);
        tokio::pin!(call);
        let result = loop {
            let due = observer.due();
            tokio::select! {
                biased;
                result = &mut call => break result,
                () = wait_until(due, &observer.wake) => {
                    observer.flush_if_due();
                    // The provider's stream waits too (TCP backpressure).
                    cx.events.room().await;
                }
            }
        };
        observer.flush();
        let streamed_thinking = observer.lock().thinking_sent;
        (result, streamed_thinking)
    }

    /// Reports what the step thought that was not streamed already: the
    /// provider's reasoning, interim text written before tool calls, or which
    /// tool it calls.
    fn report_thinking(
        &self,
        cx: &AgentContext<'_>,
        step: u32,
        response: &LlmResponse,
        streamed_thinking: bool,
    ) {
        let mut texts = Vec::new();
        if let Some(thinking) = response.thinking.as_ref().filter(|_| !streamed_thinking) {
            texts.push(thinking.clone());
        }
        if let Some(call) = response.tool_calls.first() {
            if !response.text.trim().is_empty() {
                texts.push(response.text.clone());
            } else if texts.is_empty() && !streamed_thinking {
                texts.push(format!("Calling the {} tool.", call.name));
            }
        }
        for text in texts {
            cx.events.emit(
                cx.ctx,
                RunEventKind::AgentThinking {
                    agent: self.name().to_owned(),
                    step,
                    text,
                },
            );
        }
    }
}

async fn wait_until(due: Option<Instant>, wake: &Notify) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => wake.notified().await,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Pending {
    Delta,
    Thinking,
}

struct StreamBuffer {
    kind: Pending,
    text: String,
    /// When the oldest pending piece arrived; `None` when nothing is pending.
    since: Option<Instant>,
    thinking_sent: bool,
}

/// Turns one call's streamed output into events. All of it is produced by the
/// call's own future, polled by `call_model`, so a flush never races a push.
struct StreamToEvents<'a> {
    cx: &'a AgentContext<'a>,
    agent: &'static str,
    step: u32,
    buffer: Mutex<StreamBuffer>,
    wake: Notify,
}

impl<'a> StreamToEvents<'a> {
    fn new(cx: &'a AgentContext<'a>, agent: &'static str, step: u32) -> Self {
        Self {
            cx,
            agent,
            step,
            buffer: Mutex::new(StreamBuffer {
                kind: Pending::Delta,
                text: String::new(),
                since: None,
                thinking_sent: false,
            }),
            wake: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, StreamBuffer> {
        self.buffer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, kind: Pending, text: &str) {
        if text.is_empty() {
            return;
        }
        let mut buffer = self.lock();
        if buffer.kind != kind {
            self.emit(&mut buffer);
            buffer.kind = kind;
        }
        buffer.text.push_str(text);
        if buffer.since.is_none() {
            buffer.since = Some(Instant::now());
            self.wake.notify_one();
        }
    }

    /// When the pending text must go out.
    fn due(&self) -> Option<Instant> {
        self.lock().since.map(|since| since + STREAM_BATCH)
    }

    fn flush_if_due(&self) {
        let mut buffer = self.lock();
        if buffer
            .since
            .is_some_and(|since| since + STREAM_BATCH <= Instant::now())
        {
            self.emit(&mut buffer);
        }
    }

    fn flush(&self) {
        let mut buffer = self.lock();
        self.emit(&mut buffer);
    }

    fn emit(&self, buffer: &mut StreamBuffer) {
        buffer.since = None;
        if buffer.text.is_empty() {
            return;
        }
        let text = std::mem::take(&mut buffer.text);
        let agent = self.agent.to_owned();
        let kind = match buffer.kind {
            Pending::Delta => RunEventKind::AgentDelta { agent, text },
            Pending::Thinking => {
                buffer.thinking_sent = true;
                RunEventKind::AgentThinking {
                    agent,
                    step: self.step,
                    text,
                }
            }
        };
        self.cx.events.emit(self.cx.ctx, kind);
    }
}

impl LlmObserver for StreamToEvents<'_> {
    fn on_thinking(&self, text: &str) {
        self.push(Pending::Thinking, text);
    }

    fn on_delta(&self, text: &str) {
        self.push(Pending::Delta, text);
    }
}

/// What the model is told of a call a person did not approve.
fn refusal(answer: &CallDecision) -> Value {
    let why = match &answer.reason {
        Some(reason) => format!("the user rejected the call: {reason}"),
        None => "the user rejected the call".to_owned(),
    };
    json!({ "error": why })
}

fn system_prompt(notes: &[String]) -> String {
    if notes.is_empty() {
        return SYSTEM_PROMPT.to_owned();
    }
    format!(
        "{SYSTEM_PROMPT}\nNotes from earlier agents:\n{}",
        notes.join("\n")
    )
}

/// The thread's recent messages, ending with the current one. Falls back to
/// just the current message if the history cannot be read.
async fn conversation(cx: &AgentContext<'_>, input: &AgentInput) -> Vec<LlmTurn> {
    // Only the tail the run uses: its history, plus the messages that may
    // be queued behind its own (the window then ends at its own message).
    let window = HISTORY_MESSAGES + crate::engine::MAX_WAITING_PER_THREAD + 1;
    let page = MessagePage::newest(u32::try_from(window).unwrap_or(u32::MAX));
    let mut history = cx
        .store
        .messages(cx.ctx.thread_id(), &page)
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
    // Messages queued on the thread after this run's own are not its history.
    if let Some(own) = history
        .iter()
        .position(|m| m.role == Role::User && m.run_id.as_ref() == Some(cx.ctx.root_run_id()))
    {
        history.truncate(own + 1);
    }
    let mut turns: Vec<LlmTurn> = history
        .iter()
        .rev()
        .take(HISTORY_MESSAGES)
        .rev()
        .map(turn_of)
        .collect();
    let ends_with_current = history
        .last()
        .is_some_and(|m| m.role == Role::User && m.content == input.message);
    if !ends_with_current {
        turns.push(LlmTurn::User(input.message.clone()));
    }
    turns
}

fn turn_of(message: &Message) -> LlmTurn {
    match message.role {
        Role::User => LlmTurn::User(message.content.clone()),
        Role::Assistant => LlmTurn::Assistant {
            text: message.content.clone(),
            tool_calls: Vec::new(),
        },
    }
}
