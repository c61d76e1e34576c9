//! One WebSocket session: greeting, client frames, queued events, heartbeat, idle timeout and close.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use cordon_core::{ConnectionId, RequestId, RunId, Thread, ThreadId, UserExecutionContext};
use cordon_engine::{StartError, SubmitError};
use cordon_protocol::ws::MAX_MESSAGE_BYTES;
use cordon_protocol::{ClientFrame, ServerFrame};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::auth::AuthUser;
use crate::metrics::EVENT_SEND_SECONDS;
use crate::state::AppState;
use crate::ws::frames::{self, FrameError};
use crate::ws::hub::{EndSignal, Ended, Outbound, Registration, encode};

/// Most frames written per flush, so one busy user cannot hold the socket's task for long.
const WRITE_BATCH: usize = 32;

/// Longest thread title taken from the first message, in characters.
const TITLE_CHARS: usize = 60;

pub struct Session {
    state: AppState,
    user: AuthUser,
    connection_id: ConnectionId,
}

type Outgoing = SplitSink<WebSocket, Message>;
type Incoming = SplitStream<WebSocket>;

/// Why the loop ended, and the close frame to send, if any.
struct Close(Option<CloseFrame>);

fn close(code: u16, reason: &'static str) -> Close {
    Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    }))
}

impl Session {
    pub fn new(state: AppState, user: AuthUser, connection_id: ConnectionId) -> Self {
        Self {
            state,
            user,
            connection_id,
        }
    }
}

/// Drives one connection until the peer leaves, goes idle, falls behind, its
/// token expires or is signed out, or the server shuts down.
pub async fn run_session(session: Session, socket: WebSocket) {
    let (mut outgoing, incoming) = socket.split();
    let (queue_tx, queue) = mpsc::channel(session.state.config.outbound_queue);
    let end = EndSignal::default();
    let _registration: Registration = session.state.hub.register(
        &session.user.user_id,
        session.user.generation,
        session.connection_id.clone(),
        queue_tx,
        end.clone(),
    );
    tracing::debug!(connection_id = %session.connection_id, user_id = %session.user.user_id, "socket opened");
    // A sign-out between the token check and the registration above did not
    // see this socket; the generation it recorded first does.
    let Close(frame) = if session.signed_out() {
        Close(Some(signed_out_frame()))
    } else {
        session.serve(&mut outgoing, incoming, queue, &end).await
    };
    if let Some(frame) = frame {
        let _ = outgoing.send(Message::Close(Some(frame))).await;
    }
    let _ = outgoing.close().await;
    tracing::debug!(connection_id = %session.connection_id, "socket closed");
}

