//! `assistant`: the model/tool loop that turns the thread into an answer.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use cordon_core::{
    LlmError, LlmObserver, LlmRequest, LlmResponse, LlmTurn, Message, MessagePage, Role,
    RunEventKind, ToolContext,
};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::registry::{Agent, AgentContext, AgentInput, RunFailure};

/// Streamed text arriving within this long of the first pending piece goes out as one event.
const STREAM_BATCH: Duration = Duration::from_millis(5);

/// How much of the thread the model sees.
const HISTORY_MESSAGES: usize = 20;

const SYSTEM_PROMPT: &str = "You are cordon's assistant. Use the tools when they help, \
then answer briefly from their results.";

pub struct AssistantAgent;

#[async_trait]
impl Agent for AssistantAgent {
    fn name(&self) -> &'static str {
        "assistant"
    }

    async fn run(&self, cx: &AgentContext<'_>, input: &AgentInput) -> Result<String, RunFailure> {
        let tool_cx = ToolContext {
            ctx: cx.ctx.clone(),
            store: cx.store.clone(),
        };
        let mut request = LlmRequest {
            system: system_prompt(&input.notes),
            turns: conversation(cx, input).await,
            tools: cx.tools.specs_for(&tool_cx).await,
        };
        for step in 1..=cx.max_steps {
            cx.events.room().await;
            let (result, streamed_thinking) = self.call_model(cx, step, &request).await;
            let response =
                result.map_err(|error| RunFailure::new(error.code(), error.to_string()))?;
            self.report_thinking(cx, step, &response, streamed_thinking);
            if response.tool_calls.is_empty() {
                return Ok(response.text);
            }
            request.turns.push(LlmTurn::Assistant {
                text: response.text.clone(),
                tool_calls: response.tool_calls.clone(),
            });
            for call in &response.tool_calls {
                let outcome = cx
                    .tools
                    .dispatch(&tool_cx, cx.events, self.name(), call)
                    .await;
                request.turns.push(LlmTurn::ToolResult {
                    call_id: call.id.clone(),
                    name: call.name.clone(),
                    content: outcome.result,
                    is_error: outcome.is_error,
                });
            }
        }
        Err(RunFailure::new(
            cordon_core::ErrorCode::StepLimit,
            format!("the model did not answer within {} steps", cx.max_steps),
        ))
    }
}

impl AssistantAgent {
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
