//! The connection hub: each user's live connections, and the per-user sink that fans events out to them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Instant;

use axum::extract::ws::Utf8Bytes;
use cordon_core::{ConnectionId, EventSink, EventSinks, RunEvent, Store, UserId};
use cordon_protocol::ServerFrame;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A frame waiting in a connection's queue, stamped when it was published
/// so the session can record the publish-to-write latency.
pub type Outbound = (Instant, Utf8Bytes);

/// Why the hub ended a session; the session turns it into a close frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Its outbound queue was full: the client must reconnect and resume.
    TooSlow,
    /// The user signed out: the token the socket was opened with is void.
    SignedOut,
}

/// The hub's switch to end one session, with the reason; the first reason wins.
#[derive(Clone, Default)]
pub struct EndSignal {
    fired: CancellationToken,
    why: Arc<OnceLock<Ended>>,
}

impl EndSignal {
    pub fn end(&self, why: Ended) {
        let _ = self.why.set(why);
        self.fired.cancel();
    }

    /// Resolves once `end` was called, with its reason.
    pub async fn ended(&self) -> Ended {
        self.fired.cancelled().await;
        self.why.get().copied().unwrap_or(Ended::TooSlow)
    }
}

/// One live connection as the hub sees it: its bounded outbound queue, and
/// the switch that closes it.
struct Connection {
    id: ConnectionId,
    /// The token generation the socket was opened with.
    generation: u32,
    outbound: mpsc::Sender<Outbound>,
    end: EndSignal,
}

/// One user's connections. It is that user's `EventSink`: it can reach those
/// connections and nothing else.
pub struct UserChannel {
    user_id: UserId,
    store: Arc<dyn Store>,
    connections: Mutex<Vec<Connection>>,
}

impl UserChannel {
    fn lock(&self) -> MutexGuard<'_, Vec<Connection>> {
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends the same bytes to every connection of the user.
    ///
    /// Slow-consumer policy: a connection whose queue is full is closed (the
    /// session sends close code 1013), never silently skipped, so a client
    /// never misses an event without knowing; it reconnects and reads the
    /// persisted log. Other connections and users are unaffected.
    pub fn send_to_all(&self, text: &Utf8Bytes) {
        let now = Instant::now();
        self.lock().retain(|conn| match conn.outbound.try_send((now, text.clone())) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(connection_id = %conn.id, "outbound queue full; closing slow connection");
                conn.end.end(Ended::TooSlow);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
    }

    /// Serializes a frame once and sends it to every connection.
    pub fn broadcast(&self, frame: &ServerFrame) {
        if let Some(text) = encode(frame) {
            self.send_to_all(&text);
        }
    }

    pub fn connection_count(&self) -> usize {
        self.lock().len()
    }

    /// Ends and forgets every connection opened with a token older than
    /// `generation`; returns how many.
    fn end_older_than(&self, generation: u32, why: Ended) -> usize {
        let mut ended = 0;
        self.lock().retain(|conn| {
            let keep = conn.generation >= generation;
            if !keep {
                conn.end.end(why);
                ended += 1;
            }
            keep
        });
        ended
    }
}

impl EventSink for UserChannel {
    fn user_id(&self) -> &UserId {
        &self.user_id
    }

    fn publish(&self, event: &RunEvent) {
        let frame = ServerFrame::from(event);
        let Ok(json) = serde_json::to_string(&frame) else {
            tracing::error!(seq = event.seq, "could not serialize a run event");
            return;
        };
        self.store
            .append_event(&self.user_id, event, Arc::from(json.as_str()));
        self.send_to_all(&Utf8Bytes::from(json));
    }
}

/// Serializes a frame; `None` only if serde fails, which the types rule out.
pub fn encode(frame: &ServerFrame) -> Option<Utf8Bytes> {
    serde_json::to_string(frame).ok().map(Utf8Bytes::from)
}

/// Every user's channel, created on demand.
pub struct ConnectionHub {
    store: Arc<dyn Store>,
    users: Mutex<HashMap<UserId, Arc<UserChannel>>>,
}

/// What a session holds while registered; dropping it deregisters the connection.
pub struct Registration {
    hub: Arc<ConnectionHub>,
    pub channel: Arc<UserChannel>,
    pub connection_id: ConnectionId,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.channel
            .lock()
            .retain(|conn| conn.id != self.connection_id);
        self.hub.forget_if_unused(&self.channel);
    }
}

impl ConnectionHub {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            users: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<UserId, Arc<UserChannel>>> {
        self.users.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The user's channel, created if this is the first connection or engine.
    pub fn channel(&self, user_id: &UserId) -> Arc<UserChannel> {
        self.lock()
            .entry(user_id.clone())
            .or_insert_with(|| {
                Arc::new(UserChannel {
                    user_id: user_id.clone(),
                    store: Arc::clone(&self.store),
                    connections: Mutex::new(Vec::new()),
                })
            })
            .clone()
    }

    /// Adds a connection to its user's channel.
    pub fn register(
        self: &Arc<Self>,
        user_id: &UserId,
        generation: u32,
        connection_id: ConnectionId,
        outbound: mpsc::Sender<Outbound>,
        end: EndSignal,
    ) -> Registration {
        let channel = self.channel(user_id);
        channel.lock().push(Connection {
            id: connection_id.clone(),
            generation,
            outbound,
            end,
        });
        Registration {
            hub: Arc::clone(self),
            channel,
            connection_id,
        }
    }

    /// Closes the sockets a user opened before signing out (tokens older than
    /// `generation`); one opened since with a new token stays. Returns how many.
    pub fn sign_out(&self, user_id: &UserId, generation: u32) -> usize {
        let channel = self.lock().get(user_id).cloned();
        channel.map_or(0, |channel| {
            channel.end_older_than(generation, Ended::SignedOut)
        })
    }

    /// Total live connections, for metrics.
    pub fn connection_count(&self) -> usize {
        self.lock()
            .values()
            .map(|channel| channel.connection_count())
            .sum()
    }

    /// Drops the channel once no connection uses it and no engine holds it.
    fn forget_if_unused(&self, channel: &Arc<UserChannel>) {
        let mut users = self.lock();
        // One reference is the map's, one the caller's: nobody else holds it.
        if channel.connection_count() == 0 && Arc::strong_count(channel) <= 2 {
            users.remove(&channel.user_id);
        }
    }

    /// Drops every channel nobody uses any more (engines retired since).
    pub fn sweep(&self) {
        self.lock()
            .retain(|_, channel| channel.connection_count() > 0 || Arc::strong_count(channel) > 1);
    }
}

impl EventSinks for ConnectionHub {
    fn for_user(&self, user_id: &UserId) -> Arc<dyn EventSink> {
        self.channel(user_id)
    }
}
