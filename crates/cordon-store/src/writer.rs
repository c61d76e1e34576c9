//! The single writer: a dedicated thread that applies queued writes in group-committed transactions, in order, through a storage backend.
//!
//! What is stored where is the backend's ([`WriteBackend`]: SQLite's in
//! `sqlite::writes`, PostgreSQL's in `postgres::writes`); the order, the
//! batching, the acknowledgements, the failure handling and the publishing
//! of committed events are this module's, the same for every backend.

use std::sync::Arc;

use cordon_core::{
    EventSink, LlmCallRecord, Message, RunOutcome, RunRecord, StoreError, Thread, User,
};
use tokio::sync::{mpsc, oneshot};

use crate::health::WriteHealth;
use crate::visibility::{Ticketed, Visible};

/// Most writes folded into one transaction.
const MAX_BATCH: usize = 1024;

pub type Ack = oneshot::Sender<Result<(), StoreError>>;

/// One queued write. Variants with an `ack` are awaited by their caller.
pub enum WriteOp {
    CreateUser(User, Ack),
    /// Bumps the user's token generation (by id).
    RevokeTokens(String, Ack),
    /// Stores (or replaces) a user's sealed secret.
    PutSecret {
        user_id: String,
        name: String,
        sealed: Vec<u8>,
        ack: Ack,
    },
    DeleteSecret {
        user_id: String,
        name: String,
        ack: Ack,
    },
    /// Sets or clears a user's `admin` flag.
    SetAdmin {
        user_id: String,
        admin: bool,
        ack: Ack,
    },
    /// Stores the user's own budget limits, or with `None` deletes them.
    PutBudget {
        user_id: String,
        limits: Option<cordon_core::BudgetLimits>,
        ack: Ack,
    },
    /// Stores (or replaces) a run's pause and marks it `waiting_approval`.
    PutPause {
        user_id: String,
        pause: PauseRow,
        ack: Ack,
    },
    /// Deletes a run's pause and marks it `running` again.
    TakePause {
        user_id: String,
        run_id: String,
        ack: Ack,
    },
    /// Not acknowledged: reads of threads wait on the queue instead.
    CreateThread(Thread),
    /// Not acknowledged: reads of runs wait on the queue instead.
    BeginRun(RunRecord, Option<Message>),
    /// A queued run's turn came: `queued` becomes `running`.
    StartQueuedRun {
        user_id: String,
        run_id: String,
    },
    /// Published to the row's subscriber once committed.
    Event(EventRow),
    /// A run's end: its terminal event and its outcome, in one transaction.
    /// The event is published like any other, then `ack` is answered.
    EndRun {
        event: EventRow,
        outcome: RunOutcome,
        ack: Ack,
    },
    /// Deletes each listed user's events up to the given `seq`; answers how many.
    PruneEvents(Vec<(String, i64)>, oneshot::Sender<Result<u64, StoreError>>),
    /// One model call's usage; not acknowledged, like events.
    LlmCall {
        user_id: String,
        call: LlmCallRecord,
    },
    /// Acknowledged once everything queued before it is committed.
    Barrier(Ack),
    /// A small real write, tried while writes are failing: once it commits,
    /// the store takes writes again.
    Probe(Ack),
}

impl WriteOp {
    /// Whose write it is: that user's reads wait for it (`visibility`).
    pub fn user_id(&self) -> Option<&str> {
        match self {
            WriteOp::CreateUser(user, _) => Some(user.id.as_str()),
            WriteOp::RevokeTokens(user_id, _)
            | WriteOp::PutSecret { user_id, .. }
            | WriteOp::DeleteSecret { user_id, .. }
            | WriteOp::SetAdmin { user_id, .. }
            | WriteOp::PutBudget { user_id, .. }
            | WriteOp::PutPause { user_id, .. }
            | WriteOp::TakePause { user_id, .. }
            | WriteOp::StartQueuedRun { user_id, .. }
            | WriteOp::LlmCall { user_id, .. } => Some(user_id),
            WriteOp::CreateThread(thread) => Some(thread.user_id.as_str()),
            WriteOp::BeginRun(run, _) => Some(run.user_id.as_str()),
            WriteOp::Event(row) | WriteOp::EndRun { event: row, .. } => Some(&row.user_id),
            // Pruning removes what nobody reads any more; barriers and
            // probes belong to nobody.
            WriteOp::PruneEvents(..) | WriteOp::Barrier(_) | WriteOp::Probe(_) => None,
        }
    }
}

/// A run's pause as its row stores it.
pub struct PauseRow {
    pub run_id: String,
    pub thread_id: String,
    /// The engine's checkpoint, as JSON text.
    pub state: String,
    pub expires_at: i64,
}

