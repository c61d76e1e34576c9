//! One WebSocket session: greeting, client frames, resume from the log, live events, heartbeat, idle timeout and close.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use cordon_cluster::Follow;
use cordon_core::{ConnectionId, ErrorCode, Multitask, RunId, StoreError, TraceParent, UserId};
use cordon_engine::{NewMessage, ServiceError};
use cordon_protocol::{ClientFrame, RunEnvelope, ServerFrame};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::auth::AuthUser;
use crate::auth::revocation::TokenStanding;
use crate::metrics::EVENT_SEND_SECONDS;
use crate::state::AppState;
use crate::ws::frames;
use crate::ws::hub::{EndSignal, Ended, Outbound, Registration, SocketSlot, encode};
use crate::ws::replay::{Replay, ReplayError};

/// Most frames written per flush, so one busy user cannot hold the socket's task for long.
const WRITE_BATCH: usize = 32;

/// Longest a socket goes unread after a `rate_limited` refusal, whatever the
/// refill wait: its pongs and cancels are read again within this.
const MOST_UNREAD: Duration = Duration::from_secs(1);

pub struct Session {
    state: AppState,
    user: AuthUser,
    connection_id: ConnectionId,
    /// `?after_seq=` of the upgrade: resume before going live.
    resume_from: Option<u64>,
    /// The upgrade's `traceparent`: the parent of every run this socket starts.
    trace_parent: Option<TraceParent>,
    /// Held for the session's life: its place in the user's socket limit.
    _slot: SocketSlot,
}

pub(crate) type Outgoing = SplitSink<WebSocket, Message>;
type Incoming = SplitStream<WebSocket>;

/// Why the loop ended, and the close frame to send, if any.
struct Close(Option<CloseFrame>);

/// What handling one client message asks of the loop.
enum Next {
    Read,
    /// The message was refused as `rate_limited`: the socket is not read
    /// until a token is back (at most `MOST_UNREAD`), so a flood waits in
    /// the peer's send buffer, held back by TCP, instead of being read and
    /// answered as fast as it comes.
    ReadAfter(Duration),
    End(Close),
}

fn close(code: u16, reason: &'static str) -> Close {
    Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    }))
}

/// What the session has of the live stream: the registration, its queue, and
/// which events this connection has sent: exactly the contiguous range
/// `(start, delivered]` once it is live (`start` is `None` before), and
/// anything at or below `delivered` in the queue was already sent by a
/// replay and is dropped.
struct Live {
    registration: Registration,
    /// Several instances: the user's events reach this instance's hub while held.
    _follow: Option<Arc<Follow>>,
    queue: mpsc::Receiver<Outbound>,
    start: Option<u64>,
    delivered: u64,
}

impl Session {
    pub fn new(
        state: AppState,
        user: AuthUser,
        connection_id: ConnectionId,
        resume_from: Option<u64>,
        slot: SocketSlot,
    ) -> Self {
        Self {
            state,
            user,
            connection_id,
            resume_from,
            trace_parent: None,
            _slot: slot,
        }
    }

    #[must_use]
    pub fn with_trace_parent(mut self, parent: Option<TraceParent>) -> Self {
        self.trace_parent = parent;
        self
    }
}

/// Drives one connection until the peer leaves, goes idle, falls behind, its
/// token expires or is signed out, or the server shuts down.
pub async fn run_session(session: Session, socket: WebSocket) {
    let (mut outgoing, incoming) = socket.split();
    let (queue_tx, queue) = mpsc::channel(session.state.config.outbound_queue);
    let end = EndSignal::default();
    let registration = session.state.hub.register(
        &session.user.user_id,
        session.user.generation,
        session.connection_id.clone(),
        queue_tx,
        end.clone(),
    );
    let follow = match follow(&session.state, &session.user.user_id).await {
        Ok(follow) => follow,
        Err(error) => {
            tracing::error!(%error, "could not follow the user's events");
            let _ = session
                .write(outgoing.send(Message::Close(Some(try_again_frame()))))
                .await;
            return;
        }
    };
    let live = Live {
        registration,
        _follow: follow,
        queue,
        start: None,
        delivered: 0,
    };
    tracing::debug!(connection_id = %session.connection_id, user_id = %session.user.user_id, "socket opened");
    let Close(frame) = session.serve(&mut outgoing, incoming, live, &end).await;
    // A peer that stopped reading would hold the close forever, too.
    if let Some(frame) = frame {
        let _ = session
            .write(outgoing.send(Message::Close(Some(frame))))
            .await;
    }
    let _ = session.write(outgoing.close()).await;
    tracing::debug!(connection_id = %session.connection_id, "socket closed");
}

