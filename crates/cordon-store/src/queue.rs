//! `WriteQueue`: a store's handle on its writer thread: queueing in order, acknowledged writes, barriers, admission and the probe while writes fail.

use std::sync::Arc;

use cordon_core::{
    Committed, EventSink, LlmCallRecord, Message, RunEvent, RunId, RunOutcome, RunRecord,
    StoreError, Thread, User, UserId,
};
use tokio::sync::{mpsc, oneshot};

use crate::health::WriteHealth;
use crate::visibility::{self, Ticketed, Tickets};
use crate::writer::{self, Ack, EventRow, PauseRow, WriteBackend, WriteOp};

pub struct WriteQueue {
    /// The writer thread ends when the store (and so this sender) is dropped.
    writes: mpsc::UnboundedSender<Ticketed>,
    /// Numbers what is sent, so a read waits only for its own user's writes.
    tickets: Tickets,
    health: Arc<WriteHealth>,
}

impl WriteQueue {
    /// Starts the writer thread over `backend`; at most `capacity` writes are queued.
    pub fn start(backend: impl WriteBackend, capacity: usize) -> Result<Self, StoreError> {
        let health = Arc::new(WriteHealth::new(capacity));
        // Unbounded channel, bounded queue: `WriteHealth` counts what is
        // queued, admission stops at half the bound and runs in progress wait
        // for room, so appends stay synchronous (taken under the log's lock).
        let (writes, queue) = mpsc::unbounded_channel();
        let (tickets, visible) = visibility::tickets();
        let writer_health = Arc::clone(&health);
        std::thread::Builder::new()
            .name("cordon-store-writer".into())
            .spawn(move || writer::run(backend, queue, writer_health, visible))
            .map_err(|error| StoreError::Backend(format!("could not start the writer: {error}")))?;
        Ok(Self {
            writes,
            tickets,
            health,
        })
    }

    /// Queues a write; while writes are failing it is refused at once, and a
    /// probe is queued to find out whether they work again.
    pub fn enqueue(&self, op: WriteOp) -> Result<(), StoreError> {
        if !matches!(op, WriteOp::Barrier(_) | WriteOp::Probe(_))
            && let Err(refusal) = self.health.check_failing()
        {
            self.queue_probe(None);
            return Err(refusal);
        }
        self.send(op)
    }

    /// Counted before it is sent: the writer may drain it before `send` returns.
    fn send(&self, op: WriteOp) -> Result<(), StoreError> {
        self.health.queued();
        self.tickets.send(op, &self.writes).inspect_err(|_| {
            self.health.drained(1);
        })
    }

    /// Queues the probe write unless one is queued already; `ack` hears how it went.
    fn queue_probe(&self, ack: Option<Ack>) -> bool {
        if !self.health.claim_probe() {
            return false;
        }
        let ack = ack.unwrap_or_else(|| oneshot::channel().0);
        if self.send(WriteOp::Probe(ack)).is_err() {
            self.health.probe_done();
        }
        true
    }

    /// While writes fail, tries a probe (or waits for the one queued) and
    /// answers whether writes work again; at once while they work.
    pub async fn probe_if_failing(&self) -> Result<(), StoreError> {
        if !self.health.is_failing() {
            return Ok(());
        }
        let (ack, done) = oneshot::channel();
        if self.queue_probe(Some(ack)) {
            done.await.map_err(|_| StoreError::Closed)??;
        } else {
            // Another probe is queued: it has settled once a barrier behind it is answered.
            self.barrier().await?;
        }
        self.health.check_failing()
    }

    /// Queues a write that carries an ack and waits until it is committed.
    pub async fn write(&self, make: impl FnOnce(Ack) -> WriteOp) -> Result<(), StoreError> {
        self.queue_acked(make)?.await
    }

    /// Queues a write that carries an ack; the answer resolves once it is committed.
    fn queue_acked(&self, make: impl FnOnce(Ack) -> WriteOp) -> Result<Committed, StoreError> {
        let (ack, done) = oneshot::channel();
        self.enqueue(make(ack))?;
        Ok(Box::pin(async move {
            done.await.map_err(|_| StoreError::Closed)?
        }))
    }

    /// Deletes each listed user's events up to the given `seq`; how many went.
    pub async fn prune(&self, floors: Vec<(String, i64)>) -> Result<u64, StoreError> {
        let (ack, done) = oneshot::channel();
        self.enqueue(WriteOp::PruneEvents(floors, ack))?;
        done.await.map_err(|_| StoreError::Closed)?
    }

    /// Waits until every write of this user queued so far is committed
    /// (read-your-writes); other users' queued writes are not waited for.
    ///
    /// Only reads of data written without waiting need it: run events (queued
    /// by `append_event`), threads (queued by `create_thread`; lookups take
    /// it only on a miss), runs (the engine reports `agent_started` before
    /// `begin_run` commits), the run's user message (queued with its run;
    /// searches take it always, history reads on a miss) and LLM usage.
    /// Users are written with an awaited commit before anyone learns of
    /// them, so their reads skip it. `last_event_seq` skips it too: it is read when a user's
    /// engine is (re)built, and an engine is only retired after
    /// `engine_idle_ttl` without activity, long after its events committed.
    pub async fn own_writes_settled(&self, user_id: &UserId) -> Result<(), StoreError> {
        self.tickets.settled_for(user_id.as_str()).await
    }

    /// Waits until every write queued so far, anyone's, is settled and its
    /// events published: for shutdown, probes and cross-user reads.
    pub async fn barrier(&self) -> Result<(), StoreError> {
        self.write(WriteOp::Barrier).await
    }

