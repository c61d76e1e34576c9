//! One bench user: auth, its connections, a reader per connection that verifies ownership, and the message driver.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cordon_protocol::rest::{AuthResponse, Credentials};
use cordon_protocol::{ClientFrame, RunEnvelope, ServerFrame};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::run::BenchError;

pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;
pub type Writer = SplitSink<Socket, Message>;

/// Who a bench user is: its index (encoded in every question it asks) and token.
#[derive(Debug, Clone)]
pub struct BenchUser {
    pub index: usize,
    pub tag: String,
    pub token: String,
}

impl BenchUser {
    /// A question whose answer encodes the user's index: `index * 1000 + m`.
    pub fn question(&self, m: usize) -> String {
        format!(
            "{} m{m}: what is {} * 1000 + {}?",
            self.tag,
            self.index,
            m % 1000
        )
    }
}

/// Registers `username`, or logs in if it exists; returns the token.
pub async fn authenticate(
    http: &reqwest::Client,
    base: &str,
    username: &str,
    password: &str,
) -> Result<String, BenchError> {
    let body = Credentials {
        username: username.to_owned(),
        password: password.to_owned(),
    };
    let registered = http
        .post(format!("{base}/api/auth/register"))
        .json(&body)
        .send()
        .await?;
    let response = if registered.status().as_u16() == 409 {
        http.post(format!("{base}/api/auth/login"))
            .json(&body)
            .send()
            .await?
    } else {
        registered
    };
    if !response.status().is_success() {
        return Err(BenchError::Auth(format!(
            "{username}: HTTP {}",
            response.status()
        )));
    }
    let auth: AuthResponse = response.json().await?;
    Ok(auth.token)
}

/// Opens one authenticated socket with small buffers and reads the greeting.
pub async fn connect(url: &str, token: &str) -> Result<Socket, BenchError> {
    let mut request = url
        .into_client_request()
        .map_err(|e| BenchError::Connect(e.to_string()))?;
    let bearer = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|e| BenchError::Connect(e.to_string()))?;
    request.headers_mut().insert("authorization", bearer);
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(4096);
    let (mut socket, _) = tokio_tungstenite::connect_async_with_config(request, Some(config), true)
        .await
        .map_err(|e| BenchError::Connect(e.to_string()))?;
    match socket.next().await {
        Some(Ok(Message::Text(text)))
            if matches!(
                serde_json::from_str(&text),
                Ok(ServerFrame::ConnectionEstablished { .. })
            ) =>
        {
            Ok(socket)
        }
        other => Err(BenchError::Connect(format!("no greeting: {other:?}"))),
    }
}

/// What a reader tells its user's driver about a run.
#[derive(Debug)]
pub struct Observation {
    pub connection: usize,
    pub kind: RunMilestone,
    pub at: Instant,
    /// The run the frame is of (none for a `rate_limited` refusal).
    pub run_id: Option<String>,
    /// The `client_request_id` echoed by `agent_started` or a refusal.
    pub request_id: Option<String>,
}