impl Session {
    /// Starts the session, then handles its frames, the user's events and
    /// the timers until one of them ends it.
    async fn serve(
        &self,
        outgoing: &mut Outgoing,
        mut incoming: Incoming,
        mut live: Live,
        end: &EndSignal,
    ) -> Close {
        if let Err(close) = self.start(outgoing, &mut live).await {
            return close;
        }
        let config = &self.state.config;
        let mut heartbeat = tokio::time::interval_at(
            Instant::now() + config.heartbeat_interval,
            config.heartbeat_interval,
        );
        let mut last_seen = Instant::now();
        let mut unread_until = Instant::now();
        loop {
            let reading = Instant::now() >= unread_until;
            tokio::select! {
                biased;
                () = self.state.close_sessions.cancelled() => {
                    // Runs ended during the drain: their last events go out first.
                    while let Ok(item) = live.queue.try_recv() {
                        if self.write(write_queued(outgoing, &mut live, item)).await.is_err() {
                            return Close(None);
                        }
                    }
                    return match self.state.cluster {
                        // Another instance serves the user's stream: go there.
                        Some(_) => close(1012, "server restarting; reconnect and resume"),
                        None => close(1001, "server shutting down"),
                    };
                }
                why = end.ended() => return match why {
                    Ended::TooSlow => close(1013, "outbound queue full; reconnect and resume"),
                    Ended::SignedOut => Close(Some(signed_out_frame())),
                },
                Some(first) = live.queue.recv() => {
                    if self.write(write_queued(outgoing, &mut live, first)).await.is_err() {
                        return Close(None);
                    }
                }
                message = incoming.next(), if reading => {
                    let Some(Ok(message)) = message else { return Close(None) };
                    last_seen = Instant::now();
                    match self.on_message(message, outgoing, &mut live).await {
                        Next::Read => {}
                        Next::ReadAfter(wait) => unread_until = Instant::now() + wait.min(MOST_UNREAD),
                        Next::End(close) => return close,
                    }
                }
                () = tokio::time::sleep_until(unread_until), if !reading => {}
                _ = heartbeat.tick() => {
                    if let Some(end) = self.on_heartbeat(outgoing).await {
                        return end;
                    }
                }
                () = tokio::time::sleep_until(last_seen + config.idle_timeout) => return close(1000, "idle timeout"),
            }
        }
    }

    /// Goes live and greets the client, or greets it and then resumes from
    /// its cursor; `Err` ends the session before its loop.
    async fn start(&self, outgoing: &mut Outgoing, live: &mut Live) -> Result<(), Close> {
        // Without a cursor the socket goes live before it is greeted: a
        // client may act on the greeting from another socket at once (send a
        // message there), and this one must hear that run from its first event.
        if self.resume_from.is_none() {
            live.delivered = live.registration.attach();
            live.start = Some(live.delivered);
        }
        if send(outgoing, &self.greeting()).await.is_err() {
            return Err(Close(None));
        }
        self.prepare_engine().await;
        if let Some(after_seq) = self.resume_from {
            self.resume(outgoing, live, after_seq).await?;
        }
        // A sign-out between the token check and the attach above did not
        // see this socket; the generation it recorded first does.
        if self.signed_out().await {
            return Err(Close(Some(signed_out_frame())));
        }
        Ok(())
    }

