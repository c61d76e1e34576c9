//! The bench run: auth, connect over a ramp, hold, send, collect, report.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::sync::{Mutex, Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;

use crate::abuse;
use crate::args::BenchArgs;
use crate::client::{self, BenchUser, Observation, RunMilestone, RunTiming, Writer};
use crate::memory::server_rss;
use crate::reconnect;
use crate::report::{BenchReport, Memory};
use crate::stats::Percentiles;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("invalid arguments: {0}")]
    Args(String),
    #[error("HTTP failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("authentication failed: {0}")]
    Auth(String),
    #[error("connection failed: {0}")]
    Connect(String),
    #[error("protocol violation: {0}")]
    Protocol(String),
    #[error("ISOLATION BROKEN: {0}")]
    CrossUser(String),
    #[error("could not start a runtime: {0}")]
    Runtime(String),
}

/// Handshakes in flight at once while connecting.
const CONNECT_CONCURRENCY: usize = 256;

/// A connected bench user, between phases too.
pub(crate) struct LiveUser {
    pub user: Arc<BenchUser>,
    writers: Vec<Arc<Mutex<Writer>>>,
    observations: mpsc::UnboundedReceiver<Observation>,
    /// Messages sent so far (each question is numbered, across phases).
    sent: usize,
}

impl LiveUser {
    pub(crate) fn connections(&self) -> usize {
        self.writers.len()
    }
}

pub async fn run(args: BenchArgs) -> Result<BenchReport, BenchError> {
    let http_base = http_base(&args.url)?;
    let ws_url = ws_url_of(&args.url);
    let http = reqwest::Client::new();
    let users = authenticate_all(&http, &http_base, &args).await?;
    let rss_before = server_rss(&http, &http_base, args.server_pid).await;
    if args.abuse {
        return abuse::run(&args, &http, &http_base, &ws_url, users).await;
    }
    if let Some(every) = args.reconnect_every {
        return run_reconnecting(&args, &http, &http_base, &ws_url, users, every, rss_before).await;
    }

    let events = Arc::new(AtomicU64::new(0));
    let mut readers = JoinSet::new();
    let (live, failed_connections) =
        connect_all(&args, &ws_url, users, &events, &mut readers).await;
    let established = live.iter().map(LiveUser::connections).sum::<usize>();
    tokio::time::sleep(Duration::from_secs_f64(args.hold.max(0.0))).await;
    let rss_connected = server_rss(&http, &http_base, args.server_pid).await;

    let started = Instant::now();
    let events_before = events.load(Ordering::Relaxed);
    let sampler = spawn_rss_sampler(
        http.clone(),
        http_base.clone(),
        args.server_pid,
        args.duration.is_some(),
    );
    let (_, timings) = drive_all(Workload::from_args(&args), live, &mut readers).await?;
    let elapsed = started.elapsed();
    wait_until_quiet(&events).await;
    let rss_samples = match sampler {
        Some((stop, task)) => {
            let _ = stop.send(());
            task.await.unwrap_or_default()
        }
        None => Vec::new(),
    };
    let rss_after = server_rss(&http, &http_base, args.server_pid).await;
    readers.abort_all();

    Ok(report(
        &args,
        established,
        failed_connections,
        timings,
        elapsed,
        events.load(Ordering::Relaxed) - events_before,
        Memory {
            before_bytes: rss_before,
            connected_bytes: rss_connected,
            after_bytes: rss_after,
            per_idle_connection_bytes: per_connection(rss_before, rss_connected, established),
            samples: rss_samples,
        },
    ))
}

/// `--reconnect-every`: every user on one socket that is dropped and resumed.
async fn run_reconnecting(
    args: &BenchArgs,
    http: &reqwest::Client,
    http_base: &str,
    ws_url: &str,
    users: Vec<Arc<BenchUser>>,
    every: usize,
    rss_before: Option<u64>,
) -> Result<BenchReport, BenchError> {
    let connections = users.len();
    let started = Instant::now();
    let deadline = args
        .duration
        .map(|d| Instant::now() + Duration::from_secs_f64(d));
    let timeout = Duration::from_secs_f64(args.run_timeout);
    let (timings, mut reconnects, received) =
        reconnect::drive_all(users, ws_url, every, args.messages, deadline, timeout).await?;
    let elapsed = started.elapsed();
    reconnects.log_mismatches = reconnect::count_log_mismatches(http, http_base, &received).await?;
    let events = received.iter().map(|(_, seqs)| seqs.len() as u64).sum();
    let rss_after = server_rss(http, http_base, args.server_pid).await;
    let memory = Memory {
        before_bytes: rss_before,
        after_bytes: rss_after,
        ..Memory::default()
    };
    let mut report = report(args, connections, 0, timings, elapsed, events, memory);
    report.connections_per_user = 1;
    report.reconnect = Some(reconnects);
    Ok(report)
}

