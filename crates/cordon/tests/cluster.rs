//! Several real `cordon serve` processes on one PostgreSQL database and one real `nats-server` behave as one server: shared event streams, forwarding, take-over of a killed instance, sign-out everywhere, and a broker outage that loses nothing.
//!
//! Needs `CORDON_TEST_DATABASE_URL` and `nats-server` (`.ci/run` provides
//! both); skipped without them outside CI.
#![allow(
    clippy::unwrap_used,
    reason = "a test should panic loudly on a broken assumption"
)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cordon_test_support::child::ChildServer;
use cordon_test_support::cluster::TestCluster;
use cordon_test_support::{Account, WsClient};
use serde_json::{Value, json};

/// A socket of `account` on `server`, greeted.
async fn socket(server: &ChildServer, account: &Account) -> WsClient {
    WsClient::connect(&server.ws_url(), &account.token).await
}

/// Frames with a `seq` until `done`, at most `within`.
async fn events_until(
    ws: &mut WsClient,
    within: Duration,
    done: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    tokio::time::timeout(within, ws.collect_until(|frame| done(frame)))
        .await
        .unwrap_or_else(|_| panic!("no matching frame within {within:?}"))
        .into_iter()
        .filter(|frame| frame.get("seq").is_some())
        .collect()
}

fn seqs(frames: &[Value]) -> Vec<u64> {
    frames
        .iter()
        .map(|frame| frame["seq"].as_u64().unwrap())
        .collect()
}

fn assert_gap_free(frames: &[Value]) {
    let seqs = seqs(frames);
    let expected: Vec<u64> = (seqs[0]..seqs[0] + seqs.len() as u64).collect();
    assert_eq!(seqs, expected, "not one gap-free order");
}

