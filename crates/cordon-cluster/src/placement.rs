//! `ClusterPlacement`: users are owned per `PgOwners`, and a request for a user owned elsewhere is forwarded to the owner over NATS request/reply.

use std::sync::Arc;
use std::time::Duration;

use async_nats::{RequestErrorKind, client::Client};
use async_trait::async_trait;
use cordon_core::{RunId, StoreError, UserId};
use cordon_engine::{
    Accepted, ApprovalAnswer, ApprovalError, CancelOutcome, Resolved, RunRequest, SubmitError,
};
use cordon_engine::{Claim, ForwardError, Placement};
use cordon_store::{Claimed, PgOwners};

use crate::wire::{Answer, Call, calls_subject};

/// How long a forwarded call waits for the owner. Past it the message is
/// reported `owner_unavailable`, although the owner may still have taken it
/// (a client that must know asks `GET /api/runs` for its `client_request_id`).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

pub struct ClusterPlacement {
    owners: Arc<PgOwners>,
    broker: Client,
}

impl ClusterPlacement {
    pub fn new(owners: Arc<PgOwners>, broker: Client) -> Self {
        Self { owners, broker }
    }

    async fn call(&self, owner: &str, call: &Call) -> Result<Answer, ForwardError> {
        // A request while disconnected would wait out the timeout in the client's buffer.
        if self.broker.connection_state() != async_nats::connection::State::Connected {
            return Err(ForwardError::Unreachable(
                "the broker is unreachable".into(),
            ));
        }
        let body = serde_json::to_vec(call)
            .map_err(|error| ForwardError::Unreachable(error.to_string()))?;
        let request = self.broker.request(calls_subject(owner), body.into());
        let reply = match tokio::time::timeout(CALL_TIMEOUT, request).await {
            Err(_) => return Err(ForwardError::Unreachable("no answer in time".into())),
            // Nobody listens on the owner's subject: it is gone; ask who owns the user now.
            Ok(Err(error)) if error.kind() == RequestErrorKind::NoResponders => {
                return Err(ForwardError::Moved);
            }
            Ok(Err(error)) => return Err(ForwardError::Unreachable(error.to_string())),
            Ok(Ok(reply)) => reply,
        };
        serde_json::from_slice(&reply.payload)
            .map_err(|error| ForwardError::Unreachable(format!("unreadable answer: {error}")))
    }
}

#[async_trait]
impl Placement for ClusterPlacement {
    async fn claim(&self, user_id: &UserId) -> Result<Claim, StoreError> {
        Ok(match self.owners.claim(user_id).await? {
            Claimed::Here { fresh } => Claim::Here { fresh },
            Claimed::Elsewhere(owner) => Claim::Elsewhere(owner),
        })
    }

    async fn submit_at(
        &self,
        owner: &str,
        request: RunRequest,
    ) -> Result<Result<Accepted, SubmitError>, ForwardError> {
        let answer = self.call(owner, &Call::Submit(request.into())).await?;
        answer.into_submit().ok_or(ForwardError::Moved)
    }

    async fn cancel_at(
        &self,
        owner: &str,
        user_id: &UserId,
        run_id: &RunId,
    ) -> Result<CancelOutcome, ForwardError> {
        let call = Call::Cancel {
            user_id: user_id.clone(),
            run_id: run_id.clone(),
        };
        let answer = self.call(owner, &call).await?;
        answer.into_cancel().ok_or(ForwardError::Moved)
    }

    async fn answer_at(
        &self,
        owner: &str,
        user_id: &UserId,
        answer: &ApprovalAnswer,
    ) -> Result<Result<Resolved, ApprovalError>, ForwardError> {
        let call = Call::Approval {
            user_id: user_id.clone(),
            answer: answer.into(),
        };
        let answer = self.call(owner, &call).await?;
        answer.into_approval().ok_or(ForwardError::Moved)
    }

    async fn release(&self, user_id: &UserId) -> Result<(), StoreError> {
        self.owners.release(user_id).await
    }
}
