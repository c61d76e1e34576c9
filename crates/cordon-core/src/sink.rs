//! `EventSink`: where one user's run events go once the engine has stamped them.

use std::sync::Arc;

use crate::event::RunEvent;
use crate::ids::UserId;

/// The per-user outlet for run events. An implementation is created for one
/// user and can reach only that user's connections and storage; the engine
/// calls it while holding the user's sequence lock, so it must not block:
/// hand the event to queues and return.
pub trait EventSink: Send + Sync + 'static {
    /// The user this sink belongs to.
    fn user_id(&self) -> &UserId;

    /// Delivers one event (fan-out to live connections, enqueue for storage).
    fn publish(&self, event: &RunEvent);
}

/// Makes the sink of one user. The engine factory asks for one per engine, so
/// each engine holds exactly its own user's outlet and nothing else.
pub trait EventSinks: Send + Sync + 'static {
    fn for_user(&self, user_id: &UserId) -> Arc<dyn EventSink>;
}
