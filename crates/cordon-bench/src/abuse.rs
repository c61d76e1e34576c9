//! `--abuse`: the users measured alone, then while one noisy tenant floods sockets, messages, history searches and sign-ins; the change in their latency is the figure.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cordon_protocol::{ClientFrame, ServerFrame};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use crate::args::BenchArgs;
use crate::client::{self, BenchUser, RunTiming, Socket};
use crate::report::{BenchReport, Memory};
use crate::run::{self, BenchError, LiveUser, Workload};
use crate::stats::Percentiles;

/// Seconds per phase when `--duration` is not given.
const DEFAULT_PHASE_SECS: f64 = 20.0;
/// Seconds between two messages of a normal user when `--pace` is not given:
/// 30 a minute, well inside the default limit of 120.
const DEFAULT_PACE_SECS: f64 = 2.0;
/// Wrong-password sign-ins the noisy tenant tries per second.
const LOGIN_FLOOD_PER_SEC: u64 = 20;
/// Between two REST probes of the normal users' reads.
const PROBE_GAP: Duration = Duration::from_millis(5);
/// Between two sign-ins of the normal sign-in probe (each costs a password
/// hash, so it is sparse: about 40 samples a phase).
const SIGN_IN_GAP: Duration = Duration::from_millis(500);

/// The normal users' figures alone and beside the noisy tenant.
#[derive(Debug, Clone, Serialize)]
pub struct AbuseReport {
    pub phase_seconds: f64,
    pub pace_seconds: f64,
    pub alone: PhaseFigures,
    pub with_noisy: PhaseFigures,
    /// `with_noisy` p99 over `alone` p99, minus one (0.1 = 10 % slower).
    pub p99_change: LatencyChange,
    pub noisy_tenant: NoisyCounts,
}

#[derive(Debug, Clone, Serialize)]
pub struct PhaseFigures {
    pub runs_completed: usize,
    pub runs_failed: usize,
    pub to_agent_started: Percentiles,
    pub to_agent_completed: Percentiles,
    /// `GET /api/threads` of the normal users, probed every 5 ms.
    pub rest_threads: Percentiles,
    /// A normal user's `POST /api/auth/login` with the right password, every 0.5 s.
    pub sign_in: Percentiles,
}

#[derive(Debug, Clone, Serialize)]
pub struct LatencyChange {
    pub to_agent_started: f64,
    pub to_agent_completed: f64,
    pub rest_threads: f64,
    pub sign_in: f64,
}

/// What the noisy tenant tried, and what the server let through.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NoisyCounts {
    pub sockets_opened: u64,
    pub sockets_refused: u64,
    pub messages_sent: u64,
    pub runs_admitted: u64,
    pub rate_limited: u64,
    pub other_refusals: u64,
    pub sign_ins_tried: u64,
    pub sign_ins_throttled: u64,
}

impl AbuseReport {
    /// The target of the abuse-resistance issue: each p99 changes by less than 20 %.
    pub fn target_met(&self) -> bool {
        let c = &self.p99_change;
        [c.to_agent_started, c.to_agent_completed, c.rest_threads]
            .iter()
            .all(|change| *change < 0.20)
    }
}