impl Observation {
    fn of(connection: usize, frame: &ServerFrame) -> Option<Self> {
        let kind = milestone(frame)?;
        let request_id = match frame {
            ServerFrame::AgentStarted {
                client_request_id, ..
            }
            | ServerFrame::AgentError {
                client_request_id, ..
            } => client_request_id.clone(),
            _ => None,
        };
        Some(Self {
            connection,
            kind,
            at: Instant::now(),
            run_id: frame.envelope().map(|e| e.run_id.clone()),
            request_id,
        })
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum RunMilestone {
    Started,
    Completed,
    Failed(String),
}

/// Reads one connection until it closes, checking that every frame is this user's.
pub async fn read_connection(
    user: Arc<BenchUser>,
    connection: usize,
    mut stream: SplitStream<Socket>,
    writer: Arc<tokio::sync::Mutex<Writer>>,
    observations: mpsc::UnboundedSender<Observation>,
    events: Arc<AtomicU64>,
) -> Result<(), BenchError> {
    let mut threads: HashSet<String> = HashSet::new();
    let mut last_seq = 0u64;
    while let Some(message) = stream.next().await {
        let text = match message {
            Ok(Message::Text(text)) => text,
            Ok(Message::Close(frame)) => return closed_by_server(&user, frame),
            _ => continue,
        };
        let frame: ServerFrame =
            serde_json::from_str(&text).map_err(|e| BenchError::Protocol(e.to_string()))?;
        match &frame {
            ServerFrame::Ping { .. } => {
                let _ = send(&writer, &ClientFrame::Pong {}).await;
            }
            ServerFrame::ThreadCreated {
                envelope, title, ..
            } => {
                if !title.starts_with(&format!("{} ", user.tag)) {
                    return Err(cross_user(&user, &frame));
                }
                threads.insert(envelope.thread_id.clone());
                verify_run_event(&user, &frame, envelope, &threads, &mut last_seq)?;
                events.fetch_add(1, Ordering::Relaxed);
            }
            // A refused message: the run it asked for never existed.
            ServerFrame::Error { code, .. } if code == "rate_limited" => {
                let _ = observations.send(Observation {
                    connection,
                    kind: RunMilestone::Failed(code.clone()),
                    at: Instant::now(),
                    run_id: None,
                    request_id: None,
                });
            }
            ServerFrame::Error { .. } => {
                return Err(BenchError::Protocol(format!(
                    "server error frame: {frame:?}"
                )));
            }
            _ => {
                let Some(envelope) = frame.envelope() else {
                    continue;
                };
                // `seq` 0 is a refusal sent to this connection only, not a log event.
                if envelope.seq != 0 {
                    verify_run_event(&user, &frame, envelope, &threads, &mut last_seq)?;
                }
                events.fetch_add(1, Ordering::Relaxed);
                if let Some(observation) = Observation::of(connection, &frame) {
                    let _ = observations.send(observation);
                }
            }
        }
    }
    Ok(())
}

/// Serializes and sends one client frame.
pub async fn send(
    writer: &tokio::sync::Mutex<Writer>,
    frame: &ClientFrame,
) -> Result<(), BenchError> {
    let text = serde_json::to_string(frame).map_err(|e| BenchError::Protocol(e.to_string()))?;
    writer
        .lock()
        .await
        .send(Message::text(text))
        .await
        .map_err(|e| BenchError::Connect(e.to_string()))
}

/// The server closing a socket mid-run (slow consumer, token expiry, …) is a
/// failure the report must show; a normal close at shutdown is not.
fn closed_by_server(
    user: &BenchUser,
    frame: Option<tokio_tungstenite::tungstenite::protocol::CloseFrame>,
) -> Result<(), BenchError> {
    match frame {
        Some(frame) if u16::from(frame.code) != 1000 && u16::from(frame.code) != 1001 => {
            Err(BenchError::Protocol(format!(
                "the server closed a socket of {}: {} {}",
                user.tag,
                u16::from(frame.code),
                frame.reason
            )))
        }
        _ => Ok(()),
    }
}

fn verify_run_event(
    user: &BenchUser,
    frame: &ServerFrame,
    envelope: &RunEnvelope,
    threads: &HashSet<String>,
    last_seq: &mut u64,
) -> Result<(), BenchError> {
    if !threads.contains(&envelope.thread_id) {
        return Err(cross_user(user, frame));
    }
    if envelope.seq <= *last_seq {
        return Err(BenchError::Protocol(format!(
            "seq went from {last_seq} to {} for {}",
            envelope.seq, user.tag
        )));
    }
    *last_seq = envelope.seq;
    verify_answer(user, frame)
}

/// An answer must be to this user's question: it encodes the user's index.
pub(crate) fn verify_answer(user: &BenchUser, frame: &ServerFrame) -> Result<(), BenchError> {
    if let ServerFrame::AgentCompleted { answer, .. } = frame {
        let value: Option<u64> = answer
            .rsplit(" = ")
            .next()
            .and_then(|v| v.trim_end_matches('.').parse().ok());
        if value.map(|v| v / 1000) != Some(user.index as u64) {
            return Err(cross_user(user, frame));
        }
    }
    Ok(())
}

pub(crate) fn milestone(frame: &ServerFrame) -> Option<RunMilestone> {
    match frame {
        ServerFrame::AgentStarted { .. } => Some(RunMilestone::Started),
        ServerFrame::AgentCompleted { .. } => Some(RunMilestone::Completed),
        ServerFrame::AgentError { code, .. } => {
            Some(RunMilestone::Failed(code.as_str().to_owned()))
        }
        _ => None,
    }
}

pub(crate) fn cross_user(user: &BenchUser, frame: &ServerFrame) -> BenchError {
    BenchError::CrossUser(format!(
        "{} received a frame that is not theirs: {frame:?}",
        user.tag
    ))
}

/// Time to `agent_started` of every run that started, and to the end of every
/// run that completed.
pub(crate) fn latencies(timings: &[RunTiming]) -> (Vec<Duration>, Vec<Duration>) {
    let started = timings.iter().filter_map(|t| t.to_started).collect();
    let completed = timings
        .iter()
        .filter(|t| t.outcome == RunMilestone::Completed)
        .map(|t| t.to_end)
        .collect();
    (started, completed)
}

/// The timings of one run as its sender saw them.
#[derive(Debug)]
pub struct RunTiming {
    pub to_started: Option<Duration>,
    pub to_end: Duration,
    pub outcome: RunMilestone,
}

/// Sends one question on `connection` and waits for its run to end.
pub async fn ask(
    user: &BenchUser,
    m: usize,
    connection: usize,
    writer: &tokio::sync::Mutex<Writer>,
    observations: &mut mpsc::UnboundedReceiver<Observation>,
    timeout: Duration,
) -> RunTiming {
    let request_id = format!("{}-m{m}", user.tag);
    let frame = ClientFrame::UserMessage {
        thread_id: None,
        content: user.question(m),
        client_request_id: Some(request_id.clone()),
        multitask: None,
    };
    let sent = Instant::now();
    if send(writer, &frame).await.is_err() {
        return RunTiming {
            to_started: None,
            to_end: sent.elapsed(),
            outcome: RunMilestone::Failed("send_failed".into()),
        };
    }
    let mut to_started = None;
    let mut run_id = None;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let Ok(Some(observation)) = tokio::time::timeout_at(deadline, observations.recv()).await
        else {
            return RunTiming {
                to_started,
                to_end: sent.elapsed(),
                outcome: RunMilestone::Failed("bench_timeout".into()),
            };
        };
        // Timed on the socket that asked, for this message's run only: the
        // user's other sockets report the same runs, later or earlier.
        if observation.connection != connection
            || !answers(&observation, &request_id, run_id.as_deref())
        {
            continue;
        }
        let elapsed = observation.at.duration_since(sent);
        match observation.kind {
            RunMilestone::Started => {
                to_started = Some(elapsed);
                run_id = observation.run_id;
            }
            end => {
                return RunTiming {
                    to_started,
                    to_end: elapsed,
                    outcome: end,
                };
            }
        }
    }
}

/// Whether an observation is of the message `request_id` asked: its start
/// (which echoes the id), a refusal of it, or the end of the run it started.
fn answers(observation: &Observation, request_id: &str, run_id: Option<&str>) -> bool {
    match (&observation.kind, run_id) {
        (RunMilestone::Started, _) => observation.request_id.as_deref() == Some(request_id),
        (_, Some(run_id)) => observation.run_id.as_deref() == Some(run_id),
        // Not started: a refusal echoing the id, or `rate_limited` (of no run).
        (_, None) => match observation.request_id.as_deref() {
            Some(id) => id == request_id,
            None => observation.run_id.is_none(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(kind: RunMilestone, run_id: Option<&str>, request_id: Option<&str>) -> Observation {
        Observation {
            connection: 0,
            kind,
            at: Instant::now(),
            run_id: run_id.map(str::to_owned),
            request_id: request_id.map(str::to_owned),
        }
    }

    #[test]
    fn another_runs_reports_are_not_this_messages_answer() {
        // The previous run, reported late by this socket, is skipped.
        let stale_start = seen(RunMilestone::Started, Some("run-1"), Some("u-m0"));
        let stale_end = seen(RunMilestone::Completed, Some("run-1"), None);
        assert!(!answers(&stale_start, "u-m1", None));
        assert!(!answers(&stale_end, "u-m1", None));
        // This message's start, then its run's end.
        let start = seen(RunMilestone::Started, Some("run-2"), Some("u-m1"));
        assert!(answers(&start, "u-m1", None));
        let end = seen(RunMilestone::Completed, Some("run-2"), None);
        assert!(answers(&end, "u-m1", Some("run-2")));
        assert!(!answers(&stale_end, "u-m1", Some("run-2")));
        // Refusals: one echoing the id, and `rate_limited`, which names no run.
        let refused = seen(
            RunMilestone::Failed("overloaded".into()),
            Some("run-3"),
            Some("u-m1"),
        );
        assert!(answers(&refused, "u-m1", None));
        let limited = seen(RunMilestone::Failed("rate_limited".into()), None, None);
        assert!(answers(&limited, "u-m1", None));
    }
}
