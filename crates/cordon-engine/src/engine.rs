//! `UserExecutionEngine`: one user's runs: admission, a lane per busy thread (double texting), execution, stopping, history and stats.

mod approval;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use cordon_core::{
    ErrorCode, FinishedRun, Message, MessageId, Multitask, Role, RunEventKind, RunId, RunOutcome,
    RunStatus, StoreError, ThreadId, UserExecutionContext, UserId, UserStore,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::budget::BudgetLedger;
use crate::config::EngineConfig;
use crate::dispatcher::elapsed_ms;
use crate::factory::EngineDeps;
use crate::log::{RunEvents, UserEventLog};
use crate::rate::TokenBucket;
use crate::registry::RunFailure;
use crate::stop::StopSignal;
use crate::supervisor::{Finish, SUPERVISOR, Start, run_pipeline};

pub use approval::{ApprovalAnswer, ApprovalError, Resolved, WaitingCall, waiting_calls};

/// Most runs that may wait behind the running one on one thread.
pub const MAX_WAITING_PER_THREAD: usize = 16;

/// How often a run whose end could not be stored tries again.
const STORE_RETRY: Duration = Duration::from_millis(250);

/// Why a message was not turned into a run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// Refused by a limit or the thread's policy; nothing of it was stored.
    #[error("run rejected: {}", .0.as_str())]
    Rejected(ErrorCode),
    /// The run could not be recorded.
    #[error("the run could not be recorded: {0}")]
    Storage(StoreError),
    /// The context belongs to another user: a bug in the caller, never served.
    #[error("the context belongs to another user")]
    WrongUser,
    /// The engine was retired by the idle cleanup; ask the factory for a fresh one.
    #[error("the engine was retired")]
    Retired,
    /// Over the user's messages-per-minute; nothing of it was stored.
    #[error("too many messages; retry in {} ms", .0.as_millis())]
    RateLimited(Duration),
    /// Several instances: the user's owner could not be reached; nothing was stored.
    #[error("the instance that owns the user could not be reached")]
    OwnerUnavailable,
}

impl From<StoreError> for SubmitError {
    fn from(error: StoreError) -> Self {
        SubmitError::Storage(error)
    }
}

/// A message to turn into a run, already validated by the service.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// Names the new run and its thread.
    pub ctx: UserExecutionContext,
    pub content: String,
    /// `Some(title)`: the thread is new and is created with this title.
    pub new_thread_title: Option<String>,
    /// Echoed in `agent_started`.
    pub client_request_id: Option<String>,
    pub multitask: Multitask,
}

/// A message that became a run: its ids and the `seq` of its first event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub run_id: RunId,
    pub thread_id: ThreadId,
    /// `seq` of the run's first event (`thread_created`, `agent_started` or `run_queued`).
    pub seq: u64,
    /// `Some(position)` when the run waits behind others on its thread.
    pub queued: Option<u32>,
}

/// What `cancel` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The run was running; it is being stopped and will end `cancelled`.
    Stopping,
    /// The run was waiting on its thread; it ended `cancelled` without starting.
    Dequeued,
    /// No such run in progress (finished, another user's, or unknown).
    NotInProgress,
}

/// Counters of one engine's life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    pub runs_started: u64,
    pub runs_queued: u64,
    pub runs_completed: u64,
    pub runs_failed: u64,
    pub runs_cancelled: u64,
    pub runs_interrupted: u64,
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

/// A run that waits for its thread.
struct PendingRun {
    ctx: UserExecutionContext,
    content: String,
    client_request_id: Option<String>,
}

/// A thread with a run in progress: that run, and the runs waiting behind it.
struct Lane {
    running: RunId,
    waiting: VecDeque<PendingRun>,
}

impl Lane {
    fn new(running: RunId) -> Self {
        Self {
            running,
            waiting: VecDeque::new(),
        }
    }
}

