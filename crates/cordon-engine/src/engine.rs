//! `UserExecutionEngine`: one user's runs: admission, execution, cancellation, history and stats.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use cordon_core::{
    ErrorCode, Message, MessageId, Role, RunEventKind, RunId, RunOutcome, RunRecord, RunStatus,
    ThreadId, UserExecutionContext, UserId,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::EngineConfig;
use crate::dispatcher::elapsed_ms;
use crate::emitter::UserEventEmitter;
use crate::factory::EngineDeps;
use crate::registry::RunFailure;
use crate::supervisor::{SUPERVISOR, run_pipeline};

/// Why a message was not turned into a run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// Refused by a limit; an `agent_error` with this code was already emitted.
    #[error("run rejected: {}", .0.as_str())]
    Rejected(ErrorCode),
    /// The context belongs to another user: a bug in the caller, never served.
    #[error("the context belongs to another user")]
    WrongUser,
    /// The engine was retired by the idle cleanup; ask the factory for a fresh one.
    #[error("the engine was retired")]
    Retired,
}

/// A run that was admitted: its id and the task executing it.
#[derive(Debug)]
pub struct RunHandle {
    pub run_id: RunId,
    pub done: JoinHandle<RunStatus>,
}

/// Counters of one engine's life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    pub runs_started: u64,
    pub runs_completed: u64,
    pub runs_failed: u64,
    pub runs_cancelled: u64,
    pub runs_timed_out: u64,
    pub runs_rejected: u64,
}

/// A finished run as the engine remembers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSummary {
    pub run_id: RunId,
    pub thread_id: ThreadId,
    pub status: RunStatus,
    pub duration: Duration,
}

struct EngineState {
    active: HashMap<RunId, CancellationToken>,
    history: VecDeque<RunSummary>,
    stats: EngineStats,
    last_activity: Instant,
    retired: bool,
}

/// A run that passed admission and was announced, handed to its task.
struct AdmittedRun {
    ctx: UserExecutionContext,
    message: String,
    /// Whether the run and its message were queued for the store.
    recorded: Result<(), RunFailure>,
    token: CancellationToken,
    permit: OwnedSemaphorePermit,
    started: Instant,
}

/// Shared process-wide admission state, handed to every engine by the factory.
pub(crate) struct Admission {
    pub global: Arc<Semaphore>,
    pub accepting: AtomicBool,
    pub tracker: TaskTracker,
}

pub struct UserExecutionEngine {
    user_id: UserId,
    deps: EngineDeps,
    config: Arc<EngineConfig>,
    emitter: UserEventEmitter,
    admission: Arc<Admission>,
    state: Mutex<EngineState>,
}

impl UserExecutionEngine {
    pub(crate) fn new(
        user_id: UserId,
        deps: EngineDeps,
        config: Arc<EngineConfig>,
        emitter: UserEventEmitter,
        admission: Arc<Admission>,
    ) -> Self {
        Self {
            user_id,
            deps,
            config,
            emitter,
            admission,
            state: Mutex::new(EngineState {
                active: HashMap::new(),
                history: VecDeque::new(),
                stats: EngineStats::default(),
                last_activity: Instant::now(),
                retired: false,
            }),
        }
    }

    pub fn user_id(&self) -> &UserId {
        &self.user_id
    }

    /// Admits and starts a run for `message`, or rejects it (emitting `agent_error`).
    pub fn submit(
        self: &Arc<Self>,
        ctx: UserExecutionContext,
        message: String,
    ) -> Result<RunHandle, SubmitError> {
        if ctx.user_id() != &self.user_id {
            return Err(SubmitError::WrongUser);
        }
        let (permit, token) = match self.admit(&ctx) {
            Ok(admitted) => admitted,
            Err(SubmitError::Rejected(code)) => {
                self.reject(&ctx, code);
                return Err(SubmitError::Rejected(code));
            }
            Err(other) => return Err(other),
        };
        // `agent_started` is emitted here, not in the spawned task: under a
        // burst of messages the task may wait behind other runs' work, and the
        // user should see their run acknowledged as soon as it is admitted.
        let started = Instant::now();
        self.emitter.emit(
            &ctx,
            RunEventKind::AgentStarted {
                agent: SUPERVISOR.to_owned(),
            },
        );
        let recorded = self.record_start(&ctx, &message);
        let run = AdmittedRun {
            ctx,
            message,
            recorded,
            token,
            permit,
            started,
        };
        let engine = Arc::clone(self);
        let run_id = run.ctx.run_id().clone();
        let done = self
            .admission
            .tracker
            .spawn(async move { engine.execute(run).await });
        Ok(RunHandle { run_id, done })
    }

