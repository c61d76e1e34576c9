//! cordon-engine: runs agent pipelines, one isolated engine per user.
//!
//! [`ExecutionEngineFactory`] is the only way to get a [`UserExecutionEngine`]:
//! it injects the agent registry, the LLM provider, the tool dispatcher, the
//! store and the user's own event sink, and enforces the per-user and global
//! run limits. An engine owns its user's run history, stats, in-flight runs
//! and event sequence; it holds no reference to any other user's state.
//!
//! A message goes: [`RunService::submit_message`] (validation, the thread) →
//! the user's engine (admission, the thread's double-texting lane) →
//! [`supervisor`] → the registry's pipeline of [`agents`] → the LLM and the
//! [`ToolDispatcher`], with every step appended to the user's
//! [`UserEventLog`], which the store publishes to the user's sink once
//! committed. [`end_abandoned_runs`] ends, at start-up, the runs a crash left.
//! A run whose model calls a tool that needs approval pauses (its checkpoint
//! stored, no task kept) until [`RunService::answer_approval`] has an answer
//! for every such call, then goes on from the checkpoint in a new task.

pub mod agents;
mod budget;
pub mod config;
pub mod dispatcher;
pub mod engine;
pub mod factory;
pub mod log;
pub mod placement;
pub mod rate;
pub mod recovery;
pub mod registry;
pub mod service;
mod stop;
pub mod supervisor;
pub mod tools;
pub mod trace;
mod usage;

pub use config::EngineConfig;
pub use dispatcher::ToolDispatcher;
pub use engine::{
    Accepted, ApprovalAnswer, ApprovalError, CancelOutcome, EngineStats, Resolved, RunRequest,
    RunSummary, SubmitError, UserExecutionEngine, WaitingCall, waiting_calls,
};
pub use factory::{
    EngineDeps, ExecutionEngineFactory, FactoryCounts, FactoryError, Located, StartError,
};
pub use log::{RunEvents, UserEventLog};
pub use placement::{Claim, ForwardError, Placement, Solo};
pub use recovery::{end_abandoned_runs, end_runs_left_by_previous_owner};
pub use registry::{Agent, AgentContext, AgentRegistry, RunFailure};
pub use service::{NewMessage, RunService, ServiceError};