struct EngineState {
    /// Runs executing now, by id.
    running: HashMap<RunId, StopSignal>,
    /// Runs paused for approval: no task, their lane kept.
    paused: HashSet<RunId>,
    /// Threads with a run in progress.
    lanes: HashMap<ThreadId, Lane>,
    history: VecDeque<RunSummary>,
    /// The user's messages-per-minute budget.
    messages: TokenBucket,
    stats: EngineStats,
    last_activity: Instant,
    retired: bool,
}

/// A run handed to its task.
struct StartedRun {
    ctx: UserExecutionContext,
    start: Start,
    stop: StopSignal,
    permit: OwnedSemaphorePermit,
    started: Instant,
    /// Set when the run must end at once without its pipeline.
    preset: Option<RunFailure>,
}

/// Shared process-wide admission state, handed to every engine by the factory.
pub(crate) struct Admission {
    pub global: Arc<Semaphore>,
    pub accepting: AtomicBool,
    pub tracker: TaskTracker,
}

pub struct UserExecutionEngine {
    deps: EngineDeps,
    store: UserStore,
    config: Arc<EngineConfig>,
    log: Arc<UserEventLog>,
    admission: Arc<Admission>,
    state: Mutex<EngineState>,
    /// Answers to approvals are decided one at a time.
    answering: tokio::sync::Mutex<approval::Answered>,
    /// The user's model spend against their budget.
    budget: Arc<BudgetLedger>,
}

impl UserExecutionEngine {
    pub(crate) fn new(
        deps: EngineDeps,
        store: UserStore,
        config: Arc<EngineConfig>,
        log: UserEventLog,
        admission: Arc<Admission>,
    ) -> Self {
        let messages = TokenBucket::new(config.messages_per_minute, Duration::from_secs(60));
        let budget = BudgetLedger::new(store.clone(), config.budget, Arc::clone(&deps.clock));
        Self {
            budget: Arc::new(budget),
            deps,
            store,
            config,
            log: Arc::new(log),
            admission,
            state: Mutex::new(EngineState {
                running: HashMap::new(),
                paused: HashSet::new(),
                lanes: HashMap::new(),
                history: VecDeque::new(),
                messages,
                stats: EngineStats::default(),
                last_activity: Instant::now(),
                retired: false,
            }),
            answering: tokio::sync::Mutex::default(),
        }
    }

    pub fn user_id(&self) -> &UserId {
        self.store.user_id()
    }

    /// An admin changed the user's budget: it is read again before the next model call.
    pub fn budget_changed(&self) {
        self.budget.limits_changed();
    }

    /// Admits, queues or refuses a message, atomically for its thread: two
    /// messages racing on one thread can never both start.
    pub fn submit(self: &Arc<Self>, request: RunRequest) -> Result<Accepted, SubmitError> {
        if request.ctx.user_id() != self.user_id() {
            return Err(SubmitError::WrongUser);
        }
        let mut state = self.lock();
        if state.retired {
            return Err(SubmitError::Retired);
        }
        state.last_activity = Instant::now();
        let admitted = self.admit(&mut state, request);
        if let Err(SubmitError::Rejected(code)) = &admitted {
            state.stats.runs_rejected += 1;
            metrics::counter!("cordon_limit_rejections_total", "reason" => code.as_str())
                .increment(1);
        }
        admitted
    }

