//! `--reconnect-every N`: one connection per user, dropped after every N events and resumed from its last `seq`; the events it got must be exactly the user's log.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cordon_protocol::{ClientFrame, ServerFrame};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, BenchUser, RunMilestone, RunTiming, Socket};
use crate::run::BenchError;
use crate::stats::Percentiles;

/// What the reconnecting clients saw.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReconnectReport {
    pub reconnect_every: usize,
    pub reconnects: u64,
    /// A `seq` that skipped one or more numbers.
    pub gaps: u64,
    /// A `seq` at or below one already received.
    pub duplicates: u64,
    /// Users whose received events differ from their stored log (`GET /api/events`).
    pub log_mismatches: u64,
    /// From starting a reconnect to the first event on the new socket.
    pub reconnect_to_first_event: Percentiles,
}

impl ReconnectReport {
    pub fn passed(&self) -> bool {
        self.gaps == 0 && self.duplicates == 0 && self.log_mismatches == 0
    }
}

/// One user's client: its socket, its cursor, and what it has seen.
struct Resumer {
    user: Arc<BenchUser>,
    url: String,
    socket: Socket,
    every: usize,
    since_connect: usize,
    threads: HashSet<String>,
    received: Vec<u64>,
    /// When the current reconnect began, until its first event arrives.
    reconnecting_since: Option<Instant>,
    to_first_event: Vec<Duration>,
    reconnects: u64,
    gaps: u64,
    duplicates: u64,
}

/// The run that `ask` waits for, as far as it is known.
struct AwaitedRun {
    client_request_id: String,
    run_id: Option<String>,
    sent: Instant,
    to_started: Option<Duration>,
}

/// Runs every user's messages over a reconnecting socket; returns the
/// timings, the report and each user's received `seq`s.
pub async fn drive_all(
    users: Vec<Arc<BenchUser>>,
    ws_url: &str,
    every: usize,
    messages: usize,
    deadline: Option<Instant>,
    timeout: Duration,
) -> Result<
    (
        Vec<RunTiming>,
        ReconnectReport,
        Vec<(Arc<BenchUser>, Vec<u64>)>,
    ),
    BenchError,
> {
    let mut drivers = JoinSet::new();
    for user in users {
        let url = ws_url.to_owned();
        drivers.spawn(async move {
            let socket = client::connect(&url, &user.token).await?;
            let mut resumer = Resumer::new(user, url, socket, every.max(1));
            let mut timings = Vec::new();
            for m in 0.. {
                let more = deadline.map_or(m < messages, |d| Instant::now() < d);
                if !more {
                    break;
                }
                timings.push(resumer.ask(m, timeout).await?);
            }
            Ok::<_, BenchError>((timings, resumer))
        });
    }
    let mut timings = Vec::new();
    let mut report = ReconnectReport {
        reconnect_every: every,
        ..ReconnectReport::default()
    };
    let mut first_events = Vec::new();
    let mut received = Vec::new();
    while let Some(done) = drivers.join_next().await {
        let (user_timings, resumer) =
            done.map_err(|e| BenchError::Protocol(format!("a driver panicked: {e}")))??;
        timings.extend(user_timings);
        report.reconnects += resumer.reconnects;
        report.gaps += resumer.gaps;
        report.duplicates += resumer.duplicates;
        first_events.extend(resumer.to_first_event);
        received.push((resumer.user, resumer.received));
    }
    report.reconnect_to_first_event = Percentiles::of(&first_events);
    Ok((timings, report, received))
}

impl Resumer {
    fn new(user: Arc<BenchUser>, url: String, socket: Socket, every: usize) -> Self {
        Self {
            user,
            url,
            socket,
            every,
            since_connect: 0,
            threads: HashSet::new(),
            received: Vec::new(),
            reconnecting_since: None,
            to_first_event: Vec::new(),
            reconnects: 0,
            gaps: 0,
            duplicates: 0,
        }
    }

    fn last_seq(&self) -> u64 {
        self.received.last().copied().unwrap_or(0)
    }

