//! Analytics: what the engine reports of each finished run and each model call to a sink outside the serving database (cordon-analytics writes them to ClickHouse).

use time::OffsetDateTime;

use crate::ids::{RunId, ThreadId, UserId};
use crate::model::RunStatus;

/// One run that ended, whatever its status.
#[derive(Debug, Clone, PartialEq)]
pub struct FinishedRun {
    pub user_id: UserId,
    pub thread_id: ThreadId,
    pub run_id: RunId,
    /// The agent run-level events name (`supervisor`).
    pub agent: String,
    /// The model the server calls.
    pub model: String,
    pub status: RunStatus,
    /// `agent_error.code` when it did not complete.
    pub error_code: Option<String>,
    /// When its last execution started (a run resumed after an approval: the resume).
    pub started_at: OffsetDateTime,
    pub finished_at: OffsetDateTime,
}

/// One model call, answered or not.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelCall {
    pub user_id: UserId,
    pub thread_id: ThreadId,
    pub run_id: RunId,
    /// The pipeline agent that called (`assistant`).
    pub agent: String,
    pub model: String,
    /// The run-ending code of its failure (`llm_rate_limited`, ...); `None` when it answered.
    pub error_code: Option<String>,
    pub started_at: OffsetDateTime,
    pub duration_ms: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
}

/// Takes analytics rows without ever blocking or failing a run: an
/// implementation buffers them (boundedly) and delivers them on its own.
pub trait AnalyticsSink: Send + Sync {
    fn run_finished(&self, run: FinishedRun);
    fn model_called(&self, call: ModelCall);
}
