//! `RunService`: the one owner of a message's life, called the same way by the WebSocket and by REST.

use std::sync::Arc;

use cordon_core::{
    ConnectionId, ErrorCode, MAX_MESSAGE_BYTES, Multitask, RequestId, RunId, Store, StoreError,
    ThreadId, TraceParent, UserExecutionContext, UserId, UserStore,
};

use crate::engine::{
    Accepted, ApprovalAnswer, ApprovalError, CancelOutcome, Resolved, RunRequest, SubmitError,
    WaitingCall, waiting_calls,
};
use crate::factory::{ExecutionEngineFactory, StartError};

/// Longest thread title taken from the first message, in characters.
const TITLE_CHARS: usize = 60;

/// Longest `call_id` of an approval, in bytes.
pub const MAX_CALL_ID_BYTES: usize = 256;

/// Longest `reason` of a rejection, in bytes.
pub const MAX_REASON_BYTES: usize = 4096;

/// Longest `client_request_id`, in bytes.
pub const MAX_CLIENT_REQUEST_ID_BYTES: usize = 128;

/// A message as a transport received it, not yet validated.
#[derive(Debug, Clone, Default)]
pub struct NewMessage {
    /// `None`: start a new thread titled after the message.
    pub thread_id: Option<String>,
    pub content: String,
    pub client_request_id: Option<String>,
    pub multitask: Multitask,
    pub connection_id: Option<ConnectionId>,
    /// The request's (or its socket's) `traceparent`: the parent of the run's span.
    pub trace_parent: Option<TraceParent>,
}

/// Why a message or a cancel was refused; `code` is the protocol's error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    InvalidMessage(&'static str),
    #[error("`content` is limited to {MAX_MESSAGE_BYTES} bytes")]
    MessageTooLarge,
    #[error("no such thread")]
    ThreadNotFound,
    #[error("no such run in progress")]
    RunNotFound,
    /// Refused by a limit or the thread's policy; nothing of it was stored.
    #[error("{}", rejection_message(*.0))]
    Rejected(ErrorCode),
    #[error("the message could not be stored")]
    Storage(StoreError),
    /// Over the user's messages-per-minute; nothing of it was stored.
    #[error("too many messages; wait {} ms before sending again", .retry_after.as_millis())]
    RateLimited { retry_after: std::time::Duration },
    #[error("{0}")]
    InvalidApproval(&'static str),
    #[error(transparent)]
    Approval(ApprovalError),
}

impl ServiceError {
    pub fn code(&self) -> &'static str {
        match self {
            ServiceError::InvalidMessage(_) => "invalid_message",
            ServiceError::MessageTooLarge => "message_too_large",
            ServiceError::ThreadNotFound => "thread_not_found",
            ServiceError::RunNotFound => "run_not_found",
            ServiceError::Rejected(code) => code.as_str(),
            ServiceError::Storage(_) => ErrorCode::StorageFailed.as_str(),
            ServiceError::RateLimited { .. } => "rate_limited",
            ServiceError::InvalidApproval(_) => "invalid_approval",
            ServiceError::Approval(error) => match error {
                ApprovalError::NotFound => "approval_not_found",
                ApprovalError::AlreadyResolved => "already_resolved",
                ApprovalError::Expired => "approval_expired",
                ApprovalError::Ambiguous => "ambiguous_call_id",
                ApprovalError::Storage(_) => ErrorCode::StorageFailed.as_str(),
            },
        }
    }
}

fn rejection_message(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::ThreadBusy => {
            "the thread already has a run in progress; send with multitask `enqueue` or `interrupt`, or wait"
        }
        ErrorCode::UserConcurrencyLimit => {
            "you already have the maximum number of runs in progress; wait for one to finish"
        }
        ErrorCode::GlobalConcurrencyLimit => "the server is at capacity; try again shortly",
        ErrorCode::Overloaded => "storage cannot keep up; try again shortly",
        ErrorCode::StorageFailed => {
            "the server cannot store anything right now; nothing of the message was stored"
        }
        ErrorCode::ShuttingDown => "the server is shutting down",
        ErrorCode::OwnerUnavailable => {
            "the instance running your runs cannot be reached; nothing was stored, try again shortly"
        }
        _ => "the run was refused",
    }
}