    /// Sends one question and follows its run to the end across reconnects.
    async fn ask(&mut self, m: usize, timeout: Duration) -> Result<RunTiming, BenchError> {
        let mut pending = AwaitedRun {
            client_request_id: format!("{}-m{m}", self.user.tag),
            run_id: None,
            sent: Instant::now(),
            to_started: None,
        };
        let frame = ClientFrame::UserMessage {
            thread_id: None,
            content: self.user.question(m),
            client_request_id: Some(pending.client_request_id.clone()),
            multitask: None,
        };
        let text =
            serde_json::to_string(&frame).map_err(|e| BenchError::Protocol(e.to_string()))?;
        self.socket
            .send(Message::text(text))
            .await
            .map_err(|e| BenchError::Connect(e.to_string()))?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let Ok(next) = tokio::time::timeout_at(deadline, self.socket.next()).await else {
                return Ok(pending.ended(RunMilestone::Failed("bench_timeout".into())));
            };
            let text = match next {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(_)) => continue,
                // The server closed it (e.g. a slow consumer): resume like any drop.
                Some(Err(_)) | None => {
                    self.reconnect().await?;
                    continue;
                }
            };
            let frame: ServerFrame =
                serde_json::from_str(&text).map_err(|e| BenchError::Protocol(e.to_string()))?;
            if let Some(end) = self.take(&frame, &mut pending).await? {
                return Ok(pending.ended(end));
            }
        }
    }

    /// Checks and records one frame; `Some` once the pending run ended.
    async fn take(
        &mut self,
        frame: &ServerFrame,
        pending: &mut AwaitedRun,
    ) -> Result<Option<RunMilestone>, BenchError> {
        if let ServerFrame::Ping { .. } = frame {
            let pong = serde_json::to_string(&ClientFrame::Pong {}).unwrap_or_default();
            let _ = self.socket.send(Message::text(pong)).await;
            return Ok(None);
        }
        if let ServerFrame::Error { code, message, .. } = frame {
            // A refused message: the run it asked for never existed.
            if code == "rate_limited" {
                return Ok(Some(RunMilestone::Failed(code.clone())));
            }
            return Err(BenchError::Protocol(format!(
                "error frame {code}: {message}"
            )));
        }
        let Some(envelope) = frame.envelope() else {
            return Ok(None);
        };
        if envelope.seq == 0 {
            // A refusal of the message just sent: it never became a run.
            return Ok(client::milestone(frame));
        }
        if let Some(since) = self.reconnecting_since.take() {
            self.to_first_event.push(since.elapsed());
        }
        self.check(frame, envelope.seq, &envelope.thread_id)?;
        let ours = self.follow(frame, pending, &envelope.run_id);
        let end = ours.then(|| client::milestone(frame)).flatten();
        if end.is_none() {
            self.since_connect += 1;
            if self.since_connect >= self.every {
                self.reconnect().await?;
            }
        }
        Ok(end.filter(|m| *m != RunMilestone::Started))
    }

    /// Ownership and order: the thread must be this user's, `seq` the next one.
    fn check(&mut self, frame: &ServerFrame, seq: u64, thread_id: &str) -> Result<(), BenchError> {
        if let ServerFrame::ThreadCreated { title, .. } = frame {
            if !title.starts_with(&format!("{} ", self.user.tag)) {
                return Err(client::cross_user(&self.user, frame));
            }
            self.threads.insert(thread_id.to_owned());
        }
        if !self.threads.contains(thread_id) {
            return Err(client::cross_user(&self.user, frame));
        }
        client::verify_answer(&self.user, frame)?;
        let last = self.last_seq();
        if seq <= last {
            self.duplicates += 1;
            return Ok(());
        }
        if seq != last + 1 {
            self.gaps += 1;
        }
        self.received.push(seq);
        Ok(())
    }

    /// Whether the frame is of the pending run (matched by `client_request_id`).
    fn follow(&self, frame: &ServerFrame, pending: &mut AwaitedRun, run_id: &str) -> bool {
        if let ServerFrame::AgentStarted {
            client_request_id: Some(id),
            ..
        } = frame
            && *id == pending.client_request_id
        {
            pending.run_id = Some(run_id.to_owned());
            pending.to_started.get_or_insert(pending.sent.elapsed());
        }
        pending.run_id.as_deref() == Some(run_id)
    }

    /// Drops the socket (no close frame, as a lost network would) and
    /// resumes after the last `seq` received.
    async fn reconnect(&mut self) -> Result<(), BenchError> {
        self.reconnecting_since = Some(Instant::now());
        self.reconnects += 1;
        let url = format!("{}?after_seq={}", self.url, self.last_seq());
        self.socket = client::connect(&url, &self.user.token).await?;
        self.since_connect = 0;
        Ok(())
    }
}

impl AwaitedRun {
    fn ended(&self, outcome: RunMilestone) -> RunTiming {
        RunTiming {
            to_started: self.to_started,
            to_end: self.sent.elapsed(),
            outcome,
        }
    }
}

/// Users whose received `seq`s differ from their stored log, read page by page.
pub async fn count_log_mismatches(
    http: &reqwest::Client,
    base: &str,
    received: &[(Arc<BenchUser>, Vec<u64>)],
) -> Result<u64, BenchError> {
    let mut mismatches = 0;
    for (user, seqs) in received {
        if stored_seqs(http, base, &user.token).await? != *seqs {
            mismatches += 1;
        }
    }
    Ok(mismatches)
}

async fn stored_seqs(
    http: &reqwest::Client,
    base: &str,
    token: &str,
) -> Result<Vec<u64>, BenchError> {
    let mut seqs = Vec::new();
    loop {
        let after = seqs.last().copied().unwrap_or(0);
        let page: Vec<serde_json::Value> = http
            .get(format!("{base}/api/events?after_seq={after}&limit=1000"))
            .bearer_auth(token)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        if page.is_empty() {
            return Ok(seqs);
        }
        seqs.extend(page.iter().filter_map(|event| event["seq"].as_u64()));
    }
}