pub async fn run(
    args: &BenchArgs,
    http: &reqwest::Client,
    http_base: &str,
    ws_url: &str,
    users: Vec<Arc<BenchUser>>,
) -> Result<BenchReport, BenchError> {
    let phase = Duration::from_secs_f64(args.duration.unwrap_or(DEFAULT_PHASE_SECS).max(1.0));
    let pace = Duration::from_secs_f64(args.pace.unwrap_or(DEFAULT_PACE_SECS).max(0.0));
    let noisy_name = format!("{}-noisy", args.user_prefix);
    let noisy_token = client::authenticate(http, http_base, &noisy_name, &args.password).await?;
    let signer = format!("{}-signer", args.user_prefix);
    client::authenticate(http, http_base, &signer, &args.password).await?;
    let probe = Probe {
        http: http.clone(),
        url: format!("{http_base}/api/threads?limit=20"),
        tokens: users.iter().map(|u| u.token.clone()).collect(),
        sign_in: SignInProbe {
            http: http.clone(),
            url: format!("{http_base}/api/auth/login"),
            body: serde_json::json!({"username": signer, "password": args.password}),
        },
    };
    let events = Arc::new(AtomicU64::new(0));
    let mut readers = JoinSet::new();
    let (live, failed_connections) =
        run::connect_all(args, ws_url, users, &events, &mut readers).await;
    let established = live.iter().map(LiveUser::connections).sum::<usize>();
    let started = Instant::now();

    let workload = |phase| Workload {
        messages: usize::MAX,
        deadline: Some(Instant::now() + phase),
        pace,
        timeout: Duration::from_secs_f64(args.run_timeout),
    };
    let (live, alone) = measure(workload(phase), live, &mut readers, &probe).await?;
    let noisy = Noisy::start(args, http_base, ws_url, &noisy_name, &noisy_token).await?;
    // Let the flood reach its steady state (the burst of its token bucket spent).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_live, with_noisy) = measure(workload(phase), live, &mut readers, &probe).await?;
    let noisy_tenant = noisy.stop();
    run::wait_until_quiet(&events).await;
    readers.abort_all();

    let mut timings = alone.timings;
    timings.extend(with_noisy.timings);
    let mut report = run::report(
        args,
        established,
        failed_connections,
        timings,
        started.elapsed(),
        events.load(Ordering::Relaxed),
        Memory::default(),
    );
    let (alone, with_noisy) = (alone.figures, with_noisy.figures);
    report.abuse = Some(AbuseReport {
        phase_seconds: phase.as_secs_f64(),
        pace_seconds: pace.as_secs_f64(),
        p99_change: LatencyChange {
            to_agent_started: change(&alone.to_agent_started, &with_noisy.to_agent_started),
            to_agent_completed: change(&alone.to_agent_completed, &with_noisy.to_agent_completed),
            rest_threads: change(&alone.rest_threads, &with_noisy.rest_threads),
            sign_in: change(&alone.sign_in, &with_noisy.sign_in),
        },
        alone,
        with_noisy,
        noisy_tenant,
    });
    Ok(report)
}

fn change(before: &Percentiles, after: &Percentiles) -> f64 {
    if before.p99_ms <= 0.0 {
        return 0.0;
    }
    after.p99_ms / before.p99_ms - 1.0
}

struct Phase {
    timings: Vec<RunTiming>,
    figures: PhaseFigures,
}

/// One phase: the users' runs, and their REST reads probed meanwhile.
async fn measure(
    workload: Workload,
    live: Vec<LiveUser>,
    readers: &mut JoinSet<Result<(), BenchError>>,
    probe: &Probe,
) -> Result<(Vec<LiveUser>, Phase), BenchError> {
    let deadline = workload.deadline.unwrap_or_else(Instant::now);
    let prober = tokio::spawn(probe.clone().run_until(deadline));
    let signer = tokio::spawn(probe.sign_in.clone().run_until(deadline));
    let (live, timings) = run::drive_all(workload, live, readers).await?;
    let rest = prober.await.unwrap_or_default();
    let sign_in = signer.await.unwrap_or_default();
    let (started, completed) = client::latencies(&timings);
    let figures = PhaseFigures {
        runs_completed: completed.len(),
        runs_failed: timings.len() - completed.len(),
        to_agent_started: Percentiles::of(&started),
        to_agent_completed: Percentiles::of(&completed),
        rest_threads: Percentiles::of(&rest),
        sign_in: Percentiles::of(&sign_in),
    };
    Ok((live, Phase { timings, figures }))
}

/// Reads `GET /api/threads` as each normal user in turn.
#[derive(Clone)]
struct Probe {
    http: reqwest::Client,
    url: String,
    tokens: Vec<String>,
    sign_in: SignInProbe,
}

impl Probe {
    async fn run_until(self, deadline: Instant) -> Vec<Duration> {
        let mut latencies = Vec::new();
        for token in self.tokens.iter().cycle() {
            if Instant::now() >= deadline {
                break;
            }
            let sent = Instant::now();
            let answered = self.http.get(&self.url).bearer_auth(token).send().await;
            if answered.is_ok_and(|r| r.status().is_success()) {
                latencies.push(sent.elapsed());
            }
            tokio::time::sleep(PROBE_GAP).await;
        }
        latencies
    }
}

