//! `assistant`: the model/tool loop that turns the thread into an answer.

use async_trait::async_trait;
use cordon_core::{
    IgnoreStream, LlmRequest, LlmResponse, LlmTurn, Message, Role, RunEventKind, ToolContext,
};

use crate::registry::{Agent, AgentContext, AgentInput, RunFailure};

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
        let mut request = LlmRequest {
            system: system_prompt(&input.notes),
            turns: conversation(cx, input).await,
            tools: cx.tools.specs(),
        };
        let tool_cx = ToolContext {
            ctx: cx.ctx.clone(),
            store: cx.store.clone(),
        };
        for step in 1..=cx.max_steps {
            let response = cx
                .llm
                .complete(&request, &IgnoreStream)
                .await
                .map_err(|error| RunFailure::new(error.code(), error.to_string()))?;
            self.report_thinking(cx, step, &response);
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
                    .dispatch(&tool_cx, cx.emitter, self.name(), call)
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
    fn report_thinking(&self, cx: &AgentContext<'_>, step: u32, response: &LlmResponse) {
        let text = match (&response.thinking, response.tool_calls.first()) {
            (Some(thinking), _) => thinking.clone(),
            (None, Some(call)) => format!("Calling the {} tool.", call.name),
            (None, None) => return,
        };
        cx.emitter.emit(
            cx.ctx,
            RunEventKind::AgentThinking {
                agent: self.name().to_owned(),
                step,
                text,
            },
        );
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
    let history = cx
        .store
        .list_messages(cx.ctx.user_id(), cx.ctx.thread_id())
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
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
