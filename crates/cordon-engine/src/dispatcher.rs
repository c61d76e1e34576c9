//! `ToolDispatcher`: looks up a tool by name, runs it in the caller's context and reports it as events.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use cordon_core::{RunEventKind, Tool, ToolCall, ToolContext, ToolError, ToolSpec};
use serde_json::{Value, json};

use crate::log::RunEvents;

/// The registered tools. Immutable after start-up.
#[derive(Default)]
pub struct ToolDispatcher {
    tools: BTreeMap<&'static str, Arc<dyn Tool>>,
}

/// What a tool call produced, ready to hand back to the model.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolOutcome {
    pub result: Value,
    pub is_error: bool,
}

impl ToolDispatcher {
    pub fn new(tools: Vec<Arc<dyn Tool>>) -> Self {
        Self {
            tools: tools.into_iter().map(|tool| (tool.name(), tool)).collect(),
        }
    }

    /// The built-in tools: `calculator` and `search_history`.
    pub fn builtin() -> Self {
        Self::new(vec![
            Arc::new(crate::tools::Calculator),
            Arc::new(crate::tools::SearchHistory),
        ])
    }

    /// Descriptions of every tool, for the model.
    pub fn specs(&self) -> Vec<ToolSpec> {
        self.tools
            .values()
            .map(|tool| ToolSpec {
                name: tool.name().to_owned(),
                description: tool.description().to_owned(),
                parameters: tool.parameters_schema(),
            })
            .collect()
    }

    /// Runs one call, emitting `tool_executing` before and `tool_completed` after.
    /// A failing or unknown tool is reported to the model as an error result, not a run failure.
    pub async fn dispatch(
        &self,
        cx: &ToolContext,
        events: &RunEvents,
        agent: &str,
        call: &ToolCall,
    ) -> ToolOutcome {
        events.room().await;
        events.emit(
            &cx.ctx,
            RunEventKind::ToolExecuting {
                agent: agent.to_owned(),
                call_id: call.id.clone(),
                tool: call.name.clone(),
                arguments: call.arguments.clone(),
            },
        );
        let started = Instant::now();
        let outcome = match self.run(cx, call).await {
            Ok(result) => ToolOutcome {
                result,
                is_error: false,
            },
            Err(error) => ToolOutcome {
                result: json!({ "error": error.to_string() }),
                is_error: true,
            },
        };
        events.emit(
            &cx.ctx,
            RunEventKind::ToolCompleted {
                agent: agent.to_owned(),
                call_id: call.id.clone(),
                tool: call.name.clone(),
                result: outcome.result.clone(),
                is_error: outcome.is_error,
                duration_ms: elapsed_ms(started),
            },
        );
        outcome
    }

    async fn run(&self, cx: &ToolContext, call: &ToolCall) -> Result<Value, ToolError> {
        let tool = self
            .tools
            .get(call.name.as_str())
            .ok_or_else(|| ToolError::Unknown(call.name.clone()))?;
        tool.call(cx, call.arguments.clone()).await
    }
}

/// Milliseconds since `started`, saturating.
pub fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}