    fn admit(
        self: &Arc<Self>,
        state: &mut EngineState,
        request: RunRequest,
    ) -> Result<Accepted, SubmitError> {
        if !self.admission.accepting.load(Ordering::Acquire) {
            return Err(SubmitError::Rejected(ErrorCode::ShuttingDown));
        }
        state
            .messages
            .take(Instant::now())
            .map_err(SubmitError::RateLimited)?;
        self.store.admit_writes().map_err(|error| match error {
            StoreError::Overloaded => SubmitError::Rejected(ErrorCode::Overloaded),
            _ => SubmitError::Rejected(ErrorCode::StorageFailed),
        })?;
        if let Some(lane) = state.lanes.get_mut(request.ctx.thread_id()) {
            // A paused run has no task to stop: an interrupt ends it here.
            let paused = (request.multitask == Multitask::Interrupt
                && state.paused.contains(&lane.running))
            .then(|| lane.running.clone());
            let queued = self.queue_behind(lane, &state.running, request)?;
            state.stats.runs_queued += 1;
            if let Some(run_id) = paused {
                let failure = RunFailure::new(
                    ErrorCode::Interrupted,
                    "a newer message on this thread interrupted the run",
                );
                self.end_paused_later(run_id, failure);
            }
            return Ok(queued);
        }
        if state.running.len() >= self.config.max_runs_per_user {
            return Err(SubmitError::Rejected(ErrorCode::UserConcurrencyLimit));
        }
        let permit = Arc::clone(&self.admission.global)
            .try_acquire_owned()
            .map_err(|_| SubmitError::Rejected(ErrorCode::GlobalConcurrencyLimit))?;
        let ctx = request.ctx.clone();
        let first_seq = self.record_new_run(&request)?;
        let started_seq = self.announce_start(&ctx, request.client_request_id)?;
        let stop = StopSignal::default();
        state.running.insert(ctx.run_id().clone(), stop.clone());
        state
            .lanes
            .insert(ctx.thread_id().clone(), Lane::new(ctx.run_id().clone()));
        state.stats.runs_started += 1;
        let accepted = Accepted {
            run_id: ctx.run_id().clone(),
            thread_id: ctx.thread_id().clone(),
            seq: first_seq.unwrap_or(started_seq),
            queued: None,
        };
        self.spawn(StartedRun {
            ctx,
            start: Start::Message(request.content),
            stop,
            permit,
            started: Instant::now(),
            preset: None,
        });
        Ok(accepted)
    }

    /// The thread is busy: refuse, or queue the run (at the back, or at the
    /// front after stopping the running one).
    fn queue_behind(
        &self,
        lane: &mut Lane,
        running: &HashMap<RunId, StopSignal>,
        request: RunRequest,
    ) -> Result<Accepted, SubmitError> {
        if request.multitask == Multitask::Reject || lane.waiting.len() >= MAX_WAITING_PER_THREAD {
            return Err(SubmitError::Rejected(ErrorCode::ThreadBusy));
        }
        let ctx = request.ctx;
        self.store.begin_run(
            ctx.run_id(),
            ctx.thread_id(),
            SUPERVISOR,
            RunStatus::Queued,
            Some(&new_message(&ctx, Role::User, request.content.clone())),
        )?;
        let pending = PendingRun {
            ctx: ctx.clone(),
            content: request.content,
            client_request_id: request.client_request_id,
        };
        let position = if request.multitask == Multitask::Interrupt {
            if let Some(stop) = running.get(&lane.running) {
                stop.stop(ErrorCode::Interrupted);
            }
            lane.waiting.push_front(pending);
            1
        } else {
            lane.waiting.push_back(pending);
            lane.waiting.len()
        };
        let position = u32::try_from(position).unwrap_or(u32::MAX);
        let seq = self.log.emit(&ctx, RunEventKind::RunQueued { position })?;
        Ok(Accepted {
            run_id: ctx.run_id().clone(),
            thread_id: ctx.thread_id().clone(),
            seq,
            queued: Some(position),
        })
    }

    /// Stores a new thread (announcing it) and the run with its message;
    /// returns the `seq` of `thread_created` if there was one.
    fn record_new_run(&self, request: &RunRequest) -> Result<Option<u64>, SubmitError> {
        let ctx = &request.ctx;
        let thread_seq = match &request.new_thread_title {
            Some(title) => {
                self.store.create_thread(ctx.thread_id(), title)?;
                let created = RunEventKind::ThreadCreated {
                    title: title.clone(),
                };
                Some(self.log.emit(ctx, created)?)
            }
            None => None,
        };
        let message = new_message(ctx, Role::User, request.content.clone());
        self.store.begin_run(
            ctx.run_id(),
            ctx.thread_id(),
            SUPERVISOR,
            RunStatus::Running,
            Some(&message),
        )?;
        Ok(thread_seq)
    }

