//! `UserEventEmitter`: stamps one user's events with their `seq` and hands them to the user's sink.

use std::sync::{Arc, Mutex, PoisonError};

use cordon_core::{EventSink, RunEvent, RunEventKind, UserExecutionContext, UserId};

/// The single place a user's `seq` is assigned. Assignment and hand-off to the
/// sink happen under one lock, so concurrent runs of the same user reach every
/// connection in `seq` order.
pub struct UserEventEmitter {
    sink: Arc<dyn EventSink>,
    last_seq: Mutex<u64>,
}

impl UserEventEmitter {
    /// `last_seq` is the highest seq already used (stored) for this user.
    pub fn new(sink: Arc<dyn EventSink>, last_seq: u64) -> Self {
        Self {
            sink,
            last_seq: Mutex::new(last_seq),
        }
    }

    pub fn user_id(&self) -> &UserId {
        self.sink.user_id()
    }

    /// Emits an event of the context's root run; returns its seq.
    pub fn emit(&self, ctx: &UserExecutionContext, kind: RunEventKind) -> u64 {
        debug_assert_eq!(ctx.user_id(), self.user_id(), "context of another user");
        let mut last_seq = self.last_seq.lock().unwrap_or_else(PoisonError::into_inner);
        *last_seq += 1;
        let event = RunEvent {
            seq: *last_seq,
            ts: cordon_core::now(),
            run_id: ctx.root_run_id().clone(),
            thread_id: ctx.thread_id().clone(),
            kind,
        };
        self.sink.publish(&event);
        event.seq
    }
}