/// Validates a message, resolves its thread, and hands it to the user's
/// engine, which applies the thread's double-texting policy atomically.
pub struct RunService {
    factory: Arc<ExecutionEngineFactory>,
    store: Arc<dyn Store>,
}

impl RunService {
    pub fn new(factory: Arc<ExecutionEngineFactory>, store: Arc<dyn Store>) -> Self {
        Self { factory, store }
    }

    pub fn factory(&self) -> &Arc<ExecutionEngineFactory> {
        &self.factory
    }

    /// Turns a message into a run (started or queued) of `user_id`.
    pub async fn submit_message(
        &self,
        user_id: &UserId,
        message: NewMessage,
    ) -> Result<Accepted, ServiceError> {
        validate(&message)?;
        let (thread_id, new_thread_title) = match &message.thread_id {
            Some(raw) => (self.own_thread(user_id, raw).await?, None),
            None => (ThreadId::generate(), Some(title_of(&message.content))),
        };
        let ctx = UserExecutionContext::new(
            user_id.clone(),
            thread_id,
            RunId::generate(),
            RequestId::generate(),
            message.connection_id,
        )
        .with_trace_parent(message.trace_parent);
        let request = RunRequest {
            ctx,
            content: message.content,
            new_thread_title,
            client_request_id: message.client_request_id,
            multitask: message.multitask,
        };
        self.factory
            .submit(request)
            .await
            .map_err(|error| match error {
                StartError::Submit(SubmitError::Rejected(code)) => ServiceError::Rejected(code),
                StartError::Submit(SubmitError::RateLimited(retry_after)) => {
                    ServiceError::RateLimited { retry_after }
                }
                StartError::Submit(SubmitError::OwnerUnavailable) => {
                    ServiceError::Rejected(ErrorCode::OwnerUnavailable)
                }
                StartError::Submit(SubmitError::Storage(error))
                | StartError::Factory(crate::factory::FactoryError::Store(error)) => {
                    tracing::error!(%error, "could not record a message");
                    ServiceError::Storage(error)
                }
                StartError::Submit(other) => {
                    tracing::error!(error = %other, "could not start a run");
                    ServiceError::Storage(StoreError::Backend(other.to_string()))
                }
            })
    }

    /// Stops one of the user's runs (or takes it off its thread's queue),
    /// on whichever instance runs it.
    pub async fn cancel(
        &self,
        user_id: &UserId,
        raw_run_id: &str,
    ) -> Result<CancelOutcome, ServiceError> {
        let run_id = RunId::parse(raw_run_id).map_err(|_| ServiceError::RunNotFound)?;
        match self.factory.cancel(user_id, &run_id).await {
            Ok(CancelOutcome::NotInProgress) => Err(ServiceError::RunNotFound),
            Ok(outcome) => Ok(outcome),
            Err(StartError::Submit(SubmitError::OwnerUnavailable)) => {
                Err(ServiceError::Rejected(ErrorCode::OwnerUnavailable))
            }
            Err(error) => {
                tracing::error!(%error, "could not cancel a run");
                Err(ServiceError::Storage(StoreError::Backend(
                    error.to_string(),
                )))
            }
        }
    }

