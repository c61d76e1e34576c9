//! Frames of the `/ws` protocol: JSON text frames tagged by `type`.

use cordon_core::{Decision, ErrorCode, Multitask, RunEvent, RunEventKind};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

/// Largest text frame a client may send, in bytes.
pub const MAX_CLIENT_FRAME_BYTES: usize = 64 * 1024;
/// Largest `user_message.content`, in bytes.
pub use cordon_core::MAX_MESSAGE_BYTES;

/// What a client may send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// Ask the agent something. Without `thread_id` a new thread is created.
    UserMessage {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        thread_id: Option<String>,
        content: String,
        /// Echoed in the run's `agent_started` (and in a refusal).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_request_id: Option<String>,
        /// What to do when the thread already has a run in progress (default `reject`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        multitask: Option<Multitask>,
    },
    /// Replay every event of yours with `seq > after_seq` from the log, then continue live.
    Resume {
        after_seq: u64,
    },
    /// Stop one of your runs.
    Cancel {
        run_id: String,
    },
    /// Let a tool call that waits for approval run (once).
    Approve {
        call_id: String,
        /// Optional; needed only when several of your runs wait on one `call_id`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        run_id: Option<String>,
    },
    /// Refuse a tool call that waits for approval; the model is told, with `reason`.
    Reject {
        call_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        run_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    Ping {},
    Pong {},
}

/// The envelope every run event carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunEnvelope {
    pub run_id: String,
    pub thread_id: String,
    /// Per-user, strictly increasing across all of that user's runs.
    pub seq: u64,
    #[serde(with = "crate::timestamp")]
    pub ts: OffsetDateTime,
}

/// What the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    ConnectionEstablished {
        connection_id: String,
        user_id: String,
        heartbeat_interval_ms: u64,
        idle_timeout_ms: u64,
        #[serde(with = "crate::timestamp")]
        ts: OffsetDateTime,
    },
    /// The first event of a run whose message started a new thread.
    ThreadCreated {
        #[serde(flatten)]
        envelope: RunEnvelope,
        title: String,
    },
    /// The run waits behind others on its thread; `position` 1 runs next.
    RunQueued {
        #[serde(flatten)]
        envelope: RunEnvelope,
        position: u32,
    },
    AgentStarted {
        #[serde(flatten)]
        envelope: RunEnvelope,
        agent: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_request_id: Option<String>,
    },
    AgentThinking {
        #[serde(flatten)]
        envelope: RunEnvelope,
        agent: String,
        step: u32,
        text: String,
    },
    /// Answer text as the model writes it; concatenated in `seq` order they form the text.
    AgentDelta {
        #[serde(flatten)]
        envelope: RunEnvelope,
        agent: String,
        text: String,
    },
    ToolExecuting {
        #[serde(flatten)]
        envelope: RunEnvelope,
        agent: String,
        call_id: String,
        tool: String,
        arguments: Value,
    },
    ToolCompleted {
        #[serde(flatten)]
        envelope: RunEnvelope,
        agent: String,
        call_id: String,
        tool: String,
        result: Value,
        is_error: bool,
        duration_ms: u64,
    },
    /// The run paused: `tool` runs only once you `approve` the call.
    ApprovalRequired {
        #[serde(flatten)]
        envelope: RunEnvelope,
        agent: String,
        call_id: String,
        tool: String,
        arguments: Value,
        /// When the call expires unanswered (the run then ends `approval_expired`).
        #[serde(with = "crate::timestamp")]
        expires_at: OffsetDateTime,
    },
    /// A call that waited was answered (or expired).
    ApprovalResolved {
        #[serde(flatten)]
        envelope: RunEnvelope,
        agent: String,
        call_id: String,
        tool: String,
        decision: Decision,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    AgentCompleted {
        #[serde(flatten)]
        envelope: RunEnvelope,
        agent: String,
        answer: String,
        duration_ms: u64,
    },
    AgentError {
        #[serde(flatten)]
        envelope: RunEnvelope,
        agent: String,
        code: ErrorCode,
        message: String,
        /// Set on a refusal (`seq` 0, not in the log) of a message that carried one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_request_id: Option<String>,
    },
    /// A frame the server could not act on; the connection stays open.
    Error {
        code: String,
        message: String,
        /// With `cursor_expired`: the oldest `seq` still in the log.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        oldest_seq: Option<u64>,
        /// With `rate_limited`: how long to wait before sending again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
    Ping {
        #[serde(with = "crate::timestamp")]
        ts: OffsetDateTime,
    },
    Pong {
        #[serde(with = "crate::timestamp")]
        ts: OffsetDateTime,
    },
}

impl ServerFrame {
    /// The `type` tag of this frame.
    pub fn type_name(&self) -> &'static str {
        match self {
            ServerFrame::ConnectionEstablished { .. } => "connection_established",
            ServerFrame::ThreadCreated { .. } => "thread_created",
            ServerFrame::RunQueued { .. } => "run_queued",
            ServerFrame::AgentStarted { .. } => "agent_started",
            ServerFrame::AgentThinking { .. } => "agent_thinking",
            ServerFrame::AgentDelta { .. } => "agent_delta",
            ServerFrame::ToolExecuting { .. } => "tool_executing",
            ServerFrame::ToolCompleted { .. } => "tool_completed",
            ServerFrame::ApprovalRequired { .. } => "approval_required",
            ServerFrame::ApprovalResolved { .. } => "approval_resolved",
            ServerFrame::AgentCompleted { .. } => "agent_completed",
            ServerFrame::AgentError { .. } => "agent_error",
            ServerFrame::Error { .. } => "error",
            ServerFrame::Ping { .. } => "ping",
            ServerFrame::Pong { .. } => "pong",
        }
    }

    /// The run envelope, for run events.
    pub fn envelope(&self) -> Option<&RunEnvelope> {
        match self {
            ServerFrame::ThreadCreated { envelope, .. }
            | ServerFrame::RunQueued { envelope, .. }
            | ServerFrame::AgentStarted { envelope, .. }
            | ServerFrame::AgentThinking { envelope, .. }
            | ServerFrame::AgentDelta { envelope, .. }
            | ServerFrame::ToolExecuting { envelope, .. }
            | ServerFrame::ToolCompleted { envelope, .. }
            | ServerFrame::ApprovalRequired { envelope, .. }
            | ServerFrame::ApprovalResolved { envelope, .. }
            | ServerFrame::AgentCompleted { envelope, .. }
            | ServerFrame::AgentError { envelope, .. } => Some(envelope),
            _ => None,
        }
    }

    /// An `error` frame with a stable code.
    pub fn error(code: &str, message: impl Into<String>) -> Self {
        ServerFrame::Error {
            code: code.to_owned(),
            message: message.into(),
            oldest_seq: None,
            retry_after_ms: None,
        }
    }

    /// The serialized frame; `None` only if serde fails, which the types rule out.
    pub fn to_json(&self) -> Option<String> {
        serde_json::to_string(self).ok()
    }
}

