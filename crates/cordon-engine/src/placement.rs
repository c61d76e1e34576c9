//! `Placement`: which instance runs a user's engine, and how a request reaches it when it is another one.
//!
//! One instance owns each user at a time: its engine is the one place that
//! user's `seq` is assigned, their thread lanes decided and their limits
//! counted, exactly as with one process. A request that arrives elsewhere is
//! forwarded to the owner. [`Solo`] is the one-process placement: every user
//! is here.

use async_trait::async_trait;
use cordon_core::{RunId, StoreError, UserId};

use crate::engine::{
    Accepted, ApprovalAnswer, ApprovalError, CancelOutcome, Resolved, RunRequest, SubmitError,
};

/// Who runs a user's engine, as a claim found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This instance. `fresh`: it has just taken the user over from nobody or
    /// from a dead instance, so the user's unfinished runs are abandoned.
    Here { fresh: bool },
    /// The live instance of that name.
    Elsewhere(String),
}

/// Why a forwarded request has no answer from the owner.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForwardError {
    /// The instance asked no longer owns the user: ask who does.
    #[error("the instance no longer owns the user")]
    Moved,
    /// The owner did not answer (broker down, instance stuck or dying).
    #[error("the owner could not be reached: {0}")]
    Unreachable(String),
}

#[async_trait]
pub trait Placement: Send + Sync {
    /// Makes this instance the user's owner unless a live instance is.
    async fn claim(&self, user_id: &UserId) -> Result<Claim, StoreError>;
    /// Hands a message to its user's owner and returns the owner's decision.
    async fn submit_at(
        &self,
        owner: &str,
        request: RunRequest,
    ) -> Result<Result<Accepted, SubmitError>, ForwardError>;
    /// Asks the user's owner to stop one of their runs.
    async fn cancel_at(
        &self,
        owner: &str,
        user_id: &UserId,
        run_id: &RunId,
    ) -> Result<CancelOutcome, ForwardError>;
    /// Hands a person's answer to an approval to the user's owner.
    async fn answer_at(
        &self,
        owner: &str,
        user_id: &UserId,
        answer: &ApprovalAnswer,
    ) -> Result<Result<Resolved, ApprovalError>, ForwardError>;
    /// Gives the user up (their engine here is retired and its writes committed):
    /// the next claim, on any instance, takes them.
    async fn release(&self, _user_id: &UserId) -> Result<(), StoreError> {
        Ok(())
    }
}

/// One process: every user's engine is here.
pub struct Solo;

#[async_trait]
impl Placement for Solo {
    async fn claim(&self, _: &UserId) -> Result<Claim, StoreError> {
        Ok(Claim::Here { fresh: false })
    }

    async fn submit_at(
        &self,
        _: &str,
        _: RunRequest,
    ) -> Result<Result<Accepted, SubmitError>, ForwardError> {
        Err(ForwardError::Moved)
    }

    async fn cancel_at(
        &self,
        _: &str,
        _: &UserId,
        _: &RunId,
    ) -> Result<CancelOutcome, ForwardError> {
        Err(ForwardError::Moved)
    }

    async fn answer_at(
        &self,
        _: &str,
        _: &UserId,
        _: &ApprovalAnswer,
    ) -> Result<Result<Resolved, ApprovalError>, ForwardError> {
        Err(ForwardError::Moved)
    }
}
