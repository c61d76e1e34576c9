//! cordon-engine: runs agent pipelines, one isolated engine per user.
//!
//! [`ExecutionEngineFactory`] is the only way to get a [`UserExecutionEngine`]:
//! it injects the agent registry, the LLM provider, the tool dispatcher, the
//! store and the user's own event sink, and enforces the per-user and global
//! run limits. An engine owns its user's run history, stats, in-flight runs
//! and event sequence; it holds no reference to any other user's state.
//!
//! A run goes: engine → [`supervisor`] → the registry's pipeline of
//! [`agents`] → the LLM and the [`ToolDispatcher`], with every step reported
//! through the user's [`UserEventEmitter`].

pub mod agents;
pub mod config;
pub mod dispatcher;
pub mod emitter;
pub mod engine;
pub mod factory;
pub mod registry;
pub mod supervisor;
pub mod tools;
mod usage;

pub use config::EngineConfig;
pub use dispatcher::ToolDispatcher;
pub use emitter::UserEventEmitter;
pub use engine::{EngineStats, RunHandle, RunSummary, SubmitError, UserExecutionEngine};
pub use factory::{EngineDeps, ExecutionEngineFactory, FactoryCounts, FactoryError, StartError};
pub use registry::{Agent, AgentContext, AgentRegistry, RunFailure};