pub(crate) fn http_base(url: &str) -> Result<String, BenchError> {
    let rest = url
        .strip_prefix("ws://")
        .map(|r| format!("http://{r}"))
        .or_else(|| url.strip_prefix("wss://").map(|r| format!("https://{r}")))
        .ok_or_else(|| {
            BenchError::Args(format!("--url must start with ws:// or wss://, got {url}"))
        })?;
    Ok(rest
        .trim_end_matches('/')
        .trim_end_matches("/ws")
        .to_owned())
}

pub(crate) async fn authenticate_all(
    http: &reqwest::Client,
    base: &str,
    args: &BenchArgs,
) -> Result<Vec<Arc<BenchUser>>, BenchError> {
    let permits = Arc::new(Semaphore::new(args.auth_concurrency.max(1)));
    let mut pending = FuturesUnordered::new();
    for index in 0..args.users {
        let (http, permits) = (http.clone(), Arc::clone(&permits));
        let username = format!("{}-u{index}", args.user_prefix);
        let password = args.password.clone();
        let base = base.to_owned();
        pending.push(async move {
            let _permit = permits.acquire().await;
            let token = client::authenticate(&http, &base, &username, &password).await?;
            Ok::<_, BenchError>(Arc::new(BenchUser {
                index,
                tag: username,
                token,
            }))
        });
    }
    let mut users = Vec::with_capacity(args.users);
    while let Some(user) = pending.next().await {
        users.push(user?);
    }
    users.sort_by_key(|u| u.index);
    Ok(users)
}

/// Opens every connection, spread evenly over the ramp; starts a reader for each.
/// The `/ws` URL of a server given by its base or its `/ws` URL.
fn ws_url_of(url: &str) -> String {
    format!("{}/ws", url.trim_end_matches('/').trim_end_matches("/ws"))
}

pub(crate) async fn connect_all(
    args: &BenchArgs,
    ws_url: &str,
    users: Vec<Arc<BenchUser>>,
    events: &Arc<AtomicU64>,
    readers: &mut JoinSet<Result<(), BenchError>>,
) -> (Vec<LiveUser>, usize) {
    let instances: Vec<String> = std::iter::once(ws_url.to_owned())
        .chain(args.also_url.iter().map(|url| ws_url_of(url)))
        .collect();
    let total = (users.len() * args.connections_per_user).max(1);
    let step = Duration::from_secs_f64(args.ramp.max(0.0) / total as f64);
    let permits = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let ramp_start = tokio::time::Instant::now();
    let mut pending = FuturesUnordered::new();
    for (u, user) in users.iter().enumerate() {
        for c in 0..args.connections_per_user {
            let at = ramp_start + step * (u * args.connections_per_user + c) as u32;
            let url = instances[(u + c) % instances.len()].clone();
            let (token, permits) = (user.token.clone(), Arc::clone(&permits));
            pending.push(async move {
                tokio::time::sleep_until(at).await;
                let _permit = permits.acquire().await;
                (u, client::connect(&url, &token).await)
            });
        }
    }
    let mut sockets: Vec<Vec<_>> = users.iter().map(|_| Vec::new()).collect();
    let mut failed = 0;
    while let Some((u, socket)) = pending.next().await {
        match socket {
            Ok(socket) => sockets[u].push(socket),
            Err(error) => {
                failed += 1;
                if failed <= 3 {
                    eprintln!("cordon bench: {error}");
                }
            }
        }
    }
    let live = users
        .into_iter()
        .zip(sockets)
        .map(|(user, sockets)| start_readers(user, sockets, events, readers))
        .collect();
    (live, failed)
}

fn start_readers(
    user: Arc<BenchUser>,
    sockets: Vec<
        tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
    >,
    events: &Arc<AtomicU64>,
    readers: &mut JoinSet<Result<(), BenchError>>,
) -> LiveUser {
    let (tx, observations) = mpsc::unbounded_channel();
    let mut writers = Vec::new();
    for (c, socket) in sockets.into_iter().enumerate() {
        let (sink, stream) = socket.split();
        let writer = Arc::new(Mutex::new(sink));
        writers.push(Arc::clone(&writer));
        readers.spawn(client::read_connection(
            Arc::clone(&user),
            c,
            stream,
            writer,
            tx.clone(),
            Arc::clone(events),
        ));
    }
    LiveUser {
        user,
        writers,
        observations,
        sent: 0,
    }
}

/// What the drivers send: a fixed count per user or until a deadline, at
/// most one message per `pace` per user (zero: as fast as runs end).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Workload {
    pub messages: usize,
    pub deadline: Option<Instant>,
    pub pace: Duration,
    pub timeout: Duration,
}

impl Workload {
    pub(crate) fn from_args(args: &BenchArgs) -> Self {
        Self {
            messages: args.messages,
            deadline: args
                .duration
                .map(|d| Instant::now() + Duration::from_secs_f64(d)),
            pace: Duration::from_secs_f64(args.pace.unwrap_or(0.0).max(0.0)),
            timeout: Duration::from_secs_f64(args.run_timeout),
        }
    }

