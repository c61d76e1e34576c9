//! `ExecutionEngineFactory`: the one way to get a `UserExecutionEngine`, with every dependency injected.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use cordon_core::{
    AnalyticsSink, Clock, EventEncoder, EventSinks, LlmProvider, RunId, Store, StoreError,
    UserExecutionContext, UserId, UserStore,
};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::EngineConfig;
use crate::dispatcher::ToolDispatcher;
use crate::engine::{
    Accepted, Admission, ApprovalAnswer, ApprovalError, CancelOutcome, Resolved, RunRequest,
    SubmitError, UserExecutionEngine,
};
use crate::log::UserEventLog;
use crate::placement::{Claim, ForwardError, Placement, Solo};
use crate::recovery::end_runs_left_by_previous_owner;
use crate::registry::AgentRegistry;

/// How often paused runs whose approvals expired are looked for.
const APPROVAL_SWEEP: Duration = Duration::from_secs(1);

/// How often `hand_over` looks for users whose runs are over.
const HAND_OVER_POLL: Duration = Duration::from_millis(50);

/// Waits before asking again who owns a user whose owner just moved (it left,
/// or died and is being taken over); after the last, the owner is unavailable.
/// About 1.75 s in all: on a loaded machine a rolling restart's hand-over
/// outlasted the first 0.75 s once (CI), refusing a message it could have taken.
const OWNER_MOVED_PAUSES: [Duration; 5] = [
    Duration::ZERO,
    Duration::from_millis(50),
    Duration::from_millis(200),
    Duration::from_millis(500),
    Duration::from_millis(1000),
];

/// The shared, immutable dependencies every engine is built with.
#[derive(Clone)]
pub struct EngineDeps {
    pub registry: Arc<AgentRegistry>,
    pub llm: Arc<dyn LlmProvider>,
    pub tools: Arc<ToolDispatcher>,
    /// The unbound store: the factory binds it to each engine's user.
    pub store: Arc<dyn Store>,
    /// The wire form of events, computed once per event and stored as is.
    pub encoder: Arc<dyn EventEncoder>,
    /// What budgets (and model calls' times) count by.
    pub clock: Arc<dyn Clock>,
    /// Where each finished run and model call is reported (`--clickhouse-url`);
    /// without one no record is even built.
    pub analytics: Option<Arc<dyn AnalyticsSink>>,
}

#[derive(Debug, thiserror::Error)]
pub enum FactoryError {
    #[error("could not read the user's event sequence: {0}")]
    Store(#[from] StoreError),
}

/// Why `submit` did not accept a message.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Factory(#[from] FactoryError),
    #[error(transparent)]
    Submit(SubmitError),
}

/// Gauges and counters for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FactoryCounts {
    pub active_engines: usize,
    pub active_runs: usize,
    pub engines_created: u64,
    pub engines_cleaned: u64,
}

/// Where a user's engine is.
pub enum Located {
    Here(Arc<UserExecutionEngine>),
    /// On the live instance of that name.
    Elsewhere(String),
}

/// What this instance decided for a user it owns, or (`Err`) the name of
/// the live instance that owns them.
pub type Owned<T> = Result<Result<T, String>, StartError>;

/// One per process. Builds each user's engine on first use (on the instance
/// that owns the user), hands the same engine to that user's later requests,
/// and drops it once idle.
pub struct ExecutionEngineFactory {
    deps: EngineDeps,
    sinks: Arc<dyn EventSinks>,
    config: Arc<EngineConfig>,
    admission: Arc<Admission>,
    placement: Arc<dyn Placement>,
    engines: Mutex<HashMap<UserId, Arc<UserExecutionEngine>>>,
    /// One claim-and-build at a time per user.
    builds: Mutex<HashMap<UserId, Arc<tokio::sync::Mutex<()>>>>,
    /// Set by `hand_over`: no new user is claimed here.
    handing_over: AtomicBool,
    engines_created: AtomicU64,
    engines_cleaned: AtomicU64,
}