fn ended(frame: &Value) -> bool {
    frame["type"] == "agent_completed" || frame["type"] == "agent_error"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_on_two_instances_share_one_gap_free_stream_and_resume_on_either() {
    let Some(mut cluster) = TestCluster::new(env!("CARGO_BIN_EXE_cordon")).await else {
        return;
    };
    let (a, b) = (cluster.instance(0).await, cluster.instance(0).await);
    let ada = a.register("ada").await;
    let mut on_a = socket(&a, &ada).await; // the user's engine is claimed by A
    let mut on_b = socket(&b, &ada).await;

    // Sent on B, run on A (forwarded), heard on both.
    on_b.send_json(&json!({"type": "user_message", "content": "what is 6 * 7?"}))
        .await;
    let heard_b = events_until(&mut on_b, Duration::from_secs(10), ended).await;
    let heard_a = events_until(&mut on_a, Duration::from_secs(10), ended).await;
    assert_eq!(
        heard_a, heard_b,
        "both instances' sockets heard the same events"
    );
    assert_gap_free(&heard_a);
    assert_eq!(heard_a.last().unwrap()["type"], "agent_completed");

    // Sent on A, twice at once on one thread with `reject`: the owner decides, once.
    let thread_id = heard_a[0]["thread_id"].as_str().unwrap().to_owned();
    for ws in [&mut on_a, &mut on_b] {
        ws.send_json(&json!({"type": "user_message", "thread_id": thread_id, "content": "again", "multitask": "reject"}))
            .await;
    }
    let more = events_until(&mut on_a, Duration::from_secs(10), ended).await;
    assert_gap_free(&[heard_a.clone(), more.clone()].concat());

    // Resume on B from the middle: exactly the stored log after the cursor.
    let cursor = heard_a[1]["seq"].as_u64().unwrap();
    let mut resumed =
        WsClient::connect(&format!("{}?after_seq={cursor}", b.ws_url()), &ada.token).await;
    let replayed = events_until(&mut resumed, Duration::from_secs(10), |f| {
        f["seq"] == more.last().unwrap()["seq"]
    })
    .await;
    let (_, log) = b
        .get(&ada, &format!("/api/events?after_seq={cursor}"))
        .await;
    assert_eq!(replayed, *log.as_array().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_owner_s_run_ends_interrupted_on_the_other_instance_which_takes_over() {
    let Some(mut cluster) = TestCluster::new(env!("CARGO_BIN_EXE_cordon")).await else {
        return;
    };
    let a = cluster.instance(400).await;
    let b = cluster.instance(400).await;
    let kim = a.register("kim").await;
    let mut on_a = socket(&a, &kim).await;
    let mut on_b = socket(&b, &kim).await;
    on_a.send_json(&json!({"type": "user_message", "content": "what is 7 * 6?"}))
        .await;
    let before = events_until(&mut on_b, Duration::from_secs(10), |f| {
        f["type"] == "agent_thinking"
    })
    .await;
    let run_id = before[0]["run_id"].as_str().unwrap().to_owned();

    let killed_at = std::time::Instant::now();
    a.kill();
    let after = events_until(&mut on_b, Duration::from_secs(15), ended).await;
    let end = after.last().unwrap();
    assert_eq!(
        (end["type"].as_str(), end["code"].as_str()),
        (Some("agent_error"), Some("interrupted"))
    );
    assert_eq!(end["run_id"], run_id.as_str());
    eprintln!(
        "the killed owner's run ended interrupted {:?} after the kill",
        killed_at.elapsed()
    );
    assert_gap_free(&[before.clone(), after.clone()].concat());

    // B owns the user now: a new message runs there, numbering after the end.
    on_b.send_json(&json!({"type": "user_message", "content": "1 + 1"}))
        .await;
    let next = events_until(&mut on_b, Duration::from_secs(15), ended).await;
    assert_eq!(next[0]["seq"], end["seq"].as_u64().unwrap() + 1);
    assert_eq!(next.last().unwrap()["type"], "agent_completed");
    let (_, run) = b.get(&kim, &format!("/api/runs/{run_id}")).await;
    assert_eq!(run["status"], "interrupted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn double_texting_cancel_and_sign_out_on_one_instance_reach_the_other() {
    let Some(mut cluster) = TestCluster::new(env!("CARGO_BIN_EXE_cordon")).await else {
        return;
    };
    let (a, b) = (cluster.instance(400).await, cluster.instance(400).await);
    let lee = a.register("lee").await;
    let mut on_a = socket(&a, &lee).await; // A owns the user
    let mut on_b = socket(&b, &lee).await;
    on_a.send_json(&json!({"type": "user_message", "content": "take your time"}))
        .await;
    let started = events_until(&mut on_b, Duration::from_secs(10), |f| {
        f["type"] == "agent_started"
    })
    .await;
    let run_id = started.last().unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Double texting on B, decided by the owner A: the thread is busy.
    let thread_id = started.last().unwrap()["thread_id"].clone();
    on_b.send_json(&json!({"type": "user_message", "thread_id": thread_id, "content": "me too", "multitask": "reject"}))
        .await;
    let refused = events_until(&mut on_b, Duration::from_secs(10), |f| f["seq"] == 0).await;
    assert_eq!(refused.last().unwrap()["code"], "thread_busy");
    let (status, _) = b
        .post(
            Some(&lee),
            &format!("/api/runs/{run_id}/cancel"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 202, "a cancel on B reaches the run on A");
    let end = events_until(&mut on_a, Duration::from_secs(10), ended).await;
    assert_eq!(end.last().unwrap()["code"], "cancelled");

    let signed_out_at = std::time::Instant::now();
    let (status, _) = b.post(Some(&lee), "/api/auth/logout", &json!({})).await;
    assert_eq!(status, 204);
    let closed = on_a.closed(Duration::from_secs(1)).await;
    assert_eq!(
        closed.map(|(code, _)| code),
        Some(1008),
        "A's socket closed within 1 s"
    );
    eprintln!(
        "sign-out on B closed the socket on A after {:?}",
        signed_out_at.elapsed()
    );
    let (status, body) = a.get(&lee, "/api/threads").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("signed_out"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_loses_no_event_and_live_delivery_resumes() {
    let Some(mut cluster) = TestCluster::new(env!("CARGO_BIN_EXE_cordon")).await else {
        return;
    };
    let (a, b) = (cluster.instance(20).await, cluster.instance(20).await);
    let max = a.register("max").await;
    let mut on_a = socket(&a, &max).await; // A owns the user: its runs need no broker
    let mut on_b = socket(&b, &max).await;
    // Runs one after another (the per-user limit would refuse a burst);
    // the broker dies after the first.
    for n in 0..4 {
        on_a.send_json(&json!({"type": "user_message", "content": format!("{n} + 1")}))
            .await;
        if n == 0 {
            tokio::time::sleep(Duration::from_millis(30)).await;
            cluster.broker.stop(); // mid-run
        }
        events_until(&mut on_a, Duration::from_secs(10), ended).await;
    }
    // Forwarding needs the broker: refused, and nothing of it stored.
    on_b.send_json(
        &json!({"type": "user_message", "content": "from b", "client_request_id": "refused-on-b"}),
    )
    .await;
    let mut heard_b = Vec::new();
    let mut completed = 0;
    let mut refused = None;
    while completed < 4 || refused.is_none() {
        let frame = tokio::time::timeout(Duration::from_secs(15), on_b.next_json())
            .await
            .unwrap();
        // A refused message is an `agent_error` with `seq` 0 (nothing stored).
        if frame["code"] == "owner_unavailable" {
            refused = Some(frame);
            continue;
        }
        completed += usize::from(frame["type"] == "agent_completed");
        if frame.get("seq").is_some() {
            heard_b.push(frame);
        }
    }
    let refused = refused.unwrap();
    assert_eq!(
        (refused["type"].as_str(), refused["seq"].as_u64()),
        (Some("agent_error"), Some(0))
    );
    cluster.broker.resume().await;
    on_a.send_json(&json!({"type": "user_message", "content": "after"}))
        .await;
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(15), on_b.next_json())
            .await
            .unwrap();
        let done = frame["type"] == "agent_completed";
        heard_b.push(frame);
        if done {
            break;
        }
    }
    let (_, log) = a.get(&max, "/api/events?after_seq=0").await;
    assert_eq!(
        heard_b,
        *log.as_array().unwrap(),
        "B's socket heard the whole log, in order"
    );
    assert_gap_free(&heard_b);
    assert!(
        !log.to_string().contains("refused-on-b"),
        "the refused message stored nothing"
    );
}

/// What one user saw through a rolling restart.
struct Chat {
    /// Every stored event, in the order the user's sockets got them.
    events: Vec<Value>,
    /// How each run ended (`agent_completed`, or the failure), and when it was heard.
    ends: Vec<(Value, std::time::Instant)>,
    reconnects: usize,
    /// Messages refused with `owner_unavailable` (nothing stored) and sent again.
    refusals: usize,
    /// When a message got no answer at all (its instance was killed while it was sent).
    unanswered: Vec<std::time::Instant>,
}

/// One user chatting over REST while listening on a socket, until `stop`:
/// each message goes to a live instance (another one if that fails to
/// connect), and a closed socket reconnects to a live instance and resumes.
async fn chat_through_restarts(
    live: Arc<Mutex<Vec<String>>>,
    account: Account,
    seed: usize,
    stop: Arc<AtomicBool>,
) -> Chat {
    let mut chat = Chat {
        events: Vec::new(),
        ends: Vec::new(),
        reconnects: 0,
        refusals: 0,
        unanswered: Vec::new(),
    };
    let pick = |n: usize| {
        let live = live.lock().unwrap();
        live[n % live.len()].clone()
    };
    let mut ws = WsClient::connect(&format!("ws://{}/ws", pick(seed)), &account.token).await;
    let mut round = seed;
    while !stop.load(Ordering::Acquire) {
        round += 1;
        let (run_id, refusals) = post_anywhere(&pick, &account, round).await;
        chat.refusals += refusals;
        let Some(run_id) = run_id else {
            chat.unanswered.push(std::time::Instant::now());
            continue;
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            assert!(
                std::time::Instant::now() < deadline,
                "{}'s run {run_id} never ended",
                account.username
            );
            let Some(frame) = ws.try_next_json(Duration::from_secs(5)).await else {
                chat.reconnects += 1;
                let last = chat.events.last().map_or(0, |e| e["seq"].as_u64().unwrap());
                let url = format!("ws://{}/ws?after_seq={last}", pick(round + chat.reconnects));
                // An instance on its way out may still be listed: try the next one.
                if let Some(fresh) = WsClient::try_connect(&url, &account.token).await {
                    ws = fresh;
                }
                continue;
            };
            let Some(seq) = frame["seq"].as_u64() else {
                continue;
            };
            let last = chat.events.last().map_or(0, |e| e["seq"].as_u64().unwrap());
            assert_eq!(
                seq,
                last + 1,
                "{} got seq {seq} after {last}: a gap or a repeat",
                account.username
            );
            chat.events.push(frame.clone());
            if frame["run_id"] == run_id.as_str() && ended(&frame) {
                chat.ends.push((frame, std::time::Instant::now()));
                break;
            }
        }
    }
    chat
}

/// Sends a message over REST to a live instance; the run's id, and how
/// many times it was refused with `owner_unavailable` before.
async fn post_anywhere(
    pick: &impl Fn(usize) -> String,
    account: &Account,
    round: usize,
) -> (Option<String>, usize) {
    let mut refusals = 0;
    for attempt in 0..200 {
        // No pooled connection: one to an instance on its way out would be reused.
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let sent = http
            .post(format!("http://{}/api/messages", pick(round + attempt)))
            .bearer_auth(&account.token)
            .json(&json!({"content": format!("{round} + 1")}))
            .send()
            .await;
        match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                let body: Value = response.json().await.unwrap();
                if body["error"]["code"] == "owner_unavailable" {
                    // The broker is down: nothing was stored; send it again shortly.
                    refusals += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                assert_eq!(status, 202, "a message was refused: {body}");
                return (body["run_id"].as_str().map(str::to_owned), refusals);
            }
            // The instance stopped listening: nothing was sent; try another.
            Err(error) if error.is_connect() => tokio::time::sleep(Duration::from_millis(50)).await,
            // Sent, and the instance died before answering: stored or not, nobody can say.
            Err(_) => return (None, refusals),
        }
    }
    panic!("no instance took the message");
}

/// How an instance is taken out of service.
#[derive(Clone, Copy)]
enum Stop {
    /// SIGTERM: it must hand over cleanly and exit 0.
    Terminate,
    /// SIGKILL: its users are taken over and its runs end `interrupted`.
    Kill,
}

/// Replaces the oldest instance as a load balancer would: takes it out of
/// `live`, stops it, then adds a fresh one. Answers when the stop began and
/// when it was over.
async fn replace_oldest(
    cluster: &mut TestCluster,
    instances: &mut Vec<ChildServer>,
    live: &Mutex<Vec<String>>,
    stop: Stop,
    delay_ms: u32,
) -> (std::time::Instant, std::time::Instant) {
    let leaving = instances.remove(0);
    let from = std::time::Instant::now();
    live.lock().unwrap().retain(|base| *base != leaving.base);
    match stop {
        Stop::Terminate => {
            let status = tokio::task::spawn_blocking(move || leaving.terminate())
                .await
                .unwrap();
            assert!(
                status.success(),
                "SIGTERM ends an instance cleanly: {status}"
            );
        }
        Stop::Kill => leaving.kill(),
    }
    let to = std::time::Instant::now();
    let replacement = cluster.instance(delay_ms).await;
    live.lock().unwrap().push(replacement.base.clone());
    instances.push(replacement);
    (from, to)
}

/// The run's status its terminal event stands for.
fn status_told_by(end: &Value) -> &str {
    match (end["type"].as_str(), end["code"].as_str()) {
        (Some("agent_completed"), _) => "completed",
        (_, Some("interrupted")) => "interrupted",
        _ => panic!("a run failed: {end}"),
    }
}

/// Every stored run of `account` has ended, and the log holds exactly one
/// end for each, telling its stored status: no stop, clean or not, left a
/// run ended without its end in the log, or the other way round.
async fn assert_every_run_ended_once_in_the_log(
    server: &ChildServer,
    account: &Account,
    log: &[Value],
) {
    let mut told = std::collections::HashMap::new();
    for end in log.iter().filter(|frame| ended(frame)) {
        let run_id = end["run_id"].as_str().unwrap().to_owned();
        let earlier = told.insert(run_id, status_told_by(end).to_owned());
        assert!(earlier.is_none(), "{}: a run ended twice", account.username);
    }
    let (_, runs) = server.get(account, "/api/runs?limit=200").await;
    let stored: std::collections::HashMap<String, String> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|run| {
            (
                run["id"].as_str().unwrap().to_owned(),
                run["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(stored, told, "{}'s runs and their ends", account.username);
}

/// The user's sockets heard exactly their log, which holds one end per run.
async fn assert_heard_exactly_the_log(server: &ChildServer, account: &Account, heard: &[Value]) {
    let (_, log) = server
        .get(account, "/api/events?after_seq=0&limit=1000")
        .await;
    let log = log.as_array().unwrap();
    assert_eq!(
        heard,
        log.as_slice(),
        "{} heard exactly the log",
        account.username
    );
    assert_every_run_ended_once_in_the_log(server, account, log).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_under_load_fails_no_run_and_loses_or_repeats_no_event() {
    let Some(mut cluster) = TestCluster::new(env!("CARGO_BIN_EXE_cordon")).await else {
        return;
    };
    let mut instances = vec![cluster.instance(60).await, cluster.instance(60).await];
    let live = Arc::new(Mutex::new(
        instances.iter().map(|i| i.base.clone()).collect::<Vec<_>>(),
    ));
    let mut accounts = Vec::new();
    for name in ["ann", "ben", "cat", "dan"] {
        accounts.push(instances[0].register(name).await);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let chats: Vec<_> = accounts
        .iter()
        .map(|account| {
            tokio::spawn(chat_through_restarts(
                Arc::clone(&live),
                account.clone(),
                0,
                Arc::clone(&stop),
            ))
        })
        .collect();

    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        replace_oldest(&mut cluster, &mut instances, &live, Stop::Terminate, 60).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Release);

    let mut reconnects = 0;
    for (account, chat) in accounts.iter().zip(chats) {
        let chat = chat.await.unwrap();
        reconnects += chat.reconnects;
        eprintln!(
            "{}: {} runs, {} events, {} reconnects",
            account.username,
            chat.ends.len(),
            chat.events.len(),
            chat.reconnects
        );
        assert!(
            chat.ends.len() >= 3,
            "{} ran only {} runs",
            account.username,
            chat.ends.len()
        );
        assert_eq!(
            chat.refusals, 0,
            "the broker was up: no message was refused"
        );
        assert!(
            chat.unanswered.is_empty(),
            "nothing was killed: every message was answered"
        );
        for (end, _) in &chat.ends {
            assert_eq!(
                end["type"], "agent_completed",
                "{}'s run failed: {end}",
                account.username
            );
        }
        assert_heard_exactly_the_log(&instances[0], account, &chat.events).await;
    }
    assert!(
        reconnects >= 2,
        "the restarts moved sockets ({reconnects} reconnects)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_users_on_three_instances_through_a_broker_restart_a_rolling_restart_and_a_kill()
 {
    let Some(mut cluster) = TestCluster::new(env!("CARGO_BIN_EXE_cordon")).await else {
        return;
    };
    let mut instances = Vec::new();
    for _ in 0..3 {
        instances.push(cluster.instance(20).await);
    }
    let live = Arc::new(Mutex::new(
        instances.iter().map(|i| i.base.clone()).collect::<Vec<_>>(),
    ));
    let names: Vec<String> = (0..200).map(|n| format!("user{n:03}")).collect();
    // In batches: more sign-ups at once than the hash queue holds get `503 busy`.
    let mut accounts = Vec::new();
    for batch in names.chunks(32) {
        let signed_up = batch.iter().map(|name| instances[0].register(name));
        accounts.extend(futures_util::future::join_all(signed_up).await);
    }
    let stop = Arc::new(AtomicBool::new(false));
    // Each user's socket starts on one of the three, spread by a scrambled index.
    let chats: Vec<_> = accounts
        .iter()
        .enumerate()
        .map(|(n, account)| {
            let seed = (n * 7919) % 997;
            tokio::spawn(chat_through_restarts(
                Arc::clone(&live),
                account.clone(),
                seed,
                Arc::clone(&stop),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The broker stops and comes back mid-load.
    cluster.broker.stop();
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.broker.resume().await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // A rolling SIGTERM restart of all three, then one instance killed.
    // While an instance is on its way out, a message sent to it on a
    // connection it accepted but will not read gets no answer.
    let mut disruptions = Vec::new();
    for _ in 0..3 {
        let stop = Stop::Terminate;
        disruptions.push(replace_oldest(&mut cluster, &mut instances, &live, stop, 20).await);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let killed = replace_oldest(&mut cluster, &mut instances, &live, Stop::Kill, 20).await;
    disruptions.push(killed);
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Release);

    let (mut runs, mut refusals, mut unanswered, mut interrupted) = (0, 0, 0, 0);
    for (account, chat) in accounts.iter().zip(chats) {
        let chat = chat.await.unwrap();
        runs += chat.ends.len();
        refusals += chat.refusals;
        for at in &chat.unanswered {
            let during = |(from, to): &(std::time::Instant, std::time::Instant)| {
                *at + Duration::from_millis(500) > *from && *at < *to + Duration::from_secs(1)
            };
            assert!(
                disruptions.iter().any(during),
                "a message got no answer while no instance was stopping"
            );
        }
        unanswered += chat.unanswered.len();
        for (end, at) in &chat.ends {
            if status_told_by(end) == "interrupted" {
                // Only the killed instance's runs, taken over within the lease.
                assert!(
                    *at > killed.0 && *at < killed.1 + Duration::from_secs(10),
                    "{}'s run was interrupted with no instance killed: {end}",
                    account.username
                );
                interrupted += 1;
            }
        }
        assert_heard_exactly_the_log(&instances[0], account, &chat.events).await;
    }
    eprintln!(
        "{runs} runs, {refusals} refused while the broker was down, {unanswered} unanswered as an instance went away, {interrupted} interrupted by the kill"
    );
    assert!(
        runs >= 400,
        "the load kept going through it all ({runs} runs)"
    );
    assert!(
        interrupted > 0,
        "the killed instance was running some of its users' runs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_answered_on_another_instance_and_after_the_owner_dies() {
    let Some(mut cluster) = TestCluster::new(env!("CARGO_BIN_EXE_cordon")).await else {
        return;
    };
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        config.path(),
        "[tools.\"calculator\"]\nrequires_approval = true\n",
    )
    .unwrap();
    let path = config.path().to_str().unwrap();
    let a = cluster.instance_with(0, &["--config", path]).await;
    let b = cluster.instance_with(0, &["--config", path]).await;
    let kim = a.register("kim").await;
    let mut on_a = socket(&a, &kim).await; // A owns the user
    let mut on_b = socket(&b, &kim).await;

    // Answered on B, decided by the owner A: the call runs once.
    on_a.send_json(&json!({"type": "user_message", "content": "What is 2 + 3?"}))
        .await;
    let paused = events_until(&mut on_b, Duration::from_secs(10), |f| {
        f["type"] == "approval_required"
    })
    .await;
    let required = paused.last().unwrap().clone();
    let answer = format!(
        "/api/runs/{}/approvals/{}",
        required["run_id"].as_str().unwrap(),
        required["call_id"].as_str().unwrap()
    );
    let (status, body) = b
        .post(Some(&kim), &answer, &json!({"decision": "approve"}))
        .await;
    assert_eq!(
        (status, &body["decision"]),
        (200, &json!("approved")),
        "{body}"
    );
    let end = events_until(&mut on_a, Duration::from_secs(10), ended).await;
    assert_eq!(end.last().unwrap()["answer"], "2 + 3 = 5.");
    let (status, body) = b
        .post(Some(&kim), &answer, &json!({"decision": "approve"}))
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "already_resolved");

    // A pause outlives its owner: A dies, B takes the user over and the
    // answer given there goes on from the stored checkpoint.
    on_a.send_json(&json!({"type": "user_message", "content": "What is 6 * 7?"}))
        .await;
    let paused = events_until(&mut on_b, Duration::from_secs(10), |f| {
        f["type"] == "approval_required"
    })
    .await;
    let required = paused.last().unwrap().clone();
    a.kill();
    let answer = format!(
        "/api/runs/{}/approvals/{}",
        required["run_id"].as_str().unwrap(),
        required["call_id"].as_str().unwrap()
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let body = loop {
        let (status, body) = b
            .post(Some(&kim), &answer, &json!({"decision": "approve"}))
            .await;
        if status == 200 {
            break body;
        }
        // Until the take-over, the dead owner cannot answer.
        assert_eq!(body["error"]["code"], "owner_unavailable", "{body}");
        assert!(std::time::Instant::now() < deadline, "never taken over");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(body["resumed"], true);
    let end = events_until(&mut on_b, Duration::from_secs(10), ended).await;
    assert_eq!(end.last().unwrap()["answer"], "6 * 7 = 42.", "{end:#?}");
}
