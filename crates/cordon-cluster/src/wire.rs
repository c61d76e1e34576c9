//! What instances say to each other over NATS: subjects, forwarded calls and their answers, and event messages.

use cordon_core::{
    ConnectionId, Decision, ErrorCode, Multitask, RequestId, RunId, StoreError, ThreadId,
    TraceParent, UserExecutionContext, UserId,
};
use cordon_engine::{
    Accepted, ApprovalAnswer, ApprovalError, CancelOutcome, Resolved, RunRequest, SubmitError,
};
use serde::{Deserialize, Serialize};

/// Calls forwarded to one instance (it owns the users they are for).
pub fn calls_subject(instance: &str) -> String {
    format!("cordon.calls.{instance}")
}

/// One user's committed events, published by the instance that owns the user.
pub fn events_subject(user_id: &UserId) -> String {
    format!("cordon.events.{user_id}")
}

/// Sign-outs, heard by every instance.
pub const SIGN_OUTS: &str = "cordon.signouts";

/// A request to the instance that owns the call's user.
#[derive(Debug, Serialize, Deserialize)]
pub enum Call {
    Submit(WireRequest),
    Cancel { user_id: UserId, run_id: RunId },
    Approval { user_id: UserId, answer: WireAnswer },
}

/// An `ApprovalAnswer` as it travels.
#[derive(Debug, Serialize, Deserialize)]
pub struct WireAnswer {
    run_id: Option<RunId>,
    call_id: String,
    approve: bool,
    reason: Option<String>,
}

impl From<&ApprovalAnswer> for WireAnswer {
    fn from(answer: &ApprovalAnswer) -> Self {
        Self {
            run_id: answer.run_id.clone(),
            call_id: answer.call_id.clone(),
            approve: answer.approve,
            reason: answer.reason.clone(),
        }
    }
}

impl From<WireAnswer> for ApprovalAnswer {
    fn from(wire: WireAnswer) -> Self {
        ApprovalAnswer {
            run_id: wire.run_id,
            call_id: wire.call_id,
            approve: wire.approve,
            reason: wire.reason,
        }
    }
}

/// A `RunRequest` as it travels.
#[derive(Debug, Serialize, Deserialize)]
pub struct WireRequest {
    user_id: UserId,
    thread_id: ThreadId,
    run_id: RunId,
    request_id: RequestId,
    connection_id: Option<ConnectionId>,
    content: String,
    new_thread_title: Option<String>,
    client_request_id: Option<String>,
    multitask: Multitask,
    /// A forwarded run's span keeps its caller's parent.
    #[serde(default)]
    trace_parent: Option<TraceParent>,
}

impl From<RunRequest> for WireRequest {
    fn from(request: RunRequest) -> Self {
        let ctx = &request.ctx;
        Self {
            user_id: ctx.user_id().clone(),
            thread_id: ctx.thread_id().clone(),
            run_id: ctx.run_id().clone(),
            request_id: ctx.request_id().clone(),
            connection_id: ctx.connection_id().cloned(),
            content: request.content,
            new_thread_title: request.new_thread_title,
            client_request_id: request.client_request_id,
            multitask: request.multitask,
            trace_parent: ctx.trace_parent().cloned(),
        }
    }
}

impl From<WireRequest> for RunRequest {
    fn from(wire: WireRequest) -> Self {
        RunRequest {
            ctx: UserExecutionContext::new(
                wire.user_id,
                wire.thread_id,
                wire.run_id,
                wire.request_id,
                wire.connection_id,
            )
            .with_trace_parent(wire.trace_parent),
            content: wire.content,
            new_thread_title: wire.new_thread_title,
            client_request_id: wire.client_request_id,
            multitask: wire.multitask,
        }
    }
}

/// The owner's answer to a `Call`.
#[derive(Debug, Serialize, Deserialize)]
pub enum Answer {
    Accepted {
        run_id: RunId,
        thread_id: ThreadId,
        seq: u64,
        queued: Option<u32>,
    },
    Rejected(ErrorCode),
    RateLimited {
        retry_after_ms: u64,
    },
    Storage(String),
    Cancel(WireCancel),
    Approval(WireApproval),
    /// The instance does not own the user (any more).
    Moved,
}

/// The owner's decision on an approval.
#[derive(Debug, Serialize, Deserialize)]
pub enum WireApproval {
    Resolved {
        run_id: RunId,
        call_id: String,
        decision: Decision,
        resumed: bool,
    },
    NotFound,
    AlreadyResolved,
    Expired,
    Ambiguous,
    Storage(String),
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub enum WireCancel {
    Stopping,
    Dequeued,
    NotInProgress,
}

impl Answer {
    pub fn of_submit(result: Result<Accepted, SubmitError>) -> Self {
        match result {
            Ok(accepted) => Answer::Accepted {
                run_id: accepted.run_id,
                thread_id: accepted.thread_id,
                seq: accepted.seq,
                queued: accepted.queued,
            },
            Err(SubmitError::Rejected(code)) => Answer::Rejected(code),
            Err(SubmitError::RateLimited(wait)) => Answer::RateLimited {
                retry_after_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            },
            Err(SubmitError::OwnerUnavailable) => Answer::Rejected(ErrorCode::OwnerUnavailable),
            Err(SubmitError::Retired) => Answer::Moved,
            Err(other) => Answer::Storage(other.to_string()),
        }
    }