impl PauseRow {
    pub fn new(pause: &cordon_core::RunPause) -> Self {
        Self {
            run_id: pause.run_id.as_str().to_owned(),
            thread_id: pause.thread_id.as_str().to_owned(),
            state: pause.state.to_string(),
            expires_at: crate::convert::to_micros(pause.expires_at),
        }
    }
}

pub struct EventRow {
    pub user_id: String,
    pub seq: i64,
    pub run_id: String,
    pub event_type: &'static str,
    pub ts: i64,
    pub payload: Arc<str>,
    /// Who hears of the event once it is committed (none for recovery's events).
    pub subscriber: Option<Arc<dyn EventSink>>,
}

impl EventRow {
    pub fn new(
        user_id: &cordon_core::UserId,
        event: &cordon_core::RunEvent,
        payload: Arc<str>,
        subscriber: Option<Arc<dyn EventSink>>,
    ) -> Self {
        Self {
            user_id: user_id.to_string(),
            seq: crate::convert::seq_param(event.seq),
            run_id: event.run_id.to_string(),
            event_type: event.kind.type_name(),
            ts: crate::convert::to_micros(event.ts),
            payload,
            subscriber,
        }
    }
}

/// A storage engine, as the writer drives it.
pub trait WriteBackend: Send + 'static {
    /// Applies `batch` in one transaction: one result per write (`Err` for a
    /// write refused on its own, e.g. a taken username), or why the whole
    /// batch failed and was rolled back.
    fn commit(&mut self, batch: &[WriteOp]) -> Result<Vec<Result<u64, StoreError>>, String>;
    /// One small real write in a transaction of its own, tried while writes
    /// are failing: once it commits, the store takes writes again.
    fn probe(&mut self) -> Result<(), StoreError>;
    /// After every batch, committed or not.
    fn after_batch(&mut self) {}
}

/// Drains the queue until every sender is gone, committing one batch at a
/// time; runs on its own thread (it blocks).
pub fn run(
    mut backend: impl WriteBackend,
    mut queue: mpsc::UnboundedReceiver<Ticketed>,
    health: Arc<WriteHealth>,
    visible: Visible,
) {
    let Some(publisher) = Publisher::start() else {
        tracing::error!("could not start the event publisher; the store takes no writes");
        return;
    };
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = queue.blocking_recv() {
        let mut last_ticket = first.ticket;
        batch.push(first.op);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(next) => {
                    last_ticket = next.ticket;
                    batch.push(next.op);
                }
                Err(_) => break,
            }
        }
        let count = batch.len();
        let probed = batch.iter().any(|op| matches!(op, WriteOp::Probe(_)));
        let mut settled = Settled::default();
        if health.is_failing() {
            probe_then_refuse(&mut backend, &mut batch, &health, &mut settled);
        }
        if !batch.is_empty() {
            commit_batch(&mut backend, &mut batch, &health, &mut settled);
        }
        // Readable now: reads need the commit, not the publishing.
        visible.through(last_ticket);
        publisher.hand_over(settled);
        backend.after_batch();
        if probed {
            health.probe_done();
        }
        health.drained(count);
    }
}

/// What the publisher does with a batch, in queue order.
enum Settle {
    /// A committed (or failed) event, for its subscriber.
    Event(EventRow, Result<u64, StoreError>),
    /// A run's end: its event is published, then its writer hears how it went.
    Ended(EventRow, Ack, Result<u64, StoreError>),
    /// A barrier, answered once every event before it is published: after a
    /// `sync`, the events it waited for have reached their subscribers (so
    /// shutdown closes sockets only after their last events are queued).
    Barrier(Ack, Result<(), StoreError>),
}

type Settled = Vec<Settle>;

/// Publishes committed events on a thread of its own, batch after batch in
/// commit order, so the writer starts its next transaction instead of
/// fanning the last one out to sockets (that wait is every event's latency).
struct Publisher {
    batches: std::sync::mpsc::Sender<Settled>,
}

impl Publisher {
    /// Ends when the writer drops it.
    fn start() -> Option<Self> {
        let (batches, settled) = std::sync::mpsc::channel::<Settled>();
        std::thread::Builder::new()
            .name("cordon-store-publisher".into())
            .spawn(move || {
                for batch in settled {
                    for item in batch {
                        match item {
                            Settle::Event(row, result) => publish(row, result),
                            Settle::Ended(row, ack, result) => {
                                let answer = result.clone().map(drop);
                                publish(row, result);
                                let _ = ack.send(answer);
                            }
                            Settle::Barrier(ack, result) => {
                                let _ = ack.send(result);
                            }
                        }
                    }
                }
            })
            .ok()?;
        Some(Self { batches })
    }