impl From<&RunEvent> for ServerFrame {
    fn from(event: &RunEvent) -> Self {
        let envelope = RunEnvelope {
            run_id: event.run_id.to_string(),
            thread_id: event.thread_id.to_string(),
            seq: event.seq,
            ts: event.ts,
        };
        match event.kind.clone() {
            RunEventKind::ThreadCreated { title } => ServerFrame::ThreadCreated { envelope, title },
            RunEventKind::RunQueued { position } => ServerFrame::RunQueued { envelope, position },
            RunEventKind::AgentStarted {
                agent,
                client_request_id,
            } => ServerFrame::AgentStarted {
                envelope,
                agent,
                client_request_id,
            },
            kind => step_frame(envelope, kind),
        }
    }
}

/// The frame of an event inside a run's pipeline (thinking, text, tools, the end).
fn step_frame(envelope: RunEnvelope, kind: RunEventKind) -> ServerFrame {
    {
        match kind {
            RunEventKind::AgentThinking { agent, step, text } => ServerFrame::AgentThinking {
                envelope,
                agent,
                step,
                text,
            },
            RunEventKind::AgentDelta { agent, text } => ServerFrame::AgentDelta {
                envelope,
                agent,
                text,
            },
            RunEventKind::ToolExecuting {
                agent,
                call_id,
                tool,
                arguments,
            } => ServerFrame::ToolExecuting {
                envelope,
                agent,
                call_id,
                tool,
                arguments,
            },
            RunEventKind::ToolCompleted {
                agent,
                call_id,
                tool,
                result,
                is_error,
                duration_ms,
            } => ServerFrame::ToolCompleted {
                envelope,
                agent,
                call_id,
                tool,
                result,
                is_error,
                duration_ms,
            },
            kind @ (RunEventKind::ApprovalRequired { .. }
            | RunEventKind::ApprovalResolved { .. }) => approval_frame(envelope, kind),
            RunEventKind::AgentCompleted {
                agent,
                answer,
                duration_ms,
            } => ServerFrame::AgentCompleted {
                envelope,
                agent,
                answer,
                duration_ms,
            },
            RunEventKind::AgentError {
                agent,
                code,
                message,
            } => ServerFrame::AgentError {
                envelope,
                agent,
                code,
                message,
                client_request_id: None,
            },
            RunEventKind::ThreadCreated { .. }
            | RunEventKind::RunQueued { .. }
            | RunEventKind::AgentStarted { .. } => unreachable_lifecycle(envelope),
        }
    }
}

/// The frames of a call that waits for approval, and of its answer.
fn approval_frame(envelope: RunEnvelope, kind: RunEventKind) -> ServerFrame {
    match kind {
        RunEventKind::ApprovalRequired {
            agent,
            call_id,
            tool,
            arguments,
            expires_at,
        } => ServerFrame::ApprovalRequired {
            envelope,
            agent,
            call_id,
            tool,
            arguments,
            expires_at,
        },
        RunEventKind::ApprovalResolved {
            agent,
            call_id,
            tool,
            decision,
            reason,
        } => ServerFrame::ApprovalResolved {
            envelope,
            agent,
            call_id,
            tool,
            decision,
            reason,
        },
        other => step_frame(envelope, other),
    }
}

/// Lifecycle events are mapped by `From<&RunEvent>` before `step_frame`;
/// this arm exists only to keep the match exhaustive.
fn unreachable_lifecycle(envelope: RunEnvelope) -> ServerFrame {
    ServerFrame::AgentStarted {
        envelope,
        agent: String::new(),
        client_request_id: None,
    }
}

/// The protocol's encoding of run events: what the log stores and sockets send.
#[derive(Debug, Clone, Copy, Default)]
pub struct FrameEncoder;

impl cordon_core::EventEncoder for FrameEncoder {
    fn encode(&self, event: &RunEvent) -> std::sync::Arc<str> {
        let json = ServerFrame::from(event).to_json().unwrap_or_default();
        std::sync::Arc::from(json)
    }
}