    fn greeting(&self) -> ServerFrame {
        let config = &self.state.config;
        ServerFrame::ConnectionEstablished {
            connection_id: self.connection_id.to_string(),
            user_id: self.user.user_id.to_string(),
            heartbeat_interval_ms: millis(config.heartbeat_interval),
            idle_timeout_ms: millis(config.idle_timeout),
            ts: cordon_core::now(),
        }
    }

    /// Replays the user's log after `after_seq`, then goes live with no gap
    /// and no duplicate. If this connection already sent everything after
    /// `after_seq` (it went live at or before it), nothing is replayed: the
    /// stream simply continues. The connection is detached while it catches up from
    /// the store page by page (the client's own pace, no queue to overflow),
    /// attaches, and then reads from the store only what was published
    /// between its last page and the attach (the cut). A cursor older than
    /// retention gets `cursor_expired` and the connection stays as it was.
    async fn resume(
        &self,
        outgoing: &mut Outgoing,
        live: &mut Live,
        after_seq: u64,
    ) -> Result<(), Close> {
        let replay = Replay::new(
            &self.state.store,
            &self.user.user_id,
            self.state.config.write_timeout,
        );
        if let Err(ReplayError::CursorExpired { oldest_seq }) = replay.check(after_seq).await {
            let frame = ServerFrame::Error {
                code: "cursor_expired".into(),
                message: format!(
                    "events up to seq {} were deleted by retention; resume from there",
                    oldest_seq.saturating_sub(1)
                ),
                oldest_seq: Some(oldest_seq),
                retry_after_ms: None,
            };
            return send(outgoing, &frame).await.map_err(|_| Close(None));
        }
        if live.start.is_some_and(|start| after_seq >= start) {
            live.delivered = live.delivered.max(after_seq);
            return Ok(());
        }
        live.registration.detach();
        while live.queue.try_recv().is_ok() {}
        let caught_up = replay.stream(outgoing, after_seq, None).await;
        let cursor = self.finish_replay(outgoing, caught_up).await?;
        let cut = live.registration.attach();
        let caught_up = replay.stream(outgoing, cursor, Some(cut)).await;
        live.delivered = self.finish_replay(outgoing, caught_up).await?.max(cut);
        live.start = Some(after_seq);
        Ok(())
    }

    /// Flushes what a replay wrote; a store failure is told to the client
    /// (`storage_failed`) and closes the socket, so the client retries.
    async fn finish_replay(
        &self,
        outgoing: &mut Outgoing,
        streamed: Result<u64, ReplayError>,
    ) -> Result<u64, Close> {
        let cursor = match streamed {
            Ok(cursor) => cursor,
            Err(ReplayError::Socket) => return Err(Close(None)),
            Err(error) => {
                tracing::error!(%error, "could not replay the log");
                let frame = ServerFrame::error(
                    "storage_failed",
                    "the event log could not be read; reconnect and resume",
                );
                let _ = send(outgoing, &frame).await;
                return Err(close(1011, "event log unavailable"));
            }
        };
        outgoing.flush().await.map_err(|_| Close(None))?;
        Ok(cursor)
    }

    /// Re-checks the token and pings the client; `Some` ends the session.
    async fn on_heartbeat(&self, outgoing: &mut Outgoing) -> Option<Close> {
        if self.user.expires_at <= cordon_core::now() {
            return Some(close(1008, "token expired"));
        }
        if self.signed_out().await {
            return Some(Close(Some(signed_out_frame())));
        }
        let ping = ServerFrame::Ping {
            ts: cordon_core::now(),
        };
        send(outgoing, &ping).await.err().map(|_| Close(None))
    }

    /// Whether the user signed out since this socket's token was issued. The
    /// hub closes attached sockets at once; this covers one that attached
    /// while the sign-out ran (checked right after attaching) and is
    /// re-checked at every heartbeat.
    async fn signed_out(&self) -> bool {
        let standing = self
            .state
            .generations
            .check(
                self.state.store.as_ref(),
                &self.user.user_id,
                self.user.generation,
            )
            .await;
        // A store that cannot answer keeps the socket; the next beat asks again.
        matches!(
            standing,
            Ok(TokenStanding::SignedOut | TokenStanding::UnknownUser)
        )
    }