    /// `agent_started` is emitted at admission, not in the spawned task: under
    /// a burst the task may wait behind other runs' work, and the user should
    /// see their run acknowledged as soon as it is admitted.
    fn announce_start(
        &self,
        ctx: &UserExecutionContext,
        client_request_id: Option<String>,
    ) -> Result<u64, StoreError> {
        metrics::counter!("cordon_runs_started_total").increment(1);
        self.log.emit(
            ctx,
            RunEventKind::AgentStarted {
                agent: SUPERVISOR.to_owned(),
                client_request_id,
            },
        )
    }

    /// Stops one of this user's runs, or takes it out of its thread's queue.
    pub fn cancel(self: &Arc<Self>, run_id: &RunId) -> CancelOutcome {
        let mut state = self.lock();
        if let Some(stop) = state.running.get(run_id) {
            stop.stop(ErrorCode::Cancelled);
            return CancelOutcome::Stopping;
        }
        if state.paused.contains(run_id) {
            let failure = RunFailure::new(ErrorCode::Cancelled, "the run was cancelled");
            self.end_paused_later(run_id.clone(), failure);
            return CancelOutcome::Stopping;
        }
        let dequeued = state.lanes.values_mut().find_map(|lane| {
            let position = lane.waiting.iter().position(|p| p.ctx.run_id() == run_id)?;
            lane.waiting.remove(position)
        });
        drop(state);
        match dequeued {
            Some(pending) => {
                let engine = Arc::clone(self);
                let failure = RunFailure::new(ErrorCode::Cancelled, "the run was cancelled");
                self.admission.tracker.spawn(async move {
                    engine.end_unstarted(&pending.ctx, failure).await;
                });
                CancelOutcome::Dequeued
            }
            None => CancelOutcome::NotInProgress,
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
        if state.lanes.is_empty() && state.last_activity.elapsed() >= ttl {
            state.retired = true;
        }
        state.retired
    }

    /// Tells analytics how the run ended.
    fn report_finish(&self, ctx: &UserExecutionContext, outcome: &RunOutcome, duration: Duration) {
        let Some(analytics) = &self.deps.analytics else {
            return;
        };
        let finished_at = self.deps.clock.now();
        analytics.run_finished(FinishedRun {
            user_id: ctx.user_id().clone(),
            thread_id: ctx.thread_id().clone(),
            run_id: ctx.run_id().clone(),
            agent: SUPERVISOR.to_owned(),
            model: self.deps.llm.model().to_owned(),
            status: outcome.status,
            error_code: outcome.error_code.clone(),
            started_at: finished_at - duration,
            finished_at,
        });
    }

    pub(crate) fn cancel_all(&self) {
        for stop in self.lock().running.values() {
            stop.stop(ErrorCode::Cancelled);
        }
    }

    fn lock(&self) -> MutexGuard<'_, EngineState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn spawn(self: &Arc<Self>, run: StartedRun) {
        let engine = Arc::clone(self);
        self.admission
            .tracker
            .spawn(async move { engine.execute(run).await });
    }