impl Session {
    /// Greets the client, then handles its frames, the user's queued events
    /// and the timers until one of them ends the session.
    async fn serve(
        &self,
        outgoing: &mut Outgoing,
        mut incoming: Incoming,
        mut queue: mpsc::Receiver<Outbound>,
        end: &EndSignal,
    ) -> Close {
        if send(outgoing, &self.greeting()).await.is_err() {
            return Close(None);
        }
        self.prepare_engine().await;
        let config = &self.state.config;
        let mut heartbeat = tokio::time::interval_at(
            Instant::now() + config.heartbeat_interval,
            config.heartbeat_interval,
        );
        let mut last_seen = Instant::now();
        loop {
            tokio::select! {
                biased;
                () = self.state.close_sessions.cancelled() => return close(1001, "server shutting down"),
                why = end.ended() => return match why {
                    Ended::TooSlow => close(1013, "outbound queue full; reconnect and resume"),
                    Ended::SignedOut => Close(Some(signed_out_frame())),
                },
                Some(first) = queue.recv() => {
                    if write_queued(outgoing, &mut queue, first).await.is_err() {
                        return Close(None);
                    }
                }
                message = incoming.next() => {
                    let Some(Ok(message)) = message else { return Close(None) };
                    last_seen = Instant::now();
                    if let Some(end) = self.on_message(message, outgoing).await {
                        return end;
                    }
                }
                _ = heartbeat.tick() => {
                    if let Some(end) = self.on_heartbeat(outgoing).await {
                        return end;
                    }
                }
                () = tokio::time::sleep_until(last_seen + config.idle_timeout) => return close(1000, "idle timeout"),
            }
        }
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

    /// Re-checks the token and pings the client; `Some` ends the session.
    async fn on_heartbeat(&self, outgoing: &mut Outgoing) -> Option<Close> {
        if self.user.expires_at <= cordon_core::now() {
            return Some(close(1008, "token expired"));
        }
        if self.signed_out() {
            return Some(Close(Some(signed_out_frame())));
        }
        let ping = ServerFrame::Ping {
            ts: cordon_core::now(),
        };
        send(outgoing, &ping).await.err().map(|_| Close(None))
    }

    /// Whether the user signed out since this socket's token was issued. The
    /// hub closes registered sockets at once; this covers one that registered
    /// while the sign-out ran (checked right after registering) and is
    /// re-checked at every heartbeat.
    fn signed_out(&self) -> bool {
        self.state
            .generations
            .current(&self.user.user_id)
            .is_some_and(|current| current != self.user.generation)
    }

    /// Builds the user's engine while the client reads the greeting; a failure
    /// here is retried on the first message, which reports it.
    async fn prepare_engine(&self) {
        if let Err(error) = self.state.factory.prepare(&self.user.user_id).await {
            tracing::warn!(%error, "could not prepare the user's engine");
        }
    }

    /// Handles one inbound message; `Some` ends the session.
    async fn on_message(&self, message: Message, outgoing: &mut Outgoing) -> Option<Close> {
        let reply = match message {
            Message::Text(text) => self.on_text(&text).await,
            Message::Binary(_) => Some(ServerFrame::error(
                "unsupported_frame",
                "only JSON text frames are accepted",
            )),
            Message::Close(_) => return Some(Close(None)),
            Message::Ping(_) | Message::Pong(_) => None,
        };
        match reply {
            Some(frame) if send(outgoing, &frame).await.is_err() => Some(Close(None)),
            _ => None,
        }
    }

    /// Acts on a text frame; returns the direct reply, if any.
    async fn on_text(&self, text: &str) -> Option<ServerFrame> {
        let result = match frames::parse(text) {
            Ok(ClientFrame::UserMessage { thread_id, content }) => {
                self.on_user_message(thread_id, content).await
            }
            Ok(ClientFrame::Cancel { run_id }) => self.on_cancel(&run_id),
            Ok(ClientFrame::Ping {}) => {
                return Some(ServerFrame::Pong {
                    ts: cordon_core::now(),
                });
            }
            Ok(ClientFrame::Pong {}) => Ok(()),
            Err(error) => Err(error),
        };
        result
            .err()
            .map(|error| ServerFrame::error(error.code, error.message))
    }

    async fn on_user_message(
        &self,
        thread_id: Option<String>,
        content: String,
    ) -> Result<(), FrameError> {
        if content.trim().is_empty() {
            return Err(FrameError::new(
                "invalid_message",
                "`content` must not be empty",
            ));
        }
        if content.len() > MAX_MESSAGE_BYTES {
            return Err(FrameError::new(
                "message_too_large",
                format!("`content` is limited to {MAX_MESSAGE_BYTES} bytes"),
            ));
        }
        let thread_id = match thread_id {
            Some(raw) => self.own_thread(&raw).await?,
            None => self.new_thread(&content).await?,
        };
        let ctx = UserExecutionContext::new(
            self.user.user_id.clone(),
            thread_id,
            RunId::generate(),
            RequestId::generate(),
            Some(self.connection_id.clone()),
        );
        match self.state.factory.start_run(ctx, content).await {
            // A rejected run already reported itself with `agent_error`.
            Ok(_) | Err(StartError::Submit(SubmitError::Rejected(_))) => Ok(()),
            Err(error) => {
                tracing::error!(%error, "could not start a run");
                Err(FrameError::new("internal", "the run could not be started"))
            }
        }
    }

    /// The thread if it is this user's; another user's thread is "not found", like a missing one.
    async fn own_thread(&self, raw: &str) -> Result<ThreadId, FrameError> {
        let not_found = || FrameError::new("thread_not_found", "no such thread");
        let thread_id = ThreadId::parse(raw).map_err(|_| not_found())?;
        match self
            .state
            .store
            .get_thread(&self.user.user_id, &thread_id)
            .await
        {
            Ok(Some(_)) => Ok(thread_id),
            Ok(None) => Err(not_found()),
            Err(error) => {
                tracing::error!(%error, "could not read a thread");
                Err(FrameError::new("internal", "the thread could not be read"))
            }
        }
    }

    /// Creates a thread titled after the message and tells every connection of the user.
    async fn new_thread(&self, content: &str) -> Result<ThreadId, FrameError> {
        let now = cordon_core::now();
        let thread = Thread {
            id: ThreadId::generate(),
            user_id: self.user.user_id.clone(),
            title: title_of(content),
            created_at: now,
            updated_at: now,
        };
        // Queued, not awaited: the run's own writes are applied after it, and
        // thread reads wait on the queue, so nothing can observe it missing.
        self.state.store.create_thread(&thread).map_err(|error| {
            tracing::error!(%error, "could not create a thread");
            FrameError::new("internal", "the thread could not be created")
        })?;
        let frame = ServerFrame::ThreadCreated {
            thread_id: thread.id.to_string(),
            title: thread.title,
            ts: now,
        };
        self.state.hub.channel(&self.user.user_id).broadcast(&frame);
        Ok(thread.id)
    }

    fn on_cancel(&self, raw: &str) -> Result<(), FrameError> {
        let not_found = || FrameError::new("run_not_found", "no such run in progress");
        let run_id = RunId::parse(raw).map_err(|_| not_found())?;
        let engine = self
            .state
            .factory
            .existing(&self.user.user_id)
            .ok_or_else(not_found)?;
        if engine.cancel(&run_id) {
            Ok(())
        } else {
            Err(not_found())
        }
    }
}

/// Writes `first` and whatever else is already queued with one flush: a run
/// emits several events at once, and one write per frame costs a syscall each.
async fn write_queued(
    outgoing: &mut Outgoing,
    queue: &mut mpsc::Receiver<Outbound>,
    first: Outbound,
) -> Result<(), axum::Error> {
    // Publish times on the stack: this runs for every frame sent.
    let mut published = [first.0; WRITE_BATCH];
    let mut written = 0;
    let mut next = Some(first);
    while let Some((at, text)) = next {
        outgoing.feed(Message::Text(text)).await?;
        published[written] = at;
        written += 1;
        next = if written < WRITE_BATCH {
            queue.try_recv().ok()
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

fn signed_out_frame() -> CloseFrame {
    CloseFrame {
        code: 1008,
        reason: Utf8Bytes::from_static("signed out"),
    }
}

fn title_of(content: &str) -> String {
    let line = content.trim().lines().next().unwrap_or_default().trim();
    cordon_core::text::truncate_chars(line, TITLE_CHARS)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
