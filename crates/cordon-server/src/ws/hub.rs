//! The connection hub: each user's live connections, and the per-user sink that fans committed events out to them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Instant;

use axum::extract::ws::Utf8Bytes;
use cordon_cluster::SocketClaim;
use cordon_core::{ConnectionId, EventSink, EventSinks, UserId};
use cordon_protocol::ServerFrame;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// An event waiting in a connection's queue: its `seq` (so the session drops
/// what it already sent), when it was published (for the publish-to-write
/// latency) and its frame.
#[derive(Clone)]
pub struct Outbound {
    pub seq: u64,
    pub at: Instant,
    pub text: Utf8Bytes,
}

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
#[derive(Clone)]
struct Connection {
    id: ConnectionId,
    /// The token generation the socket was opened with.
    generation: u32,
    outbound: mpsc::Sender<Outbound>,
    end: EndSignal,
}

/// One user's live connections, and the highest `seq` published to them.
#[derive(Default)]
struct Subscribers {
    connections: Vec<Connection>,
    /// Read under the same lock publish takes: a connection that attaches
    /// gets every event above it live, and must read the rest from the log.
    published: u64,
}

/// One user's connections. It is that user's `EventSink`: it can reach those
/// connections and nothing else.
pub struct UserChannel {
    user_id: UserId,
    subscribers: Mutex<Subscribers>,
    /// Sockets open for the user (claimed at the upgrade, before the session starts).
    sockets: AtomicUsize,
}

impl UserChannel {
    fn lock(&self) -> MutexGuard<'_, Subscribers> {
        self.subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends the same bytes to every connection of the user.
    ///
    /// Slow-consumer policy: a connection whose queue is full is closed (the
    /// session sends close code 1013), never silently skipped, so a client
    /// never misses an event without knowing; it reconnects and reads the
    /// persisted log. Other connections and users are unaffected.
    fn send_to_all(&self, seq: u64, text: Utf8Bytes) {
        let item = Outbound {
            seq,
            at: Instant::now(),
            text,
        };
        let mut subscribers = self.lock();
        subscribers.published = subscribers.published.max(seq);
        subscribers.connections.retain(|conn| match conn.outbound.try_send(item.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(connection_id = %conn.id, "outbound queue full; closing slow connection");
                conn.end.end(Ended::TooSlow);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
    }

    pub fn connection_count(&self) -> usize {
        self.lock().connections.len()
    }

    /// Ends and forgets every connection opened with a token older than
    /// `generation`; returns how many.
    fn end_older_than(&self, generation: u32, why: Ended) -> usize {
        let mut ended = 0;
        self.lock().connections.retain(|conn| {
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

    /// Called by the store's writer once the event is committed, in `seq` order.
    fn publish(&self, seq: u64, payload: &Arc<str>) {
        self.send_to_all(seq, Utf8Bytes::from(payload.to_string()));
    }
}

/// Serializes a frame; `None` only if serde fails, which the types rule out.
pub fn encode(frame: &ServerFrame) -> Option<Utf8Bytes> {
    frame.to_json().map(Utf8Bytes::from)
}

/// Every user's channel, created on demand.
#[derive(Default)]
pub struct ConnectionHub {
    users: Mutex<HashMap<UserId, Arc<UserChannel>>>,
}

/// A session's place in its user's channel. It starts detached; while
/// attached the connection gets the user's events live. Dropping it
/// deregisters the connection.
pub struct Registration {
    hub: Arc<ConnectionHub>,
    channel: Arc<UserChannel>,
    connection: Connection,
}

impl Registration {
    /// Starts live delivery; returns the cut: the highest `seq` published
    /// before, which this connection will not get live.
    pub fn attach(&self) -> u64 {
        let mut subscribers = self.channel.lock();
        if !subscribers
            .connections
            .iter()
            .any(|conn| conn.id == self.connection.id)
        {
            subscribers.connections.push(self.connection.clone());
        }
        subscribers.published
    }

    /// Stops live delivery (while the session replays from the log).
    pub fn detach(&self) {
        let id = &self.connection.id;
        self.channel
            .lock()
            .connections
            .retain(|conn| &conn.id != id);
    }
}

/// One open socket's claim on its user's socket limit; released when dropped.
pub struct SocketSlot {
    channel: Arc<UserChannel>,
    /// With several instances, the claim on the cluster-wide count too.
    _cluster: Option<SocketClaim>,
}

impl SocketSlot {
    /// Holds the socket's cluster-wide claim for as long as this slot.
    pub fn with_cluster_claim(mut self, claim: SocketClaim) -> Self {
        self._cluster = Some(claim);
        self
    }
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        self.channel.sockets.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.detach();
        self.hub.forget_if_unused(&self.channel);
    }
}

impl ConnectionHub {
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
                    subscribers: Mutex::new(Subscribers::default()),
                    sockets: AtomicUsize::new(0),
                })
            })
            .clone()
    }

    /// Claims one of the user's `max` socket slots, or `None` when all are
    /// taken. Claimed atomically at the upgrade, so a burst cannot overshoot.
    pub fn claim_socket(&self, user_id: &UserId, max: usize) -> Option<SocketSlot> {
        let channel = self.channel(user_id);
        channel
            .sockets
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < max).then_some(open + 1)
            })
            .ok()?;
        Some(SocketSlot {
            channel,
            _cluster: None,
        })
    }

    /// Registers a connection with its user's channel, detached.
    pub fn register(
        self: &Arc<Self>,
        user_id: &UserId,
        generation: u32,
        connection_id: ConnectionId,
        outbound: mpsc::Sender<Outbound>,
        end: EndSignal,
    ) -> Registration {
        Registration {
            hub: Arc::clone(self),
            channel: self.channel(user_id),
            connection: Connection {
                id: connection_id,
                generation,
                outbound,
                end,
            },
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
