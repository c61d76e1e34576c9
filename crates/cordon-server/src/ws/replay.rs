//! Replaying a user's stored event log to one socket, page by page, at the client's pace.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, Utf8Bytes};
use cordon_core::{Store, StoreError, StoredEvent, UserId};
use futures_util::SinkExt;

use crate::ws::session::Outgoing;

/// Events read from the store per page of a replay.
pub const REPLAY_PAGE: u32 = 256;

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The cursor is older than retention; the log starts at `oldest_seq`.
    #[error("the cursor is older than the retained log, which starts at seq {oldest_seq}")]
    CursorExpired { oldest_seq: u64 },
    #[error("the event log could not be read: {0}")]
    Store(#[from] StoreError),
    /// The client went away mid-replay.
    #[error("the socket failed")]
    Socket,
}

/// One user's log as a replay source.
pub struct Replay<'a> {
    store: &'a Arc<dyn Store>,
    user_id: &'a UserId,
    /// A page the peer does not take within this long ends the replay.
    write_timeout: Duration,
}

impl<'a> Replay<'a> {
    pub fn new(store: &'a Arc<dyn Store>, user_id: &'a UserId, write_timeout: Duration) -> Self {
        Self {
            store,
            user_id,
            write_timeout,
        }
    }

    /// Whether every event after `after_seq` is still in the log.
    pub async fn check(&self, after_seq: u64) -> Result<(), ReplayError> {
        check_cursor(self.store.as_ref(), self.user_id, after_seq).await
    }

    /// Writes every stored event with `after < seq`, and
    /// `seq <= until` when given; returns the last `seq` written (or `after`).
    pub async fn stream(
        &self,
        outgoing: &mut Outgoing,
        after: u64,
        until: Option<u64>,
    ) -> Result<u64, ReplayError> {
        let mut cursor = after;
        loop {
            if until.is_some_and(|until| cursor >= until) {
                return Ok(cursor);
            }
            let page = self
                .store
                .list_events(self.user_id, cursor, REPLAY_PAGE)
                .await?;
            let full = page.len() == REPLAY_PAGE as usize;
            let wanted: Vec<_> = page
                .into_iter()
                .take_while(|event| until.is_none_or(|until| event.seq <= until))
                .collect();
            let cut_short = wanted.len() < REPLAY_PAGE as usize && full;
            let written = tokio::time::timeout(self.write_timeout, write_page(outgoing, &wanted))
                .await
                .map_err(|_| ReplayError::Socket)?;
            cursor = written?.unwrap_or(cursor);
            if !full || cut_short {
                return Ok(cursor);
            }
        }
    }
}

/// Writes one page with one flush (which keeps the socket's write buffer
/// bounded); returns the last `seq` written.
async fn write_page(
    outgoing: &mut Outgoing,
    events: &[StoredEvent],
) -> Result<Option<u64>, ReplayError> {
    for event in events {
        let text = Utf8Bytes::from(event.payload.to_string());
        outgoing
            .feed(Message::Text(text))
            .await
            .map_err(|_| ReplayError::Socket)?;
    }
    outgoing.flush().await.map_err(|_| ReplayError::Socket)?;
    Ok(events.last().map(|event| event.seq))
}

/// `Err(CursorExpired)` when retention deleted events after `after_seq`.
pub async fn check_cursor(
    store: &dyn Store,
    user_id: &UserId,
    after_seq: u64,
) -> Result<(), ReplayError> {
    let bounds = store.log_bounds(user_id).await?;
    if after_seq < bounds.floor {
        return Err(ReplayError::CursorExpired {
            oldest_seq: bounds.floor + 1,
        });
    }
    Ok(())
}