impl ExecutionEngineFactory {
    pub fn new(deps: EngineDeps, sinks: Arc<dyn EventSinks>, config: EngineConfig) -> Self {
        let admission = Admission {
            global: Arc::new(Semaphore::new(config.max_runs_global)),
            accepting: AtomicBool::new(true),
            tracker: TaskTracker::new(),
        };
        Self {
            deps,
            sinks,
            config: Arc::new(config),
            admission: Arc::new(admission),
            placement: Arc::new(Solo),
            engines: Mutex::new(HashMap::new()),
            builds: Mutex::new(HashMap::new()),
            handing_over: AtomicBool::new(false),
            engines_created: AtomicU64::new(0),
            engines_cleaned: AtomicU64::new(0),
        }
    }

    /// Several instances: users are placed by `placement` instead of all here.
    pub fn with_placement(mut self, placement: Arc<dyn Placement>) -> Self {
        self.placement = placement;
        self
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The engine of the context's user if this instance owns the user.
    pub async fn engine_for(
        &self,
        ctx: &UserExecutionContext,
    ) -> Result<Option<Arc<UserExecutionEngine>>, FactoryError> {
        match self.locate(ctx.user_id()).await? {
            Located::Here(engine) => Ok(Some(engine)),
            Located::Elsewhere(_) => Ok(None),
        }
    }

    /// Builds the user's engine ahead of their first message if this
    /// instance owns the user (or takes them over). A socket opening means
    /// messages are coming; building here moves the store read of the user's
    /// last `seq` off the path to `agent_started`.
    pub async fn prepare(&self, user_id: &UserId) -> Result<(), FactoryError> {
        self.locate(user_id).await.map(drop)
    }

    /// The user's engine if this instance owns the user, built on first use;
    /// else the owner. Taking a user over from a dead instance first ends the
    /// runs it left, so the engine continues `seq` after their ends.
    pub async fn locate(&self, user_id: &UserId) -> Result<Located, FactoryError> {
        if let Some(engine) = self.existing(user_id) {
            return Ok(Located::Here(engine));
        }
        let build = Arc::clone(self.lock_builds().entry(user_id.clone()).or_default());
        let located = {
            let _one_at_a_time = build.lock().await;
            self.claim_and_build(user_id).await
        };
        let mut builds = self.lock_builds();
        // One reference is the map's, one ours: no other build waits on it.
        if Arc::strong_count(&build) <= 2 {
            builds.remove(user_id);
        }
        located
    }

    async fn claim_and_build(&self, user_id: &UserId) -> Result<Located, FactoryError> {
        if let Some(engine) = self.existing(user_id) {
            return Ok(Located::Here(engine));
        }
        if self.handing_over.load(Ordering::Acquire) {
            // Leaving: whoever claims the user next is another instance.
            return Ok(Located::Elsewhere(String::new()));
        }
        match self.placement.claim(user_id).await? {
            Claim::Elsewhere(owner) => return Ok(Located::Elsewhere(owner)),
            Claim::Here { fresh: true } => {
                let sink = self.sinks.for_user(user_id);
                end_runs_left_by_previous_owner(
                    &self.deps.store,
                    self.deps.encoder.as_ref(),
                    user_id,
                    sink,
                )
                .await?;
            }
            Claim::Here { fresh: false } => {}
        }
        self.build(user_id).await.map(Located::Here)
    }

    async fn build(&self, user_id: &UserId) -> Result<Arc<UserExecutionEngine>, FactoryError> {
        let last_seq = self.deps.store.last_event_seq(user_id).await?;
        let store = UserStore::new(user_id.clone(), Arc::clone(&self.deps.store));
        let log = UserEventLog::new(
            store.clone(),
            Arc::clone(&self.deps.encoder),
            self.sinks.for_user(user_id),
            last_seq,
        );
        let engine = Arc::new(UserExecutionEngine::new(
            self.deps.clone(),
            store,
            Arc::clone(&self.config),
            log,
            Arc::clone(&self.admission),
        ));
        engine.restore_pauses().await?;
        let mut engines = self.lock();
        // Another request of the same user may have won the race; keep one engine.
        let engine = engines
            .entry(user_id.clone())
            .or_insert_with(|| {
                self.engines_created.fetch_add(1, Ordering::Relaxed);
                engine
            })
            .clone();
        Ok(engine)
    }

    /// Hands a message to the user's engine, here or on the owning instance.
    pub async fn submit(&self, request: RunRequest) -> Result<Accepted, StartError> {
        let request = &request;
        self.at_owner(
            "message",
            || self.submit_here(request),
            |owner| async move {
                let answer = self.placement.submit_at(&owner, request.clone()).await?;
                Ok(answer.map_err(StartError::Submit))
            },
        )
        .await
    }

    /// Hands a message to the user's engine if this instance owns the user
    /// (rebuilding the engine if the idle cleanup retired it between lookup
    /// and admission); else names the owner.
    pub async fn submit_here(&self, request: &RunRequest) -> Owned<Accepted> {
        loop {
            let engine = match self.locate(request.ctx.user_id()).await? {
                Located::Here(engine) => engine,
                Located::Elsewhere(owner) => return Ok(Err(owner)),
            };
            match engine.submit(request.clone()) {
                Err(SubmitError::Retired) => {
                    self.lock().retain(|_, live| !Arc::ptr_eq(live, &engine));
                }
                other => return other.map(Ok).map_err(StartError::Submit),
            }
        }
    }

    /// Stops one of the user's runs, here or on the owning instance.
    pub async fn cancel(
        &self,
        user_id: &UserId,
        run_id: &RunId,
    ) -> Result<CancelOutcome, StartError> {
        self.at_owner(
            "cancel",
            || self.cancel_here(user_id, run_id),
            |owner| async move {
                Ok(Ok(self
                    .placement
                    .cancel_at(&owner, user_id, run_id)
                    .await?))
            },
        )
        .await
    }

    /// Stops one of the user's runs if this instance owns the user; else names the owner.
    pub async fn cancel_here(&self, user_id: &UserId, run_id: &RunId) -> Owned<CancelOutcome> {
        Ok(match self.locate(user_id).await? {
            Located::Here(engine) => Ok(engine.cancel(run_id)),
            Located::Elsewhere(owner) => Err(owner),
        })
    }

    /// A person's answer to a call that waits for approval, here or on the
    /// owning instance.
    pub async fn answer(
        &self,
        user_id: &UserId,
        answer: &ApprovalAnswer,
    ) -> Result<Result<Resolved, ApprovalError>, StartError> {
        self.at_owner(
            "approval",
            || self.answer_here(user_id, answer),
            |owner| async move {
                Ok(Ok(self
                    .placement
                    .answer_at(&owner, user_id, answer)
                    .await?))
            },
        )
        .await
    }

    /// Takes an answer if this instance owns the user; else names the owner.
    pub async fn answer_here(
        &self,
        user_id: &UserId,
        answer: &ApprovalAnswer,
    ) -> Owned<Result<Resolved, ApprovalError>> {
        Ok(match self.locate(user_id).await? {
            Located::Here(engine) => Ok(engine.answer(answer.clone()).await),
            Located::Elsewhere(owner) => Err(owner),
        })
    }

    /// Every [`APPROVAL_SWEEP`] until `stop`: ends the paused runs whose
    /// approvals expired, of the users this instance owns (each instance
    /// sweeps its own).
    pub fn spawn_approval_expiry(self: &Arc<Self>, stop: CancellationToken) -> JoinHandle<()> {
        let factory = Arc::clone(self);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(APPROVAL_SWEEP);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    _ = ticks.tick() => factory.expire_approvals().await,
                }
            }
        })
    }

    async fn expire_approvals(&self) {
        let expired = match self.deps.store.expired_pauses(cordon_core::now()).await {
            Ok(expired) => expired,
            Err(error) => return tracing::warn!(%error, "could not look for expired approvals"),
        };
        for (user_id, run_id) in expired {
            if let Ok(Located::Here(engine)) = self.locate(&user_id).await {
                engine.expire(&run_id).await;
            }
        }
    }

    /// Answers `here` if this instance owns the user, else asks the owner
    /// with `there`, asking again (after a pause) while ownership moves.
    async fn at_owner<T, Here, HereAnswer, There, ThereAnswer>(
        &self,
        what: &str,
        mut here: Here,
        mut there: There,
    ) -> Result<T, StartError>
    where
        Here: FnMut() -> HereAnswer,
        HereAnswer: Future<Output = Owned<T>>,
        There: FnMut(String) -> ThereAnswer,
        ThereAnswer: Future<Output = Result<Result<T, StartError>, ForwardError>>,
    {
        for pause in OWNER_MOVED_PAUSES {
            pause_unless_zero(pause).await;
            let owner = match here().await? {
                Ok(answer) => return Ok(answer),
                Err(owner) => owner,
            };
            match there(owner.clone()).await {
                Ok(answer) => return answer,
                Err(ForwardError::Moved) => {}
                Err(ForwardError::Unreachable(error)) => {
                    tracing::warn!(%error, owner, "could not forward a {what} to its owner");
                    break;
                }
            }
        }
        Err(StartError::Submit(SubmitError::OwnerUnavailable))
    }

    /// The user's engine if one is live (e.g. to cancel a run); never builds one.
    pub fn existing(&self, user_id: &UserId) -> Option<Arc<UserExecutionEngine>> {
        self.lock().get(user_id).cloned()
    }

    /// Drops engines idle for longer than the configured TTL; returns how many.
    pub fn cleanup_idle(&self) -> usize {
        let ttl = self.config.engine_idle_ttl;
        let mut engines = self.lock();
        let before = engines.len();
        engines.retain(|_, engine| !engine.retire_if_idle(ttl));
        let cleaned = before - engines.len();
        self.engines_cleaned
            .fetch_add(cleaned as u64, Ordering::Relaxed);
        cleaned
    }

    /// Runs `cleanup_idle` every `cleanup_interval` until `stop` fires.
    pub fn spawn_cleanup(self: &Arc<Self>, stop: CancellationToken) -> JoinHandle<()> {
        let factory = Arc::clone(self);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(factory.config.cleanup_interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    _ = ticks.tick() => {
                        let cleaned = factory.cleanup_idle();
                        if cleaned > 0 {
                            tracing::debug!(cleaned, "dropped idle engines");
                        }
                    }
                }
            }
        })
    }

    pub fn counts(&self) -> FactoryCounts {
        FactoryCounts {
            active_engines: self.lock().len(),
            active_runs: self.config.max_runs_global - self.admission.global.available_permits(),
            engines_created: self.engines_created.load(Ordering::Relaxed),
            engines_cleaned: self.engines_cleaned.load(Ordering::Relaxed),
        }
    }

    /// Several instances, on the way out: claims no new user, gives up each
    /// user as soon as their runs are over (their writes committed first, so
    /// the next owner continues their `seq`), and after `grace` shuts down
    /// like `shutdown`. Users keep sending meanwhile: a message for a user
    /// still here runs here; one for a user given up runs on their new owner.
    pub async fn hand_over(&self, grace: Duration) {
        self.handing_over.store(true, Ordering::Release);
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            self.release_idle().await;
            if self.lock().is_empty() || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(HAND_OVER_POLL).await;
        }
        self.shutdown(Duration::ZERO).await;
        self.release_idle().await;
    }

    async fn release_idle(&self) {
        let retired: Vec<UserId> = {
            let mut engines = self.lock();
            let idle: Vec<UserId> = engines
                .iter()
                .filter(|(_, engine)| engine.retire_if_idle(Duration::ZERO))
                .map(|(user_id, _)| user_id.clone())
                .collect();
            engines.retain(|user_id, _| !idle.contains(user_id));
            idle
        };
        if retired.is_empty() {
            return;
        }
        if let Err(error) = self.deps.store.sync().await {
            // Their last events may not be stored: keep them, the lock ends with the process.
            return tracing::error!(%error, "could not commit before giving users up");
        }
        for user_id in retired {
            if let Err(error) = self.placement.release(&user_id).await {
                tracing::warn!(%error, %user_id, "could not give a user up");
            }
        }
    }

    /// Stops admitting runs, lets running ones finish for up to `grace`, then
    /// cancels the rest and waits for them to record their end.
    pub async fn shutdown(&self, grace: Duration) {
        self.admission.accepting.store(false, Ordering::Release);
        self.admission.tracker.close();
        if tokio::time::timeout(grace, self.admission.tracker.wait())
            .await
            .is_ok()
        {
            return;
        }
        tracing::warn!("grace period over; cancelling the remaining runs");
        for engine in self.lock().values() {
            engine.cancel_all();
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), self.admission.tracker.wait()).await;
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<UserId, Arc<UserExecutionEngine>>> {
        self.engines.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_builds(&self) -> MutexGuard<'_, HashMap<UserId, Arc<tokio::sync::Mutex<()>>>> {
        self.builds.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The first try goes at once, without a trip through the timer.
async fn pause_unless_zero(pause: Duration) {
    if !pause.is_zero() {
        tokio::time::sleep(pause).await;
    }
}
