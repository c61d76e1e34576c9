//! Approval by a person: a run whose model calls a tool that needs approval pauses (its checkpoint stored, no task kept), and goes on in a new task once every such call is answered; unanswered calls expire.
//!
//! Answers for one user are decided one at a time (the engine's `answering`
//! lock, and one owner per user across instances), and an answer is stored
//! before the run goes on, so a call runs at most once however many answers
//! race; the loser hears `already_resolved`.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use cordon_core::{
    Decision, ErrorCode, RequestId, RunEventKind, RunId, RunPause, StoreError, ToolCall,
    TraceParent, UserExecutionContext,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{StartedRun, UserExecutionEngine};
use crate::log::RunEvents;
use crate::registry::{AgentInput, CallDecision, RunFailure};
use crate::stop::StopSignal;
use crate::supervisor::Start;

/// Answered calls an engine remembers (for `already_resolved` once the
/// run went on and its pause is gone).
const REMEMBERED_ANSWERS: usize = 1024;

/// What a paused run keeps in the store: where the pipeline stopped, and
/// each call that waits, with its answer once given.
#[derive(Debug, Serialize, Deserialize)]
struct PauseState {
    agent: String,
    input: AgentInput,
    state: Value,
    calls: Vec<Waiting>,
    /// The caller's `traceparent`, so the run's continuation is traced
    /// under the same parent (absent in pauses stored before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    trace_parent: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Waiting {
    call_id: String,
    tool: String,
    arguments: Value,
    answer: Option<CallDecision>,
}

/// Where a run paused, as the supervisor handed it over.
pub(super) struct PausePoint {
    pub agent: String,
    pub input: AgentInput,
    pub calls: Vec<ToolCall>,
    pub state: Value,
}

/// A person's answer as a transport received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalAnswer {
    /// Optional: without it the call is looked up among the user's paused runs.
    pub run_id: Option<RunId>,
    pub call_id: String,
    pub approve: bool,
    pub reason: Option<String>,
}

/// Why an answer was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalError {
    #[error("no tool call of yours waits for approval with that id")]
    NotFound,
    #[error("that call was already answered")]
    AlreadyResolved,
    #[error("the approval expired")]
    Expired,
    #[error("several of your runs wait on a call with that id; name the run")]
    Ambiguous,
    #[error("the answer could not be stored: {0}")]
    Storage(StoreError),
}

impl From<StoreError> for ApprovalError {
    fn from(error: StoreError) -> Self {
        ApprovalError::Storage(error)
    }
}

/// An answer that was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub run_id: RunId,
    pub call_id: String,
    pub decision: Decision,
    /// Whether the run went on (every call it waited for is answered).
    pub resumed: bool,
}

/// A call a paused run waits on, as transports show it.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitingCall {
    pub call_id: String,
    pub tool: String,
    pub arguments: Value,
    pub expires_at: time::OffsetDateTime,
}

/// The calls of a stored pause still waiting for an answer.
pub fn waiting_calls(pause: &RunPause) -> Result<Vec<WaitingCall>, StoreError> {
    let state = state_of(pause)?;
    Ok(state
        .calls
        .into_iter()
        .filter(|waiting| waiting.answer.is_none())
        .map(|waiting| WaitingCall {
            call_id: waiting.call_id,
            tool: waiting.tool,
            arguments: waiting.arguments,
            expires_at: pause.expires_at,
        })
        .collect())
}

/// Calls answered lately, by run.
#[derive(Default)]
pub(super) struct Answered(VecDeque<(RunId, String)>);

impl Answered {
    fn remember(&mut self, run_id: &RunId, call_id: &str) {
        if self.0.len() >= REMEMBERED_ANSWERS {
            self.0.pop_front();
        }
        self.0.push_back((run_id.clone(), call_id.to_owned()));
    }

    fn knows(&self, run_id: Option<&RunId>, call_id: &str) -> bool {
        self.0
            .iter()
            .any(|(run, call)| call == call_id && run_id.is_none_or(|id| id == run))
    }
}

impl UserExecutionEngine {
    /// Stores the run's pause and announces each call that waits; the run's
    /// task then ends, keeping its thread's lane.
    pub(super) async fn pause(
        &self,
        ctx: &UserExecutionContext,
        point: PausePoint,
    ) -> Result<(), RunFailure> {
        let expires_at = cordon_core::now() + self.config.approval_ttl;
        let state = PauseState {
            agent: point.agent.clone(),
            input: point.input,
            state: point.state,
            calls: point.calls.iter().cloned().map(Waiting::of).collect(),
            trace_parent: ctx.trace_parent().map(|parent| parent.as_str().to_owned()),
        };
        // Stored before it is announced: a client that hears
        // `approval_required` and answers at once finds the pause.
        self.store
            .put_pause(&pause_of(ctx, &state, expires_at)?)
            .await
            .map_err(paused_unstored)?;
        for call in point.calls {
            let required = RunEventKind::ApprovalRequired {
                agent: point.agent.clone(),
                call_id: call.id,
                tool: call.name,
                arguments: call.arguments,
                expires_at,
            };
            // Stored as waiting already: if the log fails now, the pause
            // still expires (or is cancelled) like any other.
            if let Err(error) = self.log.emit(ctx, required) {
                tracing::error!(%error, run_id = %ctx.run_id(), "could not log an approval request");
            }
        }
        let mut engine = self.lock();
        engine.running.remove(ctx.run_id());
        engine.paused.insert(ctx.run_id().clone());
        metrics::counter!("cordon_approvals_requested_total").increment(1);
        Ok(())
    }

