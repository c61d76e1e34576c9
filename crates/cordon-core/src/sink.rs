//! The event log's two ends outside the engine: `EventEncoder` (an event's wire form) and `EventSink` (who hears a committed event).

use std::sync::Arc;

use crate::event::RunEvent;
use crate::ids::UserId;

/// A user's subscribers: the outlet a committed event of that user goes to.
/// An implementation is created for one user and reaches only that user's
/// connections. The store calls it from its writer once the event's
/// transaction has committed, strictly in `seq` order, so it must not block:
/// hand the bytes to queues and return.
pub trait EventSink: Send + Sync + 'static {
    /// The user this sink belongs to.
    fn user_id(&self) -> &UserId;

    /// Delivers one committed event (`payload` is its exact wire form).
    fn publish(&self, seq: u64, payload: &Arc<str>);
}

/// Makes the sink of one user. The engine factory asks for one per engine, so
/// each engine holds exactly its own user's outlet and nothing else.
pub trait EventSinks: Send + Sync + 'static {
    fn for_user(&self, user_id: &UserId) -> Arc<dyn EventSink>;
}

/// Turns an event into the bytes that are stored and sent, once per event.
/// The protocol crate implements it; the engine never knows the wire shape.
pub trait EventEncoder: Send + Sync + 'static {
    fn encode(&self, event: &RunEvent) -> Arc<str>;
}