    async fn execute(self: Arc<Self>, run: StartedRun) -> RunStatus {
        // Let the messages that arrived with this one be acknowledged before
        // this run's pipeline takes the worker: a new task would otherwise run
        // first (tokio's LIFO slot) and a burst's last `agent_started` waits
        // for every earlier pipeline.
        tokio::task::yield_now().await;
        let events = RunEvents::new(Arc::clone(&self.log), run.stop.clone());
        let span = crate::trace::invoke_agent(&run.ctx, SUPERVISOR);
        let result = match run.preset {
            Some(failure) => Err(failure),
            None => tokio::select! {
                biased;
                failure = run.stop.stopped() => Err(failure),
                result = run_pipeline(&self.deps, &self.store, &events, &self.config, &self.budget, &run.ctx, run.start)
                    .instrument(span.clone()) => result,
            },
        };
        if let Err(failure) = &result {
            crate::trace::record_error(&span, failure.code);
        }
        let result = match result {
            Ok(Finish::Answer(answer)) => Ok(answer),
            Ok(Finish::Paused {
                agent,
                input,
                calls,
                state,
            }) => {
                let point = approval::PausePoint {
                    agent,
                    input,
                    calls,
                    state,
                };
                match self.pause(&run.ctx, point).await {
                    Ok(()) => {
                        // A cancel or interrupt that came while it paused.
                        if let Some(failure) = run.stop.already() {
                            self.end_paused_later(run.ctx.run_id().clone(), failure);
                        }
                        return RunStatus::WaitingApproval;
                    }
                    Err(failure) => Err(failure),
                }
            }
            Err(failure) => Err(failure),
        };
        let status = self.finish(&run.ctx, result, &events, run.started).await;
        self.pass_lane_on(&run.ctx, run.permit);
        status
    }

    /// Stores the outcome and the terminal event in one transaction, so no
    /// crash leaves a run ended without its end in the log, and a client that
    /// hears the end finds the run finished everywhere. A run whose writes may
    /// be lost (the store failed while it ran) or whose end could not be
    /// stored ends `storage_failed`, never as a success.
    async fn finish(
        &self,
        ctx: &UserExecutionContext,
        result: Result<String, RunFailure>,
        events: &RunEvents,
        started: Instant,
    ) -> RunStatus {
        let result = match result {
            Ok(_) if events.writes_failed() => Err(writes_lost()),
            other => other,
        };
        let outcome = outcome_of(ctx, &result, &events.streamed_text());
        let terminal = match result {
            Ok(answer) => RunEventKind::AgentCompleted {
                agent: SUPERVISOR.to_owned(),
                answer,
                duration_ms: elapsed_ms(started),
            },
            Err(failure) => failure_event(&failure),
        };
        let Err(error) = self.log.end(ctx, terminal, &outcome).await else {
            self.record_finish(ctx, &outcome, started.elapsed());
            return outcome.status;
        };
        tracing::error!(%error, run_id = %ctx.run_id(), "could not store the run's end");
        let failure = writes_lost();
        let outcome = outcome_of(ctx, &Err(failure.clone()), "");
        self.record_finish(ctx, &outcome, started.elapsed());
        self.end_once_writable(ctx, &outcome, failure_event(&failure))
            .await;
        outcome.status
    }

    /// The run's end could not be stored: its connections hear of it now
    /// (`seq` 0), and its end is stored once the store takes writes again,
    /// so no run stays `running`. If the server stops first, recovery at the
    /// next start ends the run `interrupted`.
    async fn end_once_writable(
        &self,
        ctx: &UserExecutionContext,
        outcome: &RunOutcome,
        terminal: RunEventKind,
    ) {
        self.log.notify_unstored(ctx, terminal.clone());
        while self.admission.accepting.load(Ordering::Acquire) {
            tokio::time::sleep(STORE_RETRY).await;
            if self.store.ping().await.is_ok()
                && self.log.end(ctx, terminal.clone(), outcome).await.is_ok()
            {
                return;
            }
        }
        tracing::warn!(run_id = %ctx.run_id(), "shutting down before the run's end could be stored");
    }

    /// Ends a run that never started (cancelled while queued, or its turn
    /// came during shutdown).
    async fn end_unstarted(&self, ctx: &UserExecutionContext, failure: RunFailure) {
        let events = RunEvents::new(Arc::clone(&self.log), StopSignal::default());
        self.finish(ctx, Err(failure), &events, Instant::now())
            .await;
    }