    /// Takes a person's answer to one waiting call; the run goes on once
    /// every call it waits for is answered.
    pub async fn answer(
        self: &Arc<Self>,
        answer: ApprovalAnswer,
    ) -> Result<Resolved, ApprovalError> {
        let mut answered = self.answering.lock().await;
        let (mut pause, mut state) = self.find_pause(&answer, &answered).await?;
        let run_id = pause.run_id.clone();
        if pause.expires_at <= cordon_core::now() {
            drop(answered);
            self.expire(&run_id).await;
            return Err(ApprovalError::Expired);
        }
        let decision = if answer.approve {
            Decision::Approved
        } else {
            Decision::Rejected
        };
        let Some(waiting) = state
            .calls
            .iter_mut()
            .find(|waiting| waiting.call_id == answer.call_id)
        else {
            return Err(ApprovalError::NotFound);
        };
        if waiting.answer.is_some() {
            return Err(ApprovalError::AlreadyResolved);
        }
        waiting.answer = Some(CallDecision {
            decision,
            reason: answer.reason.clone(),
        });
        let ctx = run_context(self, &pause);
        let resolved = RunEventKind::ApprovalResolved {
            agent: state.agent.clone(),
            call_id: answer.call_id.clone(),
            tool: waiting.tool.clone(),
            decision,
            reason: answer.reason,
        };
        self.log.emit(&ctx, resolved)?;
        let resumed = state.calls.iter().all(|waiting| waiting.answer.is_some());
        if resumed {
            self.store.take_pause(&run_id).await?;
        } else {
            pause.state = serde_json::to_value(&state)
                .map_err(|error| ApprovalError::Storage(StoreError::Backend(error.to_string())))?;
            self.store.put_pause(&pause).await?;
        }
        answered.remember(&run_id, &answer.call_id);
        metrics::counter!("cordon_approvals_answered_total", "decision" => <&str>::from(decision))
            .increment(1);
        if resumed {
            self.resume(ctx, state);
        }
        Ok(Resolved {
            run_id,
            call_id: answer.call_id,
            decision,
            resumed,
        })
    }

    /// The pause the answer is for: the named run's, else the one paused
    /// run of the user's that waits on the call.
    async fn find_pause(
        &self,
        answer: &ApprovalAnswer,
        answered: &Answered,
    ) -> Result<(RunPause, PauseState), ApprovalError> {
        let candidates = match &answer.run_id {
            Some(run_id) => self.store.pause(run_id).await?.into_iter().collect(),
            None => self.store.pauses().await?,
        };
        let mut matching = Vec::new();
        for pause in candidates {
            let state = state_of(&pause)?;
            let waits = state.calls.iter().find(|w| w.call_id == answer.call_id);
            if let Some(waiting) = waits {
                matching.push((waiting.answer.is_none(), pause, state));
            }
        }
        // A call still waiting wins over one of the same id already answered.
        matching.sort_by_key(|(waiting, ..)| !*waiting);
        let mut matching = matching.into_iter();
        match (matching.next(), matching.next()) {
            (Some((true, ..)), Some((true, ..))) => Err(ApprovalError::Ambiguous),
            (Some((_, pause, state)), _) => Ok((pause, state)),
            (None, _) if answered.knows(answer.run_id.as_ref(), &answer.call_id) => {
                Err(ApprovalError::AlreadyResolved)
            }
            (None, _) => Err(ApprovalError::NotFound),
        }
    }

    /// Every call answered: the run goes on in a new task, in its lane.
    fn resume(self: &Arc<Self>, ctx: UserExecutionContext, state: PauseState) {
        let answers: HashMap<String, CallDecision> = state
            .calls
            .into_iter()
            .filter_map(|waiting| Some((waiting.call_id, waiting.answer?)))
            .collect();
        let start = Start::Resume {
            agent: state.agent,
            input: state.input,
            state: state.state,
            answers,
        };
        let stop = StopSignal::default();
        self.occupy_lane(&ctx, stop.clone());
        let engine = Arc::clone(self);
        self.admission.tracker.spawn(async move {
            let Ok(permit) = Arc::clone(&engine.admission.global).acquire_owned().await else {
                return;
            };
            engine
                .execute(StartedRun {
                    ctx,
                    start,
                    stop,
                    permit,
                    started: Instant::now(),
                    preset: None,
                })
                .await;
        });
    }