    pub fn of_cancel(outcome: CancelOutcome) -> Self {
        Answer::Cancel(match outcome {
            CancelOutcome::Stopping => WireCancel::Stopping,
            CancelOutcome::Dequeued => WireCancel::Dequeued,
            CancelOutcome::NotInProgress => WireCancel::NotInProgress,
        })
    }

    pub fn of_approval(result: Result<Resolved, ApprovalError>) -> Self {
        Answer::Approval(match result {
            Ok(resolved) => WireApproval::Resolved {
                run_id: resolved.run_id,
                call_id: resolved.call_id,
                decision: resolved.decision,
                resumed: resolved.resumed,
            },
            Err(ApprovalError::NotFound) => WireApproval::NotFound,
            Err(ApprovalError::AlreadyResolved) => WireApproval::AlreadyResolved,
            Err(ApprovalError::Expired) => WireApproval::Expired,
            Err(ApprovalError::Ambiguous) => WireApproval::Ambiguous,
            Err(ApprovalError::Storage(error)) => WireApproval::Storage(error.to_string()),
        })
    }

    pub fn into_approval(self) -> Option<Result<Resolved, ApprovalError>> {
        let Answer::Approval(approval) = self else {
            return None;
        };
        Some(match approval {
            WireApproval::Resolved {
                run_id,
                call_id,
                decision,
                resumed,
            } => Ok(Resolved {
                run_id,
                call_id,
                decision,
                resumed,
            }),
            WireApproval::NotFound => Err(ApprovalError::NotFound),
            WireApproval::AlreadyResolved => Err(ApprovalError::AlreadyResolved),
            WireApproval::Expired => Err(ApprovalError::Expired),
            WireApproval::Ambiguous => Err(ApprovalError::Ambiguous),
            WireApproval::Storage(error) => Err(ApprovalError::Storage(StoreError::Backend(error))),
        })
    }

    /// The submit decision this answer carries; `None` for `Moved` or a mismatched answer.
    pub fn into_submit(self) -> Option<Result<Accepted, SubmitError>> {
        Some(match self {
            Answer::Accepted {
                run_id,
                thread_id,
                seq,
                queued,
            } => Ok(Accepted {
                run_id,
                thread_id,
                seq,
                queued,
            }),
            Answer::Rejected(code) => Err(SubmitError::Rejected(code)),
            Answer::RateLimited { retry_after_ms } => Err(SubmitError::RateLimited(
                std::time::Duration::from_millis(retry_after_ms),
            )),
            Answer::Storage(error) => Err(SubmitError::Storage(StoreError::Backend(error))),
            Answer::Cancel(_) | Answer::Approval(_) | Answer::Moved => return None,
        })
    }

    pub fn into_cancel(self) -> Option<CancelOutcome> {
        match self {
            Answer::Cancel(WireCancel::Stopping) => Some(CancelOutcome::Stopping),
            Answer::Cancel(WireCancel::Dequeued) => Some(CancelOutcome::Dequeued),
            Answer::Cancel(WireCancel::NotInProgress) => Some(CancelOutcome::NotInProgress),
            _ => None,
        }
    }
}

/// An event message: its `seq`, a newline, and the event's frame as stored.
pub fn event_message(seq: u64, payload: &str) -> bytes::Bytes {
    bytes::Bytes::from(format!("{seq}\n{payload}"))
}

/// The `seq` and frame of an event message; `None` if it is not one.
pub fn parse_event(message: &[u8]) -> Option<(u64, std::sync::Arc<str>)> {
    let text = std::str::from_utf8(message).ok()?;
    let (seq, payload) = text.split_once('\n')?;
    Some((seq.parse().ok()?, std::sync::Arc::from(payload)))
}

/// A sign-out message: the user and their new token generation.
#[derive(Debug, Serialize, Deserialize)]
pub struct SignOut {
    pub user_id: UserId,
    pub generation: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_messages_round_trip_and_junk_is_refused() {
        let message = event_message(42, "{\"seq\":42,\"x\":\"a\\nb\"}");
        assert_eq!(
            parse_event(&message),
            Some((42, std::sync::Arc::from("{\"seq\":42,\"x\":\"a\\nb\"}")))
        );
        assert_eq!(parse_event(b"no newline"), None);
        assert_eq!(parse_event(b"x\n{}"), None);
    }
}