    /// Builds the user's engine while the client reads the greeting; a failure
    /// here is retried on the first message, which reports it.
    async fn prepare_engine(&self) {
        if let Err(error) = self.state.runs.factory().prepare(&self.user.user_id).await {
            tracing::warn!(%error, "could not prepare the user's engine");
        }
    }

    /// Handles one inbound message.
    async fn on_message(&self, message: Message, outgoing: &mut Outgoing, live: &mut Live) -> Next {
        let reply = match message {
            Message::Text(text) => match frames::parse(&text) {
                Ok(ClientFrame::Resume { after_seq }) => {
                    return match self.resume(outgoing, live, after_seq).await {
                        Ok(()) => Next::Read,
                        Err(close) => Next::End(close),
                    };
                }
                Ok(frame) => self.on_frame(frame).await,
                Err(error) => Some(ServerFrame::error(error.code, error.message)),
            },
            Message::Binary(_) => Some(ServerFrame::error(
                "unsupported_frame",
                "only JSON text frames are accepted",
            )),
            Message::Close(_) => return Next::End(Close(None)),
            Message::Ping(_) | Message::Pong(_) => None,
        };
        let Some(frame) = reply else {
            return Next::Read;
        };
        if send(outgoing, &frame).await.is_err() {
            return Next::End(Close(None));
        }
        match frame {
            ServerFrame::Error {
                retry_after_ms: Some(wait),
                ..
            } => Next::ReadAfter(Duration::from_millis(wait)),
            _ => Next::Read,
        }
    }

    /// Acts on a client frame; returns the direct reply, if any.
    async fn on_frame(&self, frame: ClientFrame) -> Option<ServerFrame> {
        match frame {
            ClientFrame::UserMessage {
                thread_id,
                content,
                client_request_id,
                multitask,
            } => {
                let message = NewMessage {
                    thread_id,
                    content,
                    client_request_id,
                    multitask: multitask.unwrap_or(Multitask::Reject),
                    connection_id: Some(self.connection_id.clone()),
                    trace_parent: self.trace_parent.clone(),
                };
                self.on_user_message(message).await
            }
            ClientFrame::Cancel { run_id } => self
                .state
                .runs
                .cancel(&self.user.user_id, &run_id)
                .await
                .err()
                .map(|error| ServerFrame::error(error.code(), error.to_string())),
            ClientFrame::Approve { call_id, run_id } => {
                self.on_answer(run_id, call_id, true, None).await
            }
            ClientFrame::Reject {
                call_id,
                run_id,
                reason,
            } => self.on_answer(run_id, call_id, false, reason).await,
            ClientFrame::Ping {} => Some(ServerFrame::Pong {
                ts: cordon_core::now(),
            }),
            ClientFrame::Pong {} | ClientFrame::Resume { .. } => None,
        }
    }

    /// Answers an approval; what follows (`approval_resolved`, the run going
    /// on) comes through the log, a refusal as an `error` frame.
    async fn on_answer(
        &self,
        run_id: Option<String>,
        call_id: String,
        approve: bool,
        reason: Option<String>,
    ) -> Option<ServerFrame> {
        self.state
            .runs
            .answer_approval(
                &self.user.user_id,
                run_id.as_deref(),
                &call_id,
                approve,
                reason,
            )
            .await
            .err()
            .map(|error| ServerFrame::error(error.code(), error.to_string()))
    }

    /// A write the peer does not take within `--write-timeout` (it stopped
    /// reading, its window is full) ends the session: nobody can wait on it.
    async fn write<T>(
        &self,
        write: impl Future<Output = Result<T, axum::Error>>,
    ) -> Result<T, axum::Error> {
        match tokio::time::timeout(self.state.config.write_timeout, write).await {
            Ok(written) => written,
            Err(_) => {
                tracing::warn!(connection_id = %self.connection_id, "a write timed out; closing the socket");
                metrics::counter!("cordon_ws_write_timeouts_total").increment(1);
                Err(axum::Error::new(
                    "the peer did not read within the write timeout",
                ))
            }
        }
    }