    /// A person's answer to one of their tool calls that waits for approval
    /// (`run_id` optional), on whichever instance runs the user's runs.
    pub async fn answer_approval(
        &self,
        user_id: &UserId,
        raw_run_id: Option<&str>,
        call_id: &str,
        approve: bool,
        reason: Option<String>,
    ) -> Result<Resolved, ServiceError> {
        if call_id.is_empty() || call_id.len() > MAX_CALL_ID_BYTES {
            return Err(ServiceError::InvalidApproval(
                "`call_id` must be 1 to 256 bytes",
            ));
        }
        if reason.as_ref().is_some_and(|r| r.len() > MAX_REASON_BYTES) {
            return Err(ServiceError::InvalidApproval(
                "`reason` is limited to 4096 bytes",
            ));
        }
        let run_id = match raw_run_id {
            Some(raw) => Some(
                RunId::parse(raw).map_err(|_| ServiceError::Approval(ApprovalError::NotFound))?,
            ),
            None => None,
        };
        let answer = ApprovalAnswer {
            run_id,
            call_id: call_id.to_owned(),
            approve,
            reason,
        };
        match self.factory.answer(user_id, &answer).await {
            Ok(Ok(resolved)) => Ok(resolved),
            Ok(Err(error)) => Err(ServiceError::Approval(error)),
            Err(StartError::Submit(SubmitError::OwnerUnavailable)) => {
                Err(ServiceError::Rejected(ErrorCode::OwnerUnavailable))
            }
            Err(error) => {
                tracing::error!(%error, "could not answer an approval");
                Err(ServiceError::Storage(StoreError::Backend(
                    error.to_string(),
                )))
            }
        }
    }

    /// The calls one of the user's runs waits on (none unless it is paused).
    pub async fn waiting_calls(
        &self,
        user_id: &UserId,
        run_id: &RunId,
    ) -> Result<Vec<WaitingCall>, ServiceError> {
        let store = UserStore::new(user_id.clone(), Arc::clone(&self.store));
        match store.pause(run_id).await {
            Ok(Some(pause)) => waiting_calls(&pause).map_err(ServiceError::Storage),
            Ok(None) => Ok(Vec::new()),
            Err(error) => Err(ServiceError::Storage(error)),
        }
    }

    /// `raw` as one of the user's threads, or `None` (not an id, not theirs,
    /// or missing): for clients that bring their own conversation ids.
    pub async fn find_own_thread(
        &self,
        user_id: &UserId,
        raw: &str,
    ) -> Result<Option<ThreadId>, ServiceError> {
        match self.own_thread(user_id, raw).await {
            Ok(thread_id) => Ok(Some(thread_id)),
            Err(ServiceError::ThreadNotFound) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// The thread if it is this user's; another user's is "not found", like a missing one.
    async fn own_thread(&self, user_id: &UserId, raw: &str) -> Result<ThreadId, ServiceError> {
        let thread_id = ThreadId::parse(raw).map_err(|_| ServiceError::ThreadNotFound)?;
        let store = UserStore::new(user_id.clone(), Arc::clone(&self.store));
        match store.thread(&thread_id).await {
            Ok(Some(_)) => Ok(thread_id),
            Ok(None) => Err(ServiceError::ThreadNotFound),
            Err(error) => {
                tracing::error!(%error, "could not read a thread");
                Err(ServiceError::Storage(error))
            }
        }
    }
}

fn validate(message: &NewMessage) -> Result<(), ServiceError> {
    if message.content.trim().is_empty() {
        return Err(ServiceError::InvalidMessage("`content` must not be empty"));
    }
    if message.content.len() > MAX_MESSAGE_BYTES {
        return Err(ServiceError::MessageTooLarge);
    }
    match &message.client_request_id {
        Some(id) if id.is_empty() || id.len() > MAX_CLIENT_REQUEST_ID_BYTES => Err(
            ServiceError::InvalidMessage("`client_request_id` must be 1 to 128 bytes"),
        ),
        _ => Ok(()),
    }
}

fn title_of(content: &str) -> String {
    let line = content.trim().lines().next().unwrap_or_default().trim();
    cordon_core::text::truncate_chars(line, TITLE_CHARS)
}
