//! Domain records: users, threads, messages and runs as the store keeps them.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::event::ErrorCode;
use crate::ids::{MessageId, RunId, ThreadId, UserId};

/// A registered account; `password_hash` is an argon2 PHC string, never the
/// password, and is left out of `Debug`.
#[derive(Clone)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub password_hash: String,
    pub created_at: OffsetDateTime,
    /// Tokens issued in an older generation are no longer accepted.
    pub token_generation: u32,
    /// May use the admin routes (`cordon admin grant`).
    pub admin: bool,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("password_hash", &"<redacted>")
            .field("created_at", &self.created_at)
            .field("token_generation", &self.token_generation)
            .field("admin", &self.admin)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thread {
    pub id: ThreadId,
    pub user_id: UserId,
    pub title: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// Who wrote a message. The strings (serde and `as_str`, both from the
/// variant names) are stored and sent on the wire.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::EnumIter,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Role {
    User,
    Assistant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub fn parse(value: &str) -> Option<Self> {
        value.parse().ok()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: MessageId,
    pub thread_id: ThreadId,
    pub role: Role,
    pub content: String,
    pub run_id: Option<RunId>,
    pub created_at: OffsetDateTime,
}

/// Where a run is in its life. Terminal states never change again.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr, strum::EnumIter,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum RunStatus {
    /// Accepted, waiting for the run before it on the same thread.
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
    TimedOut,
    Rejected,
    /// The server stopped (crash, kill, restart) while the run was in flight.
    Interrupted,
    /// Paused until a person approves or rejects a tool call; no task runs it.
    WaitingApproval,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Whether the run is over (its status never changes again).
    pub fn is_terminal(self) -> bool {
        !matches!(
            self,
            RunStatus::Queued | RunStatus::Running | RunStatus::WaitingApproval
        )
    }

    /// The status a run ends in when it fails with `code`.
    pub fn for_error(code: ErrorCode) -> Self {
        match code {
            ErrorCode::Timeout => RunStatus::TimedOut,
            ErrorCode::Cancelled => RunStatus::Cancelled,
            ErrorCode::Interrupted => RunStatus::Interrupted,
            ErrorCode::UserConcurrencyLimit
            | ErrorCode::GlobalConcurrencyLimit
            | ErrorCode::ThreadBusy
            | ErrorCode::Overloaded
            | ErrorCode::OwnerUnavailable
            | ErrorCode::ShuttingDown => RunStatus::Rejected,
            _ => RunStatus::Failed,
        }
    }
}

/// One run as stored: status, timings and the error that ended it, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    pub id: RunId,
    pub user_id: UserId,
    pub thread_id: ThreadId,
    pub agent: String,
    pub status: RunStatus,
    pub created_at: OffsetDateTime,
    pub finished_at: Option<OffsetDateTime>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
}

impl std::str::FromStr for RunStatus {
    type Err = UnknownStatus;
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        use strum::IntoEnumIterator;
        Self::iter()
            .find(|status| status.as_str() == value)
            .ok_or(UnknownStatus)
    }
}

/// A status string that is not one of [`RunStatus`]'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown run status")]
pub struct UnknownStatus;

/// What a message to a thread that already has a run in progress does
/// ("double texting"). The strings are part of the protocol.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumIter,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Multitask {
    /// Refuse it with `thread_busy`; nothing of it is stored.
    #[default]
    Reject,
    /// Run it after the runs before it on the thread, in arrival order.
    Enqueue,
    /// Stop the running run (it ends `interrupted`, partial output kept), then run this one.
    Interrupt,
}
