//! `RunFeed`: one run's events for a standard stream, read from the stored log and woken by the user's live channel.
//!
//! The log is the truth: a feed reads the run's events after its cursor from
//! the store whenever the user's channel publishes (or, as a fallback, every
//! second), so it is gap-free and duplicate-free by construction, resumes
//! from any `seq` the same way, and cannot overflow: the channel's queue is
//! only a doorbell. A feed holds one of the user's socket slots, like a
//! WebSocket, so streams count against `--max-sockets-per-user`.

use std::sync::Arc;
use std::time::Duration;

use cordon_cluster::Follow;
use cordon_core::{ConnectionId, RunId, StoreError};
use cordon_protocol::ServerFrame;
use tokio::sync::mpsc;

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::state::AppState;
use crate::ws::hub::{EndSignal, Outbound, Registration, SocketSlot};

/// How often a feed reads the log when nothing rang: a lost doorbell (a
/// dropped broker message, a slow consumer's reset) costs at most this.
const POLL: Duration = Duration::from_secs(1);

/// Doorbells a feed may have pending; more are dropped (one is enough).
const DOORBELLS: usize = 16;

/// A stored event of the run, parsed.
pub struct FeedEvent {
    pub seq: u64,
    pub frame: ServerFrame,
}

/// The user's live channel, subscribed before a message is sent (so nothing
/// of its run can be published unseen), then pointed at one run.
pub struct RunFeed {
    state: AppState,
    user: AuthUser,
    run_id: Option<RunId>,
    after: u64,
    doorbell: mpsc::Receiver<Outbound>,
    registration: Registration,
    _follow: Option<Arc<Follow>>,
    _slot: SocketSlot,
}

impl RunFeed {
    /// Subscribes to the user's channel, claiming one of their socket slots.
    pub async fn open(state: &AppState, user: &AuthUser) -> Result<Self, ApiError> {
        let connection_id = ConnectionId::generate();
        let slot = crate::ws::upgrade::claim_socket(state, user, &connection_id).await?;
        let (ring, doorbell) = mpsc::channel(DOORBELLS);
        let registration = state.hub.register(
            &user.user_id,
            user.generation,
            connection_id,
            ring,
            EndSignal::default(),
        );
        let follow = crate::ws::session::follow(state, &user.user_id)
            .await
            .map_err(|error| ApiError::Unavailable(error.to_string()))?;
        registration.attach();
        Ok(Self {
            state: state.clone(),
            user: user.clone(),
            run_id: None,
            after: 0,
            doorbell,
            registration,
            _follow: follow,
            _slot: slot,
        })
    }

    /// Follows `run_id` from the event after `after_seq`.
    pub fn follow_run(&mut self, run_id: RunId, after_seq: u64) {
        self.run_id = Some(run_id);
        self.after = after_seq;
    }

    /// The run's next stored events, in `seq` order; waits until there is at
    /// least one, or the server drains (`Ok` empty).
    pub async fn next(&mut self) -> Result<Vec<FeedEvent>, StoreError> {
        let Some(run_id) = self.run_id.clone() else {
            return Ok(Vec::new());
        };
        loop {
            let stored = self
                .state
                .store
                .list_run_events(&self.user.user_id, &run_id, self.after)
                .await?;
            if let Some(last) = stored.last() {
                self.after = last.seq;
                return Ok(stored
                    .into_iter()
                    .filter_map(|event| {
                        let frame = serde_json::from_str(&event.payload).ok()?;
                        Some(FeedEvent {
                            seq: event.seq,
                            frame,
                        })
                    })
                    .collect());
            }
            // A doorbell queue that filled while the stream was written
            // had the hub drop it; ring again from now on.
            self.registration.attach();
            tokio::select! {
                () = self.state.close_sessions.cancelled() => return Ok(Vec::new()),
                rang = self.doorbell.recv() => {
                    if rang.is_none() {
                        tokio::time::sleep(POLL).await;
                    }
                    while self.doorbell.try_recv().is_ok() {}
                }
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }
}