    /// Hands the message to the run service. The accepted run's events come
    /// through the log; a refusal is answered to this connection only and is
    /// not in the log (`seq` 0), since nothing of the message was stored (or
    /// its writes failed: `storage_failed`).
    async fn on_user_message(&self, message: NewMessage) -> Option<ServerFrame> {
        let thread_id = message.thread_id.clone().unwrap_or_default();
        let client_request_id = message.client_request_id.clone();
        let error = self
            .state
            .runs
            .submit_message(&self.user.user_id, message)
            .await
            .err()?;
        let refused_with = match &error {
            ServiceError::Rejected(code) => Some(*code),
            ServiceError::Storage(_) => Some(ErrorCode::StorageFailed),
            _ => None,
        };
        Some(match (refused_with, error) {
            (Some(code), error) => ServerFrame::AgentError {
                envelope: RunEnvelope {
                    run_id: RunId::generate().to_string(),
                    thread_id,
                    seq: 0,
                    ts: cordon_core::now(),
                },
                agent: cordon_engine::supervisor::SUPERVISOR.to_owned(),
                code,
                message: error.to_string(),
                client_request_id,
            },
            (None, error @ ServiceError::RateLimited { retry_after }) => ServerFrame::Error {
                code: error.code().to_owned(),
                message: error.to_string(),
                oldest_seq: None,
                retry_after_ms: Some(u64::try_from(retry_after.as_millis()).unwrap_or(u64::MAX)),
            },
            (None, other) => ServerFrame::error(other.code(), other.to_string()),
        })
    }
}

/// Writes `first` and whatever else is already queued with one flush: a run
/// emits several events at once, and one write per frame costs a syscall each.
async fn write_queued(
    outgoing: &mut Outgoing,
    live: &mut Live,
    first: Outbound,
) -> Result<(), axum::Error> {
    // Publish times on the stack: this runs for every frame sent.
    let mut published = [first.at; WRITE_BATCH];
    let mut written = 0;
    let mut taken = 0;
    let mut next = Some(first);
    while let Some(item) = next {
        taken += 1;
        // Already sent by a replay (a resume raced the live stream). `seq` 0
        // is a notice that is not in the log: never a duplicate.
        if item.seq == 0 || item.seq > live.delivered {
            live.delivered = live.delivered.max(item.seq);
            outgoing.feed(Message::Text(item.text)).await?;
            published[written] = item.at;
            written += 1;
        }
        next = if taken < WRITE_BATCH {
            live.queue.try_recv().ok()
        } else {
            None
        };
    }
    outgoing.flush().await?;
    let histogram = metrics::histogram!(EVENT_SEND_SECONDS);
    for at in &published[..written] {
        histogram.record(at.elapsed().as_secs_f64());
    }
    Ok(())
}

async fn send(outgoing: &mut Outgoing, frame: &ServerFrame) -> Result<(), axum::Error> {
    match encode(frame) {
        Some(text) => outgoing.send(Message::Text(text)).await,
        None => Ok(()),
    }
}

/// Several instances: starts following the user's events here (before the
/// session attaches or replays, so nothing between falls through).
pub(crate) async fn follow(
    state: &AppState,
    user_id: &UserId,
) -> Result<Option<Arc<Follow>>, StoreError> {
    match &state.cluster {
        Some(cluster) => cluster.follow(user_id).await.map(Some),
        None => Ok(None),
    }
}

/// 1011: the server could not serve the socket now; the client reconnects.
fn try_again_frame() -> CloseFrame {
    CloseFrame {
        code: 1011,
        reason: Utf8Bytes::from_static("try again"),
    }
}

fn signed_out_frame() -> CloseFrame {
    CloseFrame {
        code: 1008,
        reason: Utf8Bytes::from_static("signed out"),
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
