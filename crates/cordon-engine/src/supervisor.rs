//! The supervisor: runs the registry's pipeline for one message, each agent in a child context under a timeout.

use cordon_core::{ErrorCode, RunId, UserExecutionContext, UserStore};

use crate::config::EngineConfig;
use crate::factory::EngineDeps;
use crate::log::RunEvents;
use crate::registry::{AgentContext, AgentInput, RunFailure};
use crate::usage::MeteredLlm;

/// The name run-level events (`agent_started`, `agent_completed`, `agent_error`) carry.
pub const SUPERVISOR: &str = "supervisor";

/// Runs every agent of the pipeline in order and returns the last one's conclusion.
pub async fn run_pipeline(
    deps: &EngineDeps,
    store: &UserStore,
    events: &RunEvents,
    config: &EngineConfig,
    ctx: &UserExecutionContext,
    message: &str,
) -> Result<String, RunFailure> {
    let mut input = AgentInput {
        message: message.to_owned(),
        notes: Vec::new(),
    };
    let llm = MeteredLlm::new(deps.llm.clone(), store.clone(), ctx.root_run_id().clone());
    let mut conclusion = String::new();
    for agent in deps.registry.pipeline() {
        let child = ctx
            .child(RunId::generate())
            .map_err(|error| RunFailure::new(ErrorCode::Internal, error.to_string()))?;
        let cx = AgentContext {
            ctx: &child,
            llm: &llm,
            tools: &deps.tools,
            store,
            events,
            max_steps: config.max_steps,
        };
        conclusion = tokio::time::timeout(config.agent_timeout, agent.run(&cx, &input))
            .await
            .map_err(|_| {
                RunFailure::new(
                    ErrorCode::Timeout,
                    format!(
                        "agent `{}` did not finish within {} ms",
                        agent.name(),
                        config.agent_timeout.as_millis()
                    ),
                )
            })??;
        input.notes.push(conclusion.clone());
    }
    Ok(conclusion)
}
