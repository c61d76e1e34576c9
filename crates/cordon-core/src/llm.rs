//! `LlmProvider`: the one door to a language model, whatever sits behind it.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::event::ErrorCode;

/// A tool as the model sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments object.
    pub parameters: Value,
}

/// A request from the model to run a tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: Value,
}

/// One entry of the conversation sent to the model (serializable: a paused
/// run keeps its conversation in its stored checkpoint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LlmTurn {
    User(String),
    Assistant {
        text: String,
        tool_calls: Vec<ToolCall>,
    },
    ToolResult {
        call_id: String,
        name: String,
        content: Value,
        is_error: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct LlmRequest {
    pub system: String,
    pub turns: Vec<LlmTurn>,
    pub tools: Vec<ToolSpec>,
}

/// Tokens a call consumed, as the provider reported them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// One model step: optional reasoning to show, then either tool calls or a final answer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LlmResponse {
    pub thinking: Option<String>,
    pub text: String,
    pub tool_calls: Vec<ToolCall>,
    pub usage: Usage,
}

/// Why a model call failed. Messages never contain credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LlmError {
    #[error("the model provider is rate limiting requests")]
    RateLimited { retry_after: Option<Duration> },
    #[error("the model provider is unavailable: {0}")]
    Unavailable(String),
    #[error("the model provider rejected the request: {0}")]
    BadRequest(String),
    #[error("the model provider rejected the credentials")]
    Auth,
    #[error("the model provider sent a malformed response: {0}")]
    Malformed(String),
    /// Refused before the call: the user's budget is used up.
    #[error("{0}")]
    BudgetExceeded(String),
}

impl LlmError {
    /// The protocol error code a run ends with when this error ends it.
    pub fn code(&self) -> ErrorCode {
        match self {
            LlmError::RateLimited { .. } => ErrorCode::LlmRateLimited,
            LlmError::Unavailable(_) => ErrorCode::LlmUnavailable,
            LlmError::BadRequest(_) => ErrorCode::LlmBadRequest,
            LlmError::Auth => ErrorCode::LlmAuth,
            LlmError::Malformed(_) => ErrorCode::LlmBadResponse,
            LlmError::BudgetExceeded(_) => ErrorCode::BudgetExceeded,
        }
    }
}

/// Receives streamed output while a call is in flight. Default methods ignore it,
/// so providers that do not stream need not care.
pub trait LlmObserver: Send + Sync {
    fn on_thinking(&self, _text: &str) {}
    fn on_delta(&self, _text: &str) {}
    /// The call's usage as the provider has reported it so far (e.g. the
    /// input tokens at the stream's start), so a call cancelled midway is
    /// still metered.
    fn on_usage(&self, _usage: Usage) {}
}

/// An observer that drops everything.
pub struct IgnoreStream;
impl LlmObserver for IgnoreStream {}

/// A language model. Cancellation is by dropping the returned future, which
/// providers must make safe (it aborts any in-flight HTTP stream).
#[async_trait]
pub trait LlmProvider: Send + Sync + 'static {
    /// Short name for logs and run records, e.g. "offline".
    fn name(&self) -> &str;
    /// The model the provider calls, recorded with each call's usage (e.g. "gpt-4o-mini").
    fn model(&self) -> &str {
        self.name()
    }
    /// What `usage` of this provider's model costs, in US dollars (0 when unpriced).
    fn cost_usd(&self, _usage: Usage) -> f64 {
        0.0
    }
    async fn complete(
        &self,
        request: &LlmRequest,
        observer: &dyn LlmObserver,
    ) -> Result<LlmResponse, LlmError>;
}
