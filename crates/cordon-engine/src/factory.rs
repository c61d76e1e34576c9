//! `ExecutionEngineFactory`: the one way to get a `UserExecutionEngine`, with every dependency injected.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use cordon_core::{
    EventEncoder, EventSinks, LlmProvider, Store, StoreError, UserExecutionContext, UserId,
    UserStore,
};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::EngineConfig;
use crate::dispatcher::ToolDispatcher;
use crate::engine::{Accepted, Admission, RunRequest, SubmitError, UserExecutionEngine};
use crate::log::UserEventLog;
use crate::registry::AgentRegistry;

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

/// One per process. Builds each user's engine on first use, hands the same
/// engine to that user's later requests, and drops it once idle.
pub struct ExecutionEngineFactory {
    deps: EngineDeps,
    sinks: Arc<dyn EventSinks>,
    config: Arc<EngineConfig>,
    admission: Arc<Admission>,
    engines: Mutex<HashMap<UserId, Arc<UserExecutionEngine>>>,
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
            engines: Mutex::new(HashMap::new()),
            engines_created: AtomicU64::new(0),
            engines_cleaned: AtomicU64::new(0),
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The engine of the context's user, built with the user's own sink on first use.
    pub async fn engine_for(
        &self,
        ctx: &UserExecutionContext,
    ) -> Result<Arc<UserExecutionEngine>, FactoryError> {
        self.engine_of(ctx.user_id()).await
    }

    /// Builds the user's engine ahead of their first message. A socket opening
    /// means messages are coming; building here moves the store read of the
    /// user's last `seq` off the path to `agent_started`.
    pub async fn prepare(&self, user_id: &UserId) -> Result<(), FactoryError> {
        self.engine_of(user_id).await.map(drop)
    }

    async fn engine_of(&self, user_id: &UserId) -> Result<Arc<UserExecutionEngine>, FactoryError> {
        if let Some(engine) = self.existing(user_id) {
            return Ok(engine);
        }
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

    /// Hands a message to the user's engine, rebuilding the engine if the
    /// idle cleanup retired it between lookup and admission.
    pub async fn submit(&self, request: RunRequest) -> Result<Accepted, StartError> {
        loop {
            let engine = self.engine_for(&request.ctx).await?;
            match engine.submit(request.clone()) {
                Err(SubmitError::Retired) => {
                    self.lock().retain(|_, live| !Arc::ptr_eq(live, &engine));
                }
                other => return other.map_err(StartError::Submit),
            }
        }
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
}
