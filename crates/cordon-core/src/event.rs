//! Run events: what an engine reports while it works, in the order the user sees it.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use crate::ids::{RunId, ThreadId};

/// Stable machine-readable reasons a run can end badly. The strings are part
/// of the public protocol (`agent_error.code`), so never rename one.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumIter,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ErrorCode {
    /// The user already has the maximum number of runs in flight.
    UserConcurrencyLimit,
    /// The whole server is at its run limit.
    GlobalConcurrencyLimit,
    /// An agent ran past its execution timeout.
    Timeout,
    /// The user cancelled the run.
    Cancelled,
    /// The server is shutting down and takes no new runs.
    ShuttingDown,
    /// The model asked for more tool steps than allowed.
    StepLimit,
    /// No longer produced (a malformed reply is `LlmBadResponse`); kept so
    /// logs stored by older versions still read.
    LlmError,
    LlmRateLimited,
    LlmUnavailable,
    LlmBadRequest,
    LlmAuth,
    /// The provider's reply was malformed, cut short, oversized, or redirected elsewhere.
    LlmBadResponse,
    /// The server restarted (or crashed) while the run was in flight.
    Interrupted,
    /// The thread already has a run in progress and the message asked for `reject`.
    ThreadBusy,
    /// Storage cannot keep up; the run was refused before anything was stored.
    Overloaded,
    /// A write of the run failed; what the run did after it was not stored.
    StorageFailed,
    /// Several instances: the one that runs the user's runs could not be
    /// reached; nothing of the message was stored.
    OwnerUnavailable,
    /// A tool call waited for a person's approval past its expiry.
    ApprovalExpired,
    /// The user's model budget (tokens or spend, per day or month) is used
    /// up; no model call was made. The message names the limit and when it resets.
    BudgetExceeded,
    /// Anything else; details are in the server log, not the message.
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// How a person (or the clock) answered a tool call that needed approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Decision {
    Approved,
    Rejected,
    /// Nobody answered within the approval's lifetime.
    Expired,
}

/// What happened, without the envelope (`seq`, `ts`, ids) every event carries.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEventKind {
    /// A message without a thread created one; the first event of that run.
    ThreadCreated { title: String },
    /// The run waits behind others on its thread; `position` 1 is next.
    RunQueued { position: u32 },
    AgentStarted {
        agent: String,
        /// Echoed from the message that started the run, so a client can match it.
        client_request_id: Option<String>,
    },
    AgentThinking {
        agent: String,
        step: u32,
        text: String,
    },
    /// Answer text streamed by the model, in order; batched over a few milliseconds.
    AgentDelta { agent: String, text: String },
    ToolExecuting {
        agent: String,
        call_id: String,
        tool: String,
        arguments: Value,
    },
    ToolCompleted {
        agent: String,
        call_id: String,
        tool: String,
        result: Value,
        is_error: bool,
        duration_ms: u64,
    },
    /// The run paused: `tool` may run only once a person approves the call.
    ApprovalRequired {
        agent: String,
        call_id: String,
        tool: String,
        arguments: Value,
        expires_at: OffsetDateTime,
    },
    /// A person answered (or the wait expired); the run goes on once every
    /// call it waits for is answered.
    ApprovalResolved {
        agent: String,
        call_id: String,
        tool: String,
        decision: Decision,
        reason: Option<String>,
    },
    AgentCompleted {
        agent: String,
        answer: String,
        duration_ms: u64,
    },
    AgentError {
        agent: String,
        code: ErrorCode,
        message: String,
    },
}

impl RunEventKind {
    /// The wire name of this event (`type` in the protocol).
    pub fn type_name(&self) -> &'static str {
        match self {
            RunEventKind::ThreadCreated { .. } => "thread_created",
            RunEventKind::RunQueued { .. } => "run_queued",
            RunEventKind::AgentStarted { .. } => "agent_started",
            RunEventKind::AgentThinking { .. } => "agent_thinking",
            RunEventKind::AgentDelta { .. } => "agent_delta",
            RunEventKind::ToolExecuting { .. } => "tool_executing",
            RunEventKind::ToolCompleted { .. } => "tool_completed",
            RunEventKind::ApprovalRequired { .. } => "approval_required",
            RunEventKind::ApprovalResolved { .. } => "approval_resolved",
            RunEventKind::AgentCompleted { .. } => "agent_completed",
            RunEventKind::AgentError { .. } => "agent_error",
        }
    }

    /// Whether this event ends its run (nothing of the run follows it).
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            RunEventKind::AgentCompleted { .. } | RunEventKind::AgentError { .. }
        )
    }
}

/// One event of one run, stamped with the user's next `seq`.
#[derive(Debug, Clone, PartialEq)]
pub struct RunEvent {
    /// Per-user, strictly increasing across all of that user's runs.
    pub seq: u64,
    pub ts: OffsetDateTime,
    pub run_id: RunId,
    pub thread_id: ThreadId,
    pub kind: RunEventKind,
}
