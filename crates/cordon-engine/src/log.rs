//! The user's event log, engine side: assigns `seq`, stores the event, and the store publishes it to the user's sink once committed.

use std::sync::{Arc, Mutex, PoisonError};

use cordon_core::{
    ErrorCode, EventEncoder, EventSink, RunEvent, RunEventKind, RunOutcome, StoreError,
    UserExecutionContext, UserId, UserStore,
};

use crate::stop::StopSignal;

/// The single place a user's `seq` is assigned. Assignment and the hand-off
/// to the store happen under one lock, so the writer commits, and then
/// publishes, a user's events in `seq` order. Nothing reaches a subscriber
/// before it is stored: a `seq` a client has seen is never given to another
/// event, even after a crash.
pub struct UserEventLog {
    store: UserStore,
    encoder: Arc<dyn EventEncoder>,
    sink: Arc<dyn EventSink>,
    last_seq: Mutex<u64>,
}

impl UserEventLog {
    /// `last_seq` is the highest seq already used (stored) for this user.
    pub fn new(
        store: UserStore,
        encoder: Arc<dyn EventEncoder>,
        sink: Arc<dyn EventSink>,
        last_seq: u64,
    ) -> Self {
        debug_assert_eq!(store.user_id(), sink.user_id(), "sink of another user");
        Self {
            store,
            encoder,
            sink,
            last_seq: Mutex::new(last_seq),
        }
    }

    pub fn user_id(&self) -> &UserId {
        self.store.user_id()
    }

    pub fn store(&self) -> &UserStore {
        &self.store
    }

    /// Tells the user's connections of an event that could not be stored
    /// (writes are failing), with `seq` 0: it is not in the log and no
    /// resume will replay it. The log's own entry follows once writes work.
    pub fn notify_unstored(&self, ctx: &UserExecutionContext, kind: RunEventKind) {
        let event = RunEvent {
            seq: 0,
            ts: cordon_core::now(),
            run_id: ctx.root_run_id().clone(),
            thread_id: ctx.thread_id().clone(),
            kind,
        };
        self.sink.publish(0, &self.encoder.encode(&event));
    }

    /// Appends an event of the context's root run; returns its seq.
    pub fn emit(&self, ctx: &UserExecutionContext, kind: RunEventKind) -> Result<u64, StoreError> {
        self.append(ctx, kind, |event, payload, sink| {
            self.store.append_event(event, payload, sink)?;
            Ok(event.seq)
        })
    }

    /// Appends the run's terminal event together with its `outcome`, in one
    /// transaction; resolves once both are committed.
    pub async fn end(
        &self,
        ctx: &UserExecutionContext,
        kind: RunEventKind,
        outcome: &RunOutcome,
    ) -> Result<(), StoreError> {
        // The event names the root run; the outcome is stored for that run.
        debug_assert_eq!(ctx.run_id(), ctx.root_run_id(), "end of a sub-run");
        let committed = self.append(ctx, kind, |event, payload, sink| {
            self.store.end_run(event, payload, outcome, sink)
        })?;
        committed.await
    }

    /// Gives the next `seq` to `kind` and hands the event to `store` under
    /// one lock, so events are queued, committed and published in `seq` order.
    fn append<T>(
        &self,
        ctx: &UserExecutionContext,
        kind: RunEventKind,
        store: impl FnOnce(&RunEvent, Arc<str>, Arc<dyn EventSink>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        debug_assert_eq!(ctx.user_id(), self.user_id(), "context of another user");
        let mut last_seq = self.last_seq.lock().unwrap_or_else(PoisonError::into_inner);
        let event = RunEvent {
            seq: *last_seq + 1,
            ts: cordon_core::now(),
            run_id: ctx.root_run_id().clone(),
            thread_id: ctx.thread_id().clone(),
            kind,
        };
        let payload = self.encoder.encode(&event);
        let queued = store(&event, payload, Arc::clone(&self.sink))?;
        *last_seq = event.seq;
        Ok(queued)
    }
}

/// One run's view of the log: what its agents and tools emit through. It
/// keeps the answer text streamed so far, so a run that is stopped midway
/// (cancelled, interrupted) keeps its partial answer, and it stops the run
/// when the store refuses its events.
pub struct RunEvents {
    log: Arc<UserEventLog>,
    stop: StopSignal,
    /// The store's failure epoch when the run began: if it moved, some of
    /// the run's writes may be lost and the run cannot report success.
    epoch: u64,
    streamed: Mutex<String>,
}

impl RunEvents {
    pub(crate) fn new(log: Arc<UserEventLog>, stop: StopSignal) -> Self {
        let epoch = log.store().failure_epoch();
        Self {
            log,
            stop,
            epoch,
            streamed: Mutex::new(String::new()),
        }
    }

    /// Emits an event of the run. If the store refuses it (writes are
    /// failing) the run is stopped with `storage_failed`.
    pub fn emit(&self, ctx: &UserExecutionContext, kind: RunEventKind) {
        if let RunEventKind::AgentDelta { text, .. } = &kind {
            self.streamed
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push_str(text);
        }
        if let Err(error) = self.log.emit(ctx, kind) {
            tracing::error!(%error, run_id = %ctx.root_run_id(), "could not store a run event; stopping the run");
            self.stop.stop(ErrorCode::StorageFailed);
        }
    }

    /// Waits while the store's write queue is full: a run slows down rather
    /// than grow it without bound. Called between steps and tool calls.
    pub async fn room(&self) {
        self.log.store().writable().await;
    }

    /// Whether writes failed at any time since the run began.
    pub fn writes_failed(&self) -> bool {
        self.log.store().failure_epoch() != self.epoch
    }

    /// The answer text streamed so far.
    pub fn streamed_text(&self) -> String {
        self.streamed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}