    fn more(&self, sent: usize) -> bool {
        match self.deadline {
            Some(deadline) => Instant::now() < deadline,
            None => sent < self.messages,
        }
    }
}

/// Every user sends its messages one after another; all users at once. A
/// reader that finds a cross-user frame aborts the whole run. The users come
/// back with their connections, for another phase.
pub(crate) async fn drive_all(
    workload: Workload,
    live: Vec<LiveUser>,
    readers: &mut JoinSet<Result<(), BenchError>>,
) -> Result<(Vec<LiveUser>, Vec<RunTiming>), BenchError> {
    let users = live.len().max(1) as u32;
    let mut drivers = JoinSet::new();
    for (u, user) in live.into_iter().enumerate() {
        // Paced users start spread over one pace, not in lockstep.
        let offset = workload.pace * u as u32 / users;
        drivers.spawn(drive_user(workload, user, offset));
    }
    let (mut back, mut all) = (Vec::new(), Vec::new());
    loop {
        tokio::select! {
            done = drivers.join_next() => match done {
                Some(Ok((user, timings))) => {
                    back.push(user);
                    all.extend(timings);
                }
                Some(Err(_)) => {}
                None => {
                    back.sort_by_key(|u: &LiveUser| u.user.index);
                    return Ok((back, all));
                }
            },
            Some(Ok(Err(error))) = readers.join_next() => return Err(error),
        }
    }
}

async fn drive_user(
    workload: Workload,
    mut user: LiveUser,
    offset: Duration,
) -> (LiveUser, Vec<RunTiming>) {
    let mut timings = Vec::new();
    if user.writers.is_empty() {
        return (user, timings);
    }
    tokio::time::sleep(offset).await;
    let mut m = user.sent;
    while workload.more(m - user.sent) {
        let sent = Instant::now();
        let c = m % user.writers.len();
        let writer = Arc::clone(&user.writers[c]);
        timings.push(
            client::ask(
                &user.user,
                m,
                c,
                &writer,
                &mut user.observations,
                workload.timeout,
            )
            .await,
        );
        m += 1;
        tokio::time::sleep_until((sent + workload.pace).into()).await;
    }
    user.sent = m;
    (user, timings)
}

/// A user's other connections may still be receiving the last events when its
/// driver finishes; wait until no event has arrived for a moment (at most 5 s).
pub(crate) async fn wait_until_quiet(events: &AtomicU64) {
    for _ in 0..20 {
        let before = events.load(Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(250)).await;
        if events.load(Ordering::Relaxed) == before {
            return;
        }
    }
}

/// Stops the RSS sampler, and the task that returns its samples.
type RssSampler = (
    oneshot::Sender<()>,
    tokio::task::JoinHandle<Vec<(f64, u64)>>,
);

/// Samples the server's RSS every 5 s until stopped (for --duration runs), to show whether memory is stable.
fn spawn_rss_sampler(
    http: reqwest::Client,
    base: String,
    pid: Option<u32>,
    enabled: bool,
) -> Option<RssSampler> {
    enabled.then(|| {
        let (stop, mut stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let start = Instant::now();
            let mut samples = Vec::new();
            let mut ticks = tokio::time::interval(Duration::from_secs(5));
            loop {
                tokio::select! {
                    _ = &mut stopped => return samples,
                    _ = ticks.tick() => {
                        if let Some(rss) = server_rss(&http, &base, pid).await {
                            samples.push((start.elapsed().as_secs_f64().round(), rss));
                        }
                    }
                }
            }
        });
        (stop, task)
    })
}

fn per_connection(before: Option<u64>, connected: Option<u64>, connections: usize) -> Option<u64> {
    let grown = connected?.checked_sub(before?)?;
    (connections > 0).then(|| grown / connections as u64)
}

pub(crate) fn report(
    args: &BenchArgs,
    established: usize,
    failed_connections: usize,
    timings: Vec<RunTiming>,
    elapsed: Duration,
    events: u64,
    memory: Memory,
) -> BenchReport {
    let (started, completed) = client::latencies(&timings);
    let mut failed_by_code = BTreeMap::new();
    for timing in &timings {
        if let RunMilestone::Failed(code) = &timing.outcome {
            *failed_by_code.entry(code.clone()).or_insert(0usize) += 1;
        }
    }
    let secs = elapsed.as_secs_f64().max(f64::EPSILON);
    BenchReport {
        users: args.users,
        connections_per_user: args.connections_per_user,
        connections_established: established,
        connections_failed: failed_connections,
        runs_completed: completed.len(),
        runs_failed: timings.len() - completed.len(),
        runs_failed_by_code: failed_by_code,
        cross_user_events: 0,
        time_to_agent_started: Percentiles::of(&started),
        time_to_agent_completed: Percentiles::of(&completed),
        run_events_received: events,
        events_per_second: events as f64 / secs,
        runs_per_second: completed.len() as f64 / secs,
        send_phase_seconds: secs,
        server_memory: memory,
        reconnect: None,
        abuse: None,
    }
}
