//! The supervisor: runs the registry's pipeline for one message, each agent in a child context under a timeout, from the start or from where a pause left it.

use std::collections::HashMap;

use cordon_core::{ErrorCode, RunId, ToolCall, UserExecutionContext, UserStore};
use serde_json::Value;

use crate::config::EngineConfig;
use crate::factory::EngineDeps;
use crate::log::RunEvents;
use crate::registry::{AgentContext, AgentInput, CallDecision, Conclusion, RunFailure};
use crate::usage::MeteredLlm;

/// The name run-level events (`agent_started`, `agent_completed`, `agent_error`) carry.
pub const SUPERVISOR: &str = "supervisor";

/// Where the pipeline starts.
pub enum Start {
    /// A new message: every agent in order.
    Message(String),
    /// A paused run whose calls were all answered: the agent that paused
    /// goes on, then the agents after it.
    Resume {
        agent: String,
        input: AgentInput,
        state: Value,
        answers: HashMap<String, CallDecision>,
    },
}

/// Where the pipeline stopped.
pub enum Finish {
    Answer(String),
    /// `agent` waits for a person to answer `calls`.
    Paused {
        agent: String,
        input: AgentInput,
        calls: Vec<ToolCall>,
        state: Value,
    },
}

/// Runs the pipeline's agents in order and returns the last one's
/// conclusion, or the pause of the agent that paused.
pub async fn run_pipeline(
    deps: &EngineDeps,
    store: &UserStore,
    events: &RunEvents,
    config: &EngineConfig,
    ctx: &UserExecutionContext,
    start: Start,
) -> Result<Finish, RunFailure> {
    let (mut input, mut resume, skip) = starting_point(deps, start)?;
    let llm = MeteredLlm::new(
        deps.llm.clone(),
        store.clone(),
        ctx.root_run_id().clone(),
        ctx.thread_id().clone(),
    );
    let mut conclusion = String::new();
    for agent in deps.registry.pipeline().iter().skip(skip) {
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
            approval_tools: &config.approval_tools,
        };
        let work = async {
            match resume.take() {
                Some((state, answers)) => agent.resume(&cx, &input, state, &answers).await,
                None => agent.run(&cx, &input).await,
            }
        };
        let concluded = tokio::time::timeout(config.agent_timeout, work)
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
        conclusion = match concluded {
            Conclusion::Done(conclusion) => conclusion,
            Conclusion::Paused { calls, state } => {
                return Ok(Finish::Paused {
                    agent: agent.name().to_owned(),
                    input,
                    calls,
                    state,
                });
            }
        };
        input.notes.push(conclusion.clone());
    }
    Ok(Finish::Answer(conclusion))
}

/// What a pipeline starts from: the first agent's input, the paused agent's
/// state and the answers when it goes on from a pause, and how many agents
/// of the pipeline are already done.
type StartingPoint = (
    AgentInput,
    Option<(Value, HashMap<String, CallDecision>)>,
    usize,
);

fn starting_point(deps: &EngineDeps, start: Start) -> Result<StartingPoint, RunFailure> {
    match start {
        Start::Message(message) => {
            let input = AgentInput {
                message,
                notes: Vec::new(),
            };
            Ok((input, None, 0))
        }
        Start::Resume {
            agent,
            input,
            state,
            answers,
        } => {
            let position = deps
                .registry
                .pipeline()
                .iter()
                .position(|candidate| candidate.name() == agent)
                .ok_or_else(|| {
                    RunFailure::new(
                        ErrorCode::Internal,
                        format!("the paused agent `{agent}` is not in the pipeline"),
                    )
                })?;
            Ok((input, Some((state, answers)), position))
        }
    }
}
