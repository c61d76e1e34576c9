//! `Step`: what a run event means to a chat stream, whatever its wire; the one place that decides when the answer still has to be sent as text.

use cordon_core::{Decision, ErrorCode};
use cordon_protocol::ServerFrame;
use serde_json::Value;

/// One thing a chat front end shows of a run.
pub enum Step<'a> {
    Thinking {
        agent: &'a str,
        text: &'a str,
    },
    /// Answer text, streamed or whole.
    Text(&'a str),
    /// A tool call with its arguments (about to run, or waiting for approval).
    ToolInput {
        call_id: &'a str,
        tool: &'a str,
        arguments: &'a Value,
    },
    ToolOutput {
        call_id: &'a str,
        result: &'a Value,
        is_error: bool,
    },
    /// A person answered a call that waited (or it expired).
    Answered {
        call_id: &'a str,
        decision: Decision,
        reason: Option<&'a str>,
    },
    /// The run's answer; every `Text` of it came before.
    Done {
        answer: &'a str,
    },
    Failed {
        code: ErrorCode,
        message: &'a str,
    },
}

/// Turns one run's frames into steps, in order. The answer is streamed by
/// a streaming model (its last text after the last tool call); otherwise it
/// is sent whole as text before `Done`.
#[derive(Default)]
pub struct Steps {
    streamed_answer: bool,
}

impl Steps {
    /// The steps of one frame (none for frames a chat does not show).
    pub fn of<'a>(&mut self, frame: &'a ServerFrame) -> Vec<Step<'a>> {
        let step = match frame {
            ServerFrame::AgentThinking { agent, text, .. } => Step::Thinking { agent, text },
            ServerFrame::AgentDelta { text, .. } => {
                self.streamed_answer = true;
                Step::Text(text)
            }
            ServerFrame::ToolExecuting {
                call_id,
                tool,
                arguments,
                ..
            }
            | ServerFrame::ApprovalRequired {
                call_id,
                tool,
                arguments,
                ..
            } => {
                self.streamed_answer = false;
                Step::ToolInput {
                    call_id,
                    tool,
                    arguments,
                }
            }
            ServerFrame::ToolCompleted {
                call_id,
                result,
                is_error,
                ..
            } => {
                self.streamed_answer = false;
                Step::ToolOutput {
                    call_id,
                    result,
                    is_error: *is_error,
                }
            }
            ServerFrame::ApprovalResolved {
                call_id,
                decision,
                reason,
                ..
            } => Step::Answered {
                call_id,
                decision: *decision,
                reason: reason.as_deref(),
            },
            ServerFrame::AgentCompleted { answer, .. } => {
                let done = Step::Done { answer };
                return match self.streamed_answer || answer.is_empty() {
                    true => vec![done],
                    false => vec![Step::Text(answer), done],
                };
            }
            ServerFrame::AgentError { code, message, .. } => Step::Failed {
                code: *code,
                message,
            },
            _ => return Vec::new(),
        };
        vec![step]
    }
}