    fn hand_over(&self, settled: Settled) {
        if !settled.is_empty() {
            let _ = self.batches.send(settled);
        }
    }
}

/// While writes fail, a batch's probe is tried first, alone; if it commits
/// the batch goes on as usual, otherwise every write of it is refused.
fn probe_then_refuse(
    backend: &mut impl WriteBackend,
    batch: &mut Vec<WriteOp>,
    health: &WriteHealth,
    settled: &mut Settled,
) {
    if let Some(at) = batch.iter().position(|op| matches!(op, WriteOp::Probe(_))) {
        let probe = batch.remove(at);
        let result = backend.probe();
        if result.is_ok() {
            health.recover();
        }
        acknowledge(probe, result.map(|()| 1), settled);
    }
    if let Err(refusal) = health.check_failing() {
        for op in batch.drain(..) {
            let result = refused(&op, &refusal);
            acknowledge(op, result, settled);
        }
    }
}

/// What a write that was not applied is told. A barrier is answered `Ok`:
/// the writes before it are settled (they failed) and reads may go on;
/// `Store::sync` checks the failure itself.
fn refused(op: &WriteOp, error: &StoreError) -> Result<u64, StoreError> {
    match op {
        WriteOp::Barrier(_) => Ok(0),
        _ => Err(error.clone()),
    }
}

/// Applies a batch in one transaction and answers every write of it.
fn commit_batch(
    backend: &mut impl WriteBackend,
    batch: &mut Vec<WriteOp>,
    health: &WriteHealth,
    settled: &mut Settled,
) {
    match backend.commit(batch) {
        Ok(results) => {
            for (op, result) in batch.drain(..).zip(results) {
                acknowledge(op, result, settled);
            }
        }
        Err(error) => {
            tracing::error!(%error, writes = batch.len(), "a write batch failed to commit");
            health.fail(error.clone());
            let failure = StoreError::Backend(error);
            for op in batch.drain(..) {
                let result = refused(&op, &failure);
                acknowledge(op, result, settled);
            }
        }
    }
}

/// Tells each write's caller how it went; an event is set aside for the
/// publisher, which hands it to its subscriber in queue (so `seq`) order.
fn acknowledge(op: WriteOp, result: Result<u64, StoreError>, settled: &mut Settled) {
    let ack = match op {
        WriteOp::CreateUser(_, ack)
        | WriteOp::RevokeTokens(_, ack)
        | WriteOp::PutSecret { ack, .. }
        | WriteOp::DeleteSecret { ack, .. }
        | WriteOp::SetAdmin { ack, .. }
        | WriteOp::PutBudget { ack, .. }
        | WriteOp::PutPause { ack, .. }
        | WriteOp::TakePause { ack, .. }
        | WriteOp::Probe(ack) => ack,
        WriteOp::EndRun { event, ack, .. } => {
            return settled.push(Settle::Ended(event, ack, result));
        }
        WriteOp::Barrier(ack) => return settled.push(Settle::Barrier(ack, result.map(drop))),
        WriteOp::PruneEvents(_, ack) => {
            let _ = ack.send(result);
            return;
        }
        WriteOp::Event(row) => return settled.push(Settle::Event(row, result)),
        WriteOp::LlmCall { call, .. } => {
            return log_failure(result, "model call's usage", call.run_id.as_str());
        }
        WriteOp::CreateThread(thread) => return log_failure(result, "thread", thread.id.as_str()),
        WriteOp::BeginRun(run, _) => return log_failure(result, "run", run.id.as_str()),
        WriteOp::StartQueuedRun { run_id, .. } => return log_failure(result, "run start", &run_id),
    };
    let _ = ack.send(result.map(drop));
}

/// Hands a committed event to its subscriber; one that failed is never published.
fn publish(row: EventRow, result: Result<u64, StoreError>) {
    match (result, &row.subscriber) {
        (Ok(_), Some(subscriber)) => {
            subscriber.publish(u64::try_from(row.seq).unwrap_or(0), &row.payload)
        }
        (Ok(_), None) => {}
        (Err(error), _) => {
            tracing::error!(%error, run_id = %row.run_id, seq = row.seq, "could not store a run event");
        }
    }
}

/// Unacknowledged writes have nobody to tell: a failure goes to the log.
fn log_failure(result: Result<u64, StoreError>, what: &str, id: &str) {
    if let Err(error) = result {
        tracing::error!(%error, id, "could not store a {what}");
    }
}