/// Signs a normal user in with the right password, as a person would beside
/// the guesser: what the guesser's hashes cost everyone else's sign-in.
#[derive(Clone)]
struct SignInProbe {
    http: reqwest::Client,
    url: String,
    body: serde_json::Value,
}

impl SignInProbe {
    async fn run_until(self, deadline: Instant) -> Vec<Duration> {
        let mut latencies = Vec::new();
        while Instant::now() < deadline {
            let sent = Instant::now();
            let answered = self.http.post(&self.url).json(&self.body).send().await;
            if answered.is_ok_and(|r| r.status().is_success()) {
                latencies.push(sent.elapsed());
            }
            tokio::time::sleep(SIGN_IN_GAP).await;
        }
        latencies
    }
}

#[derive(Default)]
struct Counters {
    sockets_opened: AtomicU64,
    sockets_refused: AtomicU64,
    messages_sent: AtomicU64,
    runs_admitted: AtomicU64,
    rate_limited: AtomicU64,
    other_refusals: AtomicU64,
    sign_ins_tried: AtomicU64,
    sign_ins_throttled: AtomicU64,
}

impl Counters {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> NoisyCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        NoisyCounts {
            sockets_opened: get(&self.sockets_opened),
            sockets_refused: get(&self.sockets_refused),
            messages_sent: get(&self.messages_sent),
            runs_admitted: get(&self.runs_admitted),
            rate_limited: get(&self.rate_limited),
            other_refusals: get(&self.other_refusals),
            sign_ins_tried: get(&self.sign_ins_tried),
            sign_ins_throttled: get(&self.sign_ins_throttled),
        }
    }
}

/// The noisy tenant's tasks; they run until stopped, on a runtime (and a
/// thread) of their own: the bench's own work for the flood (building and
/// masking its frames) never queues ahead of the normal users' tasks and the
/// probe, so the change in their figures is the server's, not the load
/// generator's.
struct Noisy {
    runtime: tokio::runtime::Runtime,
    tasks: JoinSet<()>,
    counters: Arc<Counters>,
}

impl Noisy {
    async fn start(
        args: &BenchArgs,
        http_base: &str,
        ws_url: &str,
        name: &str,
        token: &str,
    ) -> Result<Self, BenchError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("bench-noisy")
            .enable_all()
            .build()
            .map_err(|error| BenchError::Runtime(format!("the noisy tenant's: {error}")))?;
        let on = runtime.handle().clone();
        let counters = Arc::new(Counters::default());
        let (url, key, wanted) = (ws_url.to_owned(), token.to_owned(), args.noisy_sockets);
        let opening = Arc::clone(&counters);
        // Opened on the tenant's runtime, so their I/O is driven there.
        let sockets = on
            .spawn(async move { open_sockets(&url, &key, wanted, &opening).await })
            .await
            .map_err(|error| BenchError::Connect(error.to_string()))?;
        let mut tasks = JoinSet::new();
        let per_socket = f64::from(args.noisy_rate.max(1)) / sockets.len().max(1) as f64;
        let gap = Duration::from_secs_f64(1.0 / per_socket);
        for (index, socket) in sockets.into_iter().enumerate() {
            // Every socket of the tenant hears all its events: count runs on the first only.
            flood(socket, gap, index == 0, &counters, &mut tasks, &on);
        }
        let (url, token) = (ws_url.to_owned(), token.to_owned());
        tasks.spawn_on(knock(url, token, Arc::clone(&counters)), &on);
        let login = format!("{http_base}/api/auth/login");
        let guesser = guess(login, name.to_owned(), Arc::clone(&counters));
        tasks.spawn_on(guesser, &on);
        Ok(Self {
            runtime,
            tasks,
            counters,
        })
    }

    fn stop(mut self) -> NoisyCounts {
        self.tasks.abort_all();
        self.runtime.shutdown_background();
        self.counters.snapshot()
    }
}

