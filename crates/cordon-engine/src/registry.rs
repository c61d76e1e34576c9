//! The agent registry: which agents exist and the pipeline a message goes through; immutable after start-up.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use cordon_core::{Decision, ErrorCode, LlmProvider, ToolCall, UserExecutionContext, UserStore};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::dispatcher::ToolDispatcher;
use crate::log::RunEvents;

/// Why a run ended without an answer: a stable code and a message safe to show the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RunFailure {
    pub code: ErrorCode,
    pub message: String,
}

impl RunFailure {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// Everything an agent may use, all scoped to one user's request.
pub struct AgentContext<'a> {
    /// The agent's own (child) context.
    pub ctx: &'a UserExecutionContext,
    pub llm: &'a dyn LlmProvider,
    pub tools: &'a ToolDispatcher,
    /// The store bound to the run's user.
    pub store: &'a UserStore,
    pub events: &'a RunEvents,
    pub max_steps: u32,
    /// Tools a person must approve before each call.
    pub approval_tools: &'a BTreeSet<String>,
}

/// What an agent's work came to.
#[derive(Debug)]
pub enum Conclusion {
    /// Its conclusion; the last agent's is the answer.
    Done(String),
    /// It waits for a person to answer `calls`; `state` is what it needs to go on.
    Paused { calls: Vec<ToolCall>, state: Value },
}

/// A person's answer to one call that needed approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallDecision {
    pub decision: Decision,
    pub reason: Option<String>,
}

/// The input an agent works on: the user's message and what earlier agents of the pipeline concluded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentInput {
    pub message: String,
    pub notes: Vec<String>,
}

/// One stage of the pipeline.
#[async_trait]
pub trait Agent: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// Returns the agent's conclusion; the last agent's conclusion is the answer.
    async fn run(
        &self,
        cx: &AgentContext<'_>,
        input: &AgentInput,
    ) -> Result<Conclusion, RunFailure>;
    /// Goes on from a pause (`state`, as the agent returned it) once every
    /// call it waited for is answered (`answers`, by call id). Only agents
    /// that pause need it.
    async fn resume(
        &self,
        _cx: &AgentContext<'_>,
        _input: &AgentInput,
        _state: Value,
        _answers: &HashMap<String, CallDecision>,
    ) -> Result<Conclusion, RunFailure> {
        Err(RunFailure::new(
            ErrorCode::Internal,
            format!("agent `{}` cannot go on from a pause", self.name()),
        ))
    }
}

/// Why a registry could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("the pipeline is empty")]
    EmptyPipeline,
    #[error("the pipeline names `{0}`, which is not registered")]
    UnknownAgent(String),
    #[error("agent `{0}` is registered twice")]
    Duplicate(&'static str),
}

/// Registered agents and the order they run in. Built once; shared read-only by every engine.
pub struct AgentRegistry {
    agents: HashMap<&'static str, Arc<dyn Agent>>,
    pipeline: Vec<Arc<dyn Agent>>,
}

impl AgentRegistry {
    pub fn new(agents: Vec<Arc<dyn Agent>>, pipeline: &[&str]) -> Result<Self, RegistryError> {
        let mut by_name = HashMap::new();
        for agent in agents {
            if by_name.insert(agent.name(), agent.clone()).is_some() {
                return Err(RegistryError::Duplicate(agent.name()));
            }
        }
        if pipeline.is_empty() {
            return Err(RegistryError::EmptyPipeline);
        }
        let pipeline = pipeline
            .iter()
            .map(|name| {
                by_name
                    .get(name)
                    .cloned()
                    .ok_or_else(|| RegistryError::UnknownAgent((*name).to_owned()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            agents: by_name,
            pipeline,
        })
    }

    /// The built-in pipeline: `triage` then `assistant`.
    pub fn builtin() -> Self {
        let agents: Vec<Arc<dyn Agent>> = vec![
            Arc::new(crate::agents::TriageAgent),
            Arc::new(crate::agents::AssistantAgent),
        ];
        match Self::new(agents, &["triage", "assistant"]) {
            Ok(registry) => registry,
            Err(error) => unreachable!("the built-in registry is consistent: {error}"),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Agent>> {
        self.agents.get(name)
    }

    pub fn pipeline(&self) -> &[Arc<dyn Agent>] {
        &self.pipeline
    }
}