    /// Marks the run as running again in its thread's lane.
    fn occupy_lane(&self, ctx: &UserExecutionContext, stop: StopSignal) {
        let mut engine = self.lock();
        engine.paused.remove(ctx.run_id());
        engine.running.insert(ctx.run_id().clone(), stop);
        engine
            .lanes
            .entry(ctx.thread_id().clone())
            .or_insert_with(|| super::Lane::new(ctx.run_id().clone()))
            .running = ctx.run_id().clone();
    }

    /// Ends a paused run whose unanswered calls expired.
    pub(crate) async fn expire(self: &Arc<Self>, run_id: &RunId) {
        let failure = RunFailure::new(
            ErrorCode::ApprovalExpired,
            format!(
                "nobody answered the approval within {} s",
                self.config.approval_ttl.as_secs()
            ),
        );
        self.end_paused(run_id, failure, Some(Decision::Expired))
            .await;
    }

    /// Ends a paused run in its own task (it waits for the answers lock).
    pub(super) fn end_paused_later(self: &Arc<Self>, run_id: RunId, failure: RunFailure) {
        let engine = Arc::clone(self);
        self.admission.tracker.spawn(async move {
            engine.end_paused(&run_id, failure, None).await;
        });
    }

    /// Ends a paused run without going on (cancelled, or expired: then each
    /// unanswered call is announced as such first).
    pub(super) async fn end_paused(
        self: &Arc<Self>,
        run_id: &RunId,
        failure: RunFailure,
        unanswered: Option<Decision>,
    ) {
        let _answering = self.answering.lock().await;
        let pause = match self.store.pause(run_id).await {
            Ok(Some(pause)) => pause,
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(%error, %run_id, "could not read a paused run to end it");
                return;
            }
        };
        let ctx = run_context(self, &pause);
        if let (Some(decision), Ok(state)) = (unanswered, state_of(&pause)) {
            if pause.expires_at > cordon_core::now() {
                return;
            }
            for waiting in state.calls.iter().filter(|w| w.answer.is_none()) {
                let expired = RunEventKind::ApprovalResolved {
                    agent: state.agent.clone(),
                    call_id: waiting.call_id.clone(),
                    tool: waiting.tool.clone(),
                    decision,
                    reason: None,
                };
                if let Err(error) = self.log.emit(&ctx, expired) {
                    tracing::warn!(%error, %run_id, "could not record an expired approval");
                }
            }
        }
        if let Err(error) = self.store.take_pause(run_id).await {
            tracing::warn!(%error, %run_id, "could not end a paused run; will try again");
            return;
        }
        self.occupy_lane(&ctx, StopSignal::default());
        let Ok(permit) = Arc::clone(&self.admission.global).acquire_owned().await else {
            return;
        };
        let events = RunEvents::new(Arc::clone(&self.log), StopSignal::default());
        self.finish(&ctx, Err(failure), &events, Instant::now())
            .await;
        self.pass_lane_on(&ctx, permit);
    }

    /// After a restart (or a take-over): the user's paused runs hold their
    /// threads' lanes again, and can be answered, cancelled or expired.
    pub(crate) async fn restore_pauses(&self) -> Result<(), StoreError> {
        let pauses = self.store.pauses().await?;
        let mut engine = self.lock();
        for pause in pauses {
            engine
                .lanes
                .entry(pause.thread_id.clone())
                .or_insert_with(|| super::Lane::new(pause.run_id.clone()));
            engine.paused.insert(pause.run_id);
        }
        Ok(())
    }
}

impl Waiting {
    fn of(call: ToolCall) -> Self {
        Self {
            call_id: call.id,
            tool: call.name,
            arguments: call.arguments,
            answer: None,
        }
    }
}

fn pause_of(
    ctx: &UserExecutionContext,
    state: &PauseState,
    expires_at: time::OffsetDateTime,
) -> Result<RunPause, RunFailure> {
    let state = serde_json::to_value(state).map_err(|error| {
        RunFailure::new(ErrorCode::Internal, format!("could not pause: {error}"))
    })?;
    Ok(RunPause {
        run_id: ctx.run_id().clone(),
        thread_id: ctx.thread_id().clone(),
        state,
        expires_at,
    })
}

fn state_of(pause: &RunPause) -> Result<PauseState, StoreError> {
    serde_json::from_value(pause.state.clone())
        .map_err(|error| StoreError::Backend(format!("unreadable pause: {error}")))
}

/// A context for the paused run's own events (its answers, its end) and its
/// continuation, under the `traceparent` the run started with.
fn run_context(engine: &UserExecutionEngine, pause: &RunPause) -> UserExecutionContext {
    let trace_parent = pause
        .state
        .get("trace_parent")
        .and_then(Value::as_str)
        .and_then(|raw| TraceParent::parse(raw).ok());
    UserExecutionContext::new(
        engine.user_id().clone(),
        pause.thread_id.clone(),
        pause.run_id.clone(),
        RequestId::generate(),
        None,
    )
    .with_trace_parent(trace_parent)
}

fn paused_unstored(error: StoreError) -> RunFailure {
    tracing::error!(%error, "could not store a run's pause");
    RunFailure::new(
        ErrorCode::StorageFailed,
        "the run's pause could not be stored",
    )
}