/// The tenant's sockets, as many as the server lets it open of `wanted`.
async fn open_sockets(url: &str, token: &str, wanted: usize, counters: &Counters) -> Vec<Socket> {
    let mut sockets = Vec::new();
    for _ in 0..wanted {
        match client::connect(url, token).await {
            Ok(socket) => {
                Counters::bump(&counters.sockets_opened);
                sockets.push(socket);
            }
            Err(_) => Counters::bump(&counters.sockets_refused),
        }
    }
    sockets
}

/// Sends a message every `gap` on one socket, and counts the answers.
fn flood(
    socket: Socket,
    gap: Duration,
    counts_runs: bool,
    counters: &Arc<Counters>,
    tasks: &mut JoinSet<()>,
    on: &tokio::runtime::Handle,
) {
    let (mut sink, mut stream) = socket.split();
    let sent = Arc::clone(counters);
    tasks.spawn_on(
        async move {
            let mut ticks = tokio::time::interval(gap);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            for n in 0u64.. {
                ticks.tick().await;
                let frame = ClientFrame::UserMessage {
                    thread_id: None,
                    content: noisy_content(n),
                    client_request_id: None,
                    multitask: None,
                };
                let Ok(text) = serde_json::to_string(&frame) else {
                    return;
                };
                if sink.send(Message::text(text)).await.is_err() {
                    return;
                }
                Counters::bump(&sent.messages_sent);
            }
        },
        on,
    );
    let answers = Arc::clone(counters);
    tasks.spawn_on(
        async move {
            while let Some(Ok(message)) = stream.next().await {
                let Message::Text(text) = message else {
                    continue;
                };
                match serde_json::from_str::<ServerFrame>(&text) {
                    Ok(ServerFrame::AgentStarted { .. }) if counts_runs => {
                        Counters::bump(&answers.runs_admitted);
                    }
                    Ok(ServerFrame::Error { code, .. }) if code == "rate_limited" => {
                        Counters::bump(&answers.rate_limited);
                    }
                    Ok(ServerFrame::AgentError { envelope, .. }) if envelope.seq == 0 => {
                        Counters::bump(&answers.other_refusals);
                    }
                    _ => {}
                }
            }
        },
        on,
    );
}

/// Every fourth message seeds the history with 31 KB of words that share
/// nothing (the costliest text to index); the others search it for a
/// 200-character near miss, the costliest query the tool takes.
fn noisy_content(n: u64) -> String {
    if n.is_multiple_of(4) {
        scrambled_words(n, 31_000)
    } else {
        format!("tell me about {}b", "a".repeat(199))
    }
}

/// `len` bytes of pseudo-random lowercase words (a linear congruential
/// generator seeded by `seed`: reproducible, and no two messages alike).
fn scrambled_words(seed: u64, len: usize) -> String {
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    let mut text = String::with_capacity(len);
    while text.len() < len {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let byte = (state >> 59) as u8;
        text.push(if byte < 4 {
            ' '
        } else {
            char::from(b'a' + byte % 26)
        });
    }
    text
}

/// Keeps opening one more socket than the server allows, ten times a second.
async fn knock(url: String, token: String, counters: Arc<Counters>) {
    let mut ticks = tokio::time::interval(Duration::from_millis(100));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        ticks.tick().await;
        match client::connect(&url, &token).await {
            Ok(_) => Counters::bump(&counters.sockets_opened),
            Err(_) => Counters::bump(&counters.sockets_refused),
        }
    }
}

/// Guesses the noisy tenant's own password, as a brute-forcer would.
async fn guess(url: String, name: String, counters: Arc<Counters>) {
    // A client of the tenant's own: its pooled connections live on its runtime.
    let http = reqwest::Client::new();
    let mut ticks = tokio::time::interval(Duration::from_millis(1000 / LOGIN_FLOOD_PER_SEC));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let body = serde_json::json!({"username": name, "password": "not-the-password"});
    loop {
        ticks.tick().await;
        Counters::bump(&counters.sign_ins_tried);
        let answered = http.post(&url).json(&body).send().await;
        if answered.is_ok_and(|r| r.status().as_u16() == 429) {
            Counters::bump(&counters.sign_ins_throttled);
        }
    }
}