    /// The run's thread goes to the next waiting run (which inherits the
    /// finished run's global slot), or becomes free.
    fn pass_lane_on(self: &Arc<Self>, ctx: &UserExecutionContext, permit: OwnedSemaphorePermit) {
        let mut state = self.lock();
        state.running.remove(ctx.run_id());
        state.last_activity = Instant::now();
        let thread_id = ctx.thread_id();
        let Some(next) = state
            .lanes
            .get_mut(thread_id)
            .and_then(|lane| lane.waiting.pop_front())
        else {
            state.lanes.remove(thread_id);
            return;
        };
        let stop = StopSignal::default();
        state
            .running
            .insert(next.ctx.run_id().clone(), stop.clone());
        if let Some(lane) = state.lanes.get_mut(thread_id) {
            lane.running = next.ctx.run_id().clone();
        }
        drop(state);
        let preset = self.start_queued(&next);
        self.spawn(StartedRun {
            ctx: next.ctx,
            start: Start::Message(next.content),
            stop,
            permit,
            started: Instant::now(),
            preset,
        });
    }

    /// Marks a queued run as started and announces it; during shutdown it
    /// ends as `interrupted` instead.
    fn start_queued(&self, next: &PendingRun) -> Option<RunFailure> {
        if !self.admission.accepting.load(Ordering::Acquire) {
            return Some(RunFailure::new(
                ErrorCode::Interrupted,
                "the server shut down before the run's turn came",
            ));
        }
        let started = self
            .store
            .start_queued_run(next.ctx.run_id())
            .and_then(|()| self.announce_start(&next.ctx, next.client_request_id.clone()));
        started.err().map(|error| {
            tracing::error!(%error, "could not start a queued run");
            RunFailure::new(ErrorCode::StorageFailed, "the run could not be started")
        })
    }

    fn record_finish(&self, ctx: &UserExecutionContext, outcome: &RunOutcome, duration: Duration) {
        let status = outcome.status;
        self.report_finish(ctx, outcome, duration);
        let mut state = self.lock();
        record_metrics(status);
        let stats = &mut state.stats;
        match status {
            RunStatus::Completed => stats.runs_completed += 1,
            RunStatus::Cancelled => stats.runs_cancelled += 1,
            RunStatus::Interrupted => stats.runs_interrupted += 1,
            RunStatus::TimedOut => stats.runs_timed_out += 1,
            RunStatus::Rejected => stats.runs_rejected += 1,
            RunStatus::Failed
            | RunStatus::Running
            | RunStatus::Queued
            | RunStatus::WaitingApproval => stats.runs_failed += 1,
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
}

/// Run counters for `/metrics`: completed, or failed by reason (the status).
fn record_metrics(status: RunStatus) {
    if status == RunStatus::Completed {
        metrics::counter!("cordon_runs_completed_total").increment(1);
    } else {
        metrics::counter!("cordon_runs_failed_total", "reason" => status.as_str()).increment(1);
    }
}

/// How a run ended, as stored. A stopped run keeps the answer text it had
/// streamed so far.
fn outcome_of(
    ctx: &UserExecutionContext,
    result: &Result<String, RunFailure>,
    streamed: &str,
) -> RunOutcome {
    match result {
        Ok(answer) => RunOutcome {
            status: RunStatus::Completed,
            error_code: None,
            error_message: None,
            answer: Some(new_message(ctx, Role::Assistant, answer.clone())),
        },
        Err(failure) => {
            let status = RunStatus::for_error(failure.code);
            let partial = matches!(status, RunStatus::Cancelled | RunStatus::Interrupted)
                && !streamed.trim().is_empty();
            RunOutcome {
                status,
                error_code: Some(failure.code.as_str().to_owned()),
                error_message: Some(failure.message.clone()),
                answer: partial.then(|| new_message(ctx, Role::Assistant, streamed.to_owned())),
            }
        }
    }
}

fn writes_lost() -> RunFailure {
    RunFailure::new(
        ErrorCode::StorageFailed,
        "the run's events or outcome could not be stored",
    )
}

pub(crate) fn failure_event(failure: &RunFailure) -> RunEventKind {
    RunEventKind::AgentError {
        agent: SUPERVISOR.to_owned(),
        code: failure.code,
        message: failure.message.clone(),
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