    /// Every write queued so far is committed, or the failure.
    pub async fn sync(&self) -> Result<(), StoreError> {
        self.barrier().await?;
        self.health.check_failing()
    }

    pub fn admit_writes(&self) -> Result<(), StoreError> {
        let admitted = self.health.admit();
        if admitted.is_err() && self.health.is_failing() {
            self.queue_probe(None);
        }
        admitted
    }

    pub async fn writable(&self) {
        self.health.room().await;
    }

    pub fn failure_epoch(&self) -> u64 {
        self.health.epoch()
    }
}

/// The writes of `Store`, the same for every database: each builds its
/// `WriteOp` and queues it (the `async` ones wait for their commit).
impl WriteQueue {
    pub async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        let user = user.clone();
        self.write(|ack| WriteOp::CreateUser(user, ack)).await
    }

    pub async fn revoke_tokens(&self, user_id: &UserId) -> Result<(), StoreError> {
        let id = user_id.as_str().to_owned();
        self.write(|ack| WriteOp::RevokeTokens(id, ack)).await
    }

    pub async fn put_secret(
        &self,
        user_id: &UserId,
        name: &str,
        sealed: Vec<u8>,
    ) -> Result<(), StoreError> {
        let (user_id, name) = (user_id.as_str().to_owned(), name.to_owned());
        self.write(|ack| WriteOp::PutSecret {
            user_id,
            name,
            sealed,
            ack,
        })
        .await
    }

    pub async fn delete_secret(&self, user_id: &UserId, name: &str) -> Result<(), StoreError> {
        let (user_id, name) = (user_id.as_str().to_owned(), name.to_owned());
        self.write(|ack| WriteOp::DeleteSecret { user_id, name, ack })
            .await
    }

    pub async fn set_admin(&self, user_id: &UserId, admin: bool) -> Result<(), StoreError> {
        let user_id = user_id.as_str().to_owned();
        self.write(|ack| WriteOp::SetAdmin {
            user_id,
            admin,
            ack,
        })
        .await
    }

    pub async fn put_budget(
        &self,
        user_id: &UserId,
        limits: Option<cordon_core::BudgetLimits>,
    ) -> Result<(), StoreError> {
        let user_id = user_id.as_str().to_owned();
        self.write(|ack| WriteOp::PutBudget {
            user_id,
            limits,
            ack,
        })
        .await
    }

    pub async fn put_pause(
        &self,
        user_id: &UserId,
        pause: &cordon_core::RunPause,
    ) -> Result<(), StoreError> {
        let (user_id, pause) = (user_id.as_str().to_owned(), PauseRow::new(pause));
        self.write(|ack| WriteOp::PutPause {
            user_id,
            pause,
            ack,
        })
        .await
    }

    pub async fn take_pause(&self, user_id: &UserId, run_id: &RunId) -> Result<(), StoreError> {
        let (user_id, run_id) = (user_id.as_str().to_owned(), run_id.as_str().to_owned());
        self.write(|ack| WriteOp::TakePause {
            user_id,
            run_id,
            ack,
        })
        .await
    }

    pub fn create_thread(&self, thread: &Thread) -> Result<(), StoreError> {
        self.enqueue(WriteOp::CreateThread(thread.clone()))
    }

    pub fn begin_run(&self, run: &RunRecord, message: Option<&Message>) -> Result<(), StoreError> {
        self.enqueue(WriteOp::BeginRun(run.clone(), message.cloned()))
    }

    pub fn start_queued_run(&self, user_id: &UserId, run_id: &RunId) -> Result<(), StoreError> {
        self.enqueue(WriteOp::StartQueuedRun {
            user_id: user_id.to_string(),
            run_id: run_id.to_string(),
        })
    }

    pub fn append_event(
        &self,
        user_id: &UserId,
        event: &RunEvent,
        payload: Arc<str>,
        subscriber: Arc<dyn EventSink>,
    ) -> Result<(), StoreError> {
        self.enqueue(WriteOp::Event(EventRow::new(
            user_id,
            event,
            payload,
            Some(subscriber),
        )))
    }

    /// Queues a run's end; the answer resolves once it is committed and its
    /// event published.
    pub fn end_run(
        &self,
        user_id: &UserId,
        event: &RunEvent,
        payload: Arc<str>,
        outcome: &RunOutcome,
        subscriber: Option<Arc<dyn EventSink>>,
    ) -> Result<Committed, StoreError> {
        let event = EventRow::new(user_id, event, payload, subscriber);
        let outcome = outcome.clone();
        self.queue_acked(|ack| WriteOp::EndRun {
            event,
            outcome,
            ack,
        })
    }

    pub fn record_llm_call(&self, user_id: &UserId, call: &LlmCallRecord) {
        let op = WriteOp::LlmCall {
            user_id: user_id.to_string(),
            call: call.clone(),
        };
        if self.enqueue(op).is_err() {
            tracing::error!("the store is closed; a model call's usage was not stored");
        }
    }

    /// A lookup of data written without waiting: read, and on a miss wait
    /// for the user's own queued writes and read again.
    pub async fn read_own<T, F, Fut>(
        &self,
        user_id: &UserId,
        read: F,
    ) -> Result<Option<T>, StoreError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<Option<T>, StoreError>>,
    {
        if let Some(found) = read().await? {
            return Ok(Some(found));
        }
        self.own_writes_settled(user_id).await?;
        read().await
    }
}