    /// Cancels one of this user's runs; false when no such run is in flight.
    pub fn cancel(&self, run_id: &RunId) -> bool {
        match self.lock().active.get(run_id) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }

    pub fn stats(&self) -> EngineStats {
        self.lock().stats
    }

    /// The most recent finished runs, oldest first (bounded by `run_history_limit`).
    pub fn history(&self) -> Vec<RunSummary> {
        self.lock().history.iter().cloned().collect()
    }

    /// Retires the engine if it has been idle for `ttl`; a retired engine admits nothing.
    pub(crate) fn retire_if_idle(&self, ttl: Duration) -> bool {
        let mut state = self.lock();
        if state.active.is_empty() && state.last_activity.elapsed() >= ttl {
            state.retired = true;
        }
        state.retired
    }

    pub(crate) fn cancel_all(&self) {
        for token in self.lock().active.values() {
            token.cancel();
        }
    }

    fn lock(&self) -> MutexGuard<'_, EngineState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn admit(
        &self,
        ctx: &UserExecutionContext,
    ) -> Result<(OwnedSemaphorePermit, CancellationToken), SubmitError> {
        let mut state = self.lock();
        if state.retired {
            return Err(SubmitError::Retired);
        }
        state.last_activity = Instant::now();
        if !self.admission.accepting.load(Ordering::Acquire) {
            return Err(SubmitError::Rejected(ErrorCode::ShuttingDown));
        }
        if state.active.len() >= self.config.max_runs_per_user {
            return Err(SubmitError::Rejected(ErrorCode::UserConcurrencyLimit));
        }
        let permit = Arc::clone(&self.admission.global)
            .try_acquire_owned()
            .map_err(|_| SubmitError::Rejected(ErrorCode::GlobalConcurrencyLimit))?;
        let token = CancellationToken::new();
        state.active.insert(ctx.run_id().clone(), token.clone());
        state.stats.runs_started += 1;
        metrics::counter!("cordon_runs_started_total").increment(1);
        Ok((permit, token))
    }

    fn reject(&self, ctx: &UserExecutionContext, code: ErrorCode) {
        self.lock().stats.runs_rejected += 1;
        metrics::counter!("cordon_limit_rejections_total", "reason" => code.as_str()).increment(1);
        let message = match code {
            ErrorCode::UserConcurrencyLimit => format!(
                "you already have {} runs in progress; wait for one to finish",
                self.config.max_runs_per_user
            ),
            ErrorCode::GlobalConcurrencyLimit => {
                "the server is at capacity; try again shortly".into()
            }
            _ => "the server is shutting down".into(),
        };
        let failure = RunFailure::new(code, message);
        let record = self.run_record(ctx, RunStatus::Rejected);
        let store = Arc::clone(&self.deps.store);
        let outcome = failure_outcome(&failure);
        let user_id = self.user_id.clone();
        if let Err(error) = store.begin_run(&record, None) {
            tracing::warn!(%error, "could not record a rejected run");
        }
        tokio::spawn(async move {
            let _ = store.finish_run(&user_id, &record.id, &outcome).await;
        });
        self.emit_failure(ctx, &failure);
    }

    async fn execute(self: Arc<Self>, run: AdmittedRun) -> RunStatus {
        // Let the messages that arrived with this one be acknowledged before
        // this run's pipeline takes the worker: a new task would otherwise run
        // first (tokio's LIFO slot) and a burst's last `agent_started` waits
        // for every earlier pipeline.
        tokio::task::yield_now().await;
        let result = match run.recorded {
            Ok(()) => tokio::select! {
                biased;
                () = run.token.cancelled() => Err(RunFailure::new(ErrorCode::Cancelled, "the run was cancelled")),
                result = run_pipeline(&self.deps, &self.emitter, &self.config, &run.ctx, &run.message) => result,
            },
            Err(failure) => Err(failure),
        };
        self.finish(&run.ctx, result, run.started, run.permit).await
    }

    /// Queues the run and its user message; the pipeline need not wait for
    /// the commit (the assistant's history read falls back to the message).
    fn record_start(&self, ctx: &UserExecutionContext, message: &str) -> Result<(), RunFailure> {
        let record = self.run_record(ctx, RunStatus::Running);
        let user_message = new_message(ctx, Role::User, message.to_owned());
        self.deps
            .store
            .begin_run(&record, Some(&user_message))
            .map_err(|error| {
                tracing::error!(%error, run_id = %ctx.run_id(), "could not record the run");
                RunFailure::new(ErrorCode::Internal, "the run could not be recorded")
            })
    }

    /// Stores the outcome, frees the run's slot, then emits the terminal event,
    /// so a client that reacts to it sees the run finished everywhere.
    async fn finish(
        &self,
        ctx: &UserExecutionContext,
        result: Result<String, RunFailure>,
        started: Instant,
        permit: OwnedSemaphorePermit,
    ) -> RunStatus {
        let outcome = match &result {
            Ok(answer) => RunOutcome {
                status: RunStatus::Completed,
                error_code: None,
                error_message: None,
                answer: Some(new_message(ctx, Role::Assistant, answer.clone())),
            },
            Err(failure) => failure_outcome(failure),
        };
        if let Err(error) = self
            .deps
            .store
            .finish_run(&self.user_id, ctx.run_id(), &outcome)
            .await
        {
            tracing::error!(%error, run_id = %ctx.run_id(), "could not record the run's outcome");
        }
        self.record_finish(
            ctx,
            outcome.status,
            outcome.error_code.as_deref(),
            started.elapsed(),
        );
        drop(permit);
        match result {
            Ok(answer) => {
                self.emitter.emit(
                    ctx,
                    RunEventKind::AgentCompleted {
                        agent: SUPERVISOR.to_owned(),
                        answer,
                        duration_ms: elapsed_ms(started),
                    },
                );
            }
            Err(failure) => self.emit_failure(ctx, &failure),
        }
        outcome.status
    }

    fn record_finish(
        &self,
        ctx: &UserExecutionContext,
        status: RunStatus,
        outcome_code: Option<&str>,
        duration: Duration,
    ) {
        let mut state = self.lock();
        state.active.remove(ctx.run_id());
        state.last_activity = Instant::now();
        record_metrics(status, outcome_code);
        let stats = &mut state.stats;
        match status {
            RunStatus::Completed => stats.runs_completed += 1,
            RunStatus::Cancelled => stats.runs_cancelled += 1,
            RunStatus::TimedOut => stats.runs_timed_out += 1,
            RunStatus::Rejected => stats.runs_rejected += 1,
            RunStatus::Failed | RunStatus::Running => stats.runs_failed += 1,
        }
        if state.history.len() >= self.config.run_history_limit {
            state.history.pop_front();
        }
        state.history.push_back(RunSummary {
            run_id: ctx.run_id().clone(),
            thread_id: ctx.thread_id().clone(),
            status,
            duration,
        });
    }

    fn emit_failure(&self, ctx: &UserExecutionContext, failure: &RunFailure) {
        self.emitter.emit(
            ctx,
            RunEventKind::AgentError {
                agent: SUPERVISOR.to_owned(),
                code: failure.code,
                message: failure.message.clone(),
            },
        );
    }

    fn run_record(&self, ctx: &UserExecutionContext, status: RunStatus) -> RunRecord {
        RunRecord {
            id: ctx.run_id().clone(),
            user_id: self.user_id.clone(),
            thread_id: ctx.thread_id().clone(),
            agent: SUPERVISOR.to_owned(),
            status,
            created_at: cordon_core::now(),
            finished_at: None,
            error_code: None,
            error_message: None,
        }
    }
}

/// Run counters for `/metrics`: completed, or failed by reason (the error code).
fn record_metrics(status: RunStatus, code: Option<&str>) {
    if status == RunStatus::Completed {
        metrics::counter!("cordon_runs_completed_total").increment(1);
    } else {
        let reason = code.unwrap_or("unknown").to_owned();
        metrics::counter!("cordon_runs_failed_total", "reason" => reason).increment(1);
    }
}

fn failure_outcome(failure: &RunFailure) -> RunOutcome {
    RunOutcome {
        status: RunStatus::for_error(failure.code),
        error_code: Some(failure.code.as_str().to_owned()),
        error_message: Some(failure.message.clone()),
        answer: None,
    }
}

fn new_message(ctx: &UserExecutionContext, role: Role, content: String) -> Message {
    Message {
        id: MessageId::generate(),
        thread_id: ctx.thread_id().clone(),
        role,
        content,
        run_id: Some(ctx.run_id().clone()),
        created_at: cordon_core::now(),
    }
}
