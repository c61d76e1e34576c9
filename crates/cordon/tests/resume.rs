//! Resume from a cursor: whatever the disconnect point, what one client got before and after `resume` is exactly its log.
#![allow(
    clippy::unwrap_used,
    reason = "a test should panic loudly on a broken assumption"
)]

use std::time::Duration;

use cordon_test_support::on_each_database;
use cordon_test_support::postgres::Database;
use cordon_test_support::{Account, TestServer, WsClient};
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

on_each_database!(
    resuming_at_random_points_while_runs_stream_yields_exactly_the_log,
    a_run_goes_on_without_sockets_and_is_read_back_on_resume,
    a_cursor_older_than_retention_gets_cursor_expired_and_seq_never_restarts,
    a_socket_hears_every_event_published_after_its_greeting,
);

/// Sends `messages` messages, alternating over two threads with `enqueue`,
/// a few milliseconds apart, so runs produce events the whole time.
async fn produce(server: &TestServer, account: &Account, messages: usize) -> Vec<String> {
    let mut ws = server.connect(account).await;
    let mut threads = Vec::new();
    for n in 0..2 {
        ws.send_json(&json!({"type": "user_message", "content": format!("what is {n} + 1?")}))
            .await;
        let created = ws.collect_until(|f| f["type"] == "thread_created").await;
        threads.push(
            created.last().unwrap()["thread_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    for m in 0..messages {
        let thread = &threads[m % 2];
        ws.send_json(&json!({
            "type": "user_message", "thread_id": thread,
            "content": format!("what is {m} * 3?"), "multitask": "enqueue"
        }))
        .await;
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    threads
}

/// Up to `count` events after `cursor`, as a resuming client reads them: each
/// must be `cursor + 1`. With `sent_resume_frame`, the socket was live before
/// the server handled the frame, so events it sent before that (all above
/// `cursor + 1`: the replay sends them again) are dropped until the replay
/// starts. Any other gap or duplicate fails the test.
async fn read_events(
    ws: &mut WsClient,
    cursor: u64,
    count: usize,
    sent_resume_frame: bool,
) -> Vec<Value> {
    let mut events: Vec<Value> = Vec::new();
    let mut expected = cursor + 1;
    while events.len() < count {
        let Some(frame) = ws.try_next_json(Duration::from_millis(300)).await else {
            break;
        };
        let Some(seq) = frame["seq"].as_u64().filter(|&seq| seq > 0) else {
            continue;
        };
        if seq == expected {
            events.push(frame);
            expected += 1;
        } else if sent_resume_frame && events.is_empty() && seq > expected {
            continue;
        } else {
            panic!("after seq {cursor}: expected {expected}, got {seq}");
        }
    }
    events
}

async fn wait_until_idle(server: &TestServer, account: &Account) {
    for _ in 0..500 {
        let (_, running) = server.get_json(account, "/api/runs?status=running").await;
        let (_, queued) = server.get_json(account, "/api/runs?status=queued").await;
        if running.as_array().unwrap().is_empty() && queued.as_array().unwrap().is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("runs never finished");
}

async fn resuming_at_random_points_while_runs_stream_yields_exactly_the_log(database: Database) {
    let Some(server) = TestServer::start_storing_in(database, |_| {}).await else {
        return;
    };
    let ada = server.register("ada").await;
    let producer = produce(&server, &ada, 120);

    let observer = async {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
        let mut received: Vec<Value> = Vec::new();
        for round in 0..40 {
            let cursor = received.last().map_or(0, |e| e["seq"].as_u64().unwrap());
            // Both ways of resuming: the upgrade's query and the frame.
            let by_frame = round % 2 == 1;
            let mut ws = if by_frame {
                let mut ws = server.connect(&ada).await;
                ws.send_json(&json!({"type": "resume", "after_seq": cursor}))
                    .await;
                ws
            } else {
                server.connect_after(&ada, cursor).await
            };
            let take = rng.random_range(1..=40);
            received.extend(read_events(&mut ws, cursor, take, by_frame).await);
            ws.close().await;
        }
        received
    };
    let (_, mut received) = tokio::join!(producer, observer);
    wait_until_idle(&server, &ada).await;

    // One last resume takes the rest.
    let cursor = received.last().map_or(0, |e| e["seq"].as_u64().unwrap());
    let mut ws = server.connect_after(&ada, cursor).await;
    received.extend(read_events(&mut ws, cursor, usize::MAX, false).await);

    let log = server.event_log(&ada).await;
    let seqs: Vec<u64> = received
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    let expected: Vec<u64> = (1..=log.len() as u64).collect();
    assert_eq!(seqs, expected, "no gap, no duplicate, in order");
    assert_eq!(received, log, "every frame is the stored one");
    let count = |kind: &str| log.iter().filter(|e| e["type"] == kind).count();
    assert_eq!(
        count("agent_completed"),
        count("agent_started"),
        "every run completed"
    );
    assert!(
        count("agent_completed") > 100,
        "runs streamed the whole time"
    );
}

async fn a_run_goes_on_without_sockets_and_is_read_back_on_resume(database: Database) {
    let Some(server) = TestServer::start_storing_in(database, |c| {
        c.offline_step_delay = Duration::from_millis(150);
    })
    .await
    else {
        return;
    };
    let bea = server.register("bea").await;
    let mut ws = server.connect(&bea).await;
    ws.send_json(
        &json!({"type": "user_message", "content": "what is 6 * 7?", "client_request_id": "req-1"}),
    )
    .await;
    let first = ws.collect_until(|f| f["type"] == "agent_started").await;
    assert_eq!(first.last().unwrap()["client_request_id"], "req-1");
    let cursor = first.last().unwrap()["seq"].as_u64().unwrap();
    ws.close().await;

    // Disconnect is never cancel: the run finishes with nobody listening.
    wait_until_idle(&server, &bea).await;
    let mut ws = server.connect(&bea).await;
    ws.send_json(&json!({"type": "resume", "after_seq": cursor}))
        .await;
    let rest = ws.collect_until(|f| f["type"] == "agent_completed").await;
    assert_eq!(rest[0]["seq"], cursor + 1);
    assert_eq!(rest.last().unwrap()["answer"], "6 * 7 = 42.");
    let (_, runs) = server.get_json(&bea, "/api/runs?status=completed").await;
    assert_eq!(runs.as_array().unwrap().len(), 1);
}

async fn a_cursor_older_than_retention_gets_cursor_expired_and_seq_never_restarts(
    database: Database,
) {
    let Some(server) = TestServer::start_storing_in(database, |c| {
        c.event_retention = Duration::from_millis(1);
        c.retention_sweep_interval = Duration::from_millis(50);
    })
    .await
    else {
        return;
    };
    let cy = server.register("cyd").await;
    let mut ws = server.connect(&cy).await;
    ws.send_json(&json!({"type": "user_message", "content": "1 + 1"}))
        .await;
    let frames = ws.collect_until(|f| f["type"] == "agent_completed").await;
    let head = frames.last().unwrap()["seq"].as_u64().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (status, body) = server.get_json(&cy, "/api/events?after_seq=0").await;
    assert_eq!(status, 410);
    assert_eq!(body["error"]["code"], "cursor_expired");
    assert_eq!(body["oldest_seq"], head + 1);
    ws.send_json(&json!({"type": "resume", "after_seq": 0}))
        .await;
    let error = ws.collect_until(|f| f["type"] == "error").await;
    assert_eq!(error.last().unwrap()["code"], "cursor_expired");
    assert_eq!(error.last().unwrap()["oldest_seq"], head + 1);

    // The socket stays open and live; numbering continues past what was deleted.
    ws.send_json(&json!({"type": "user_message", "content": "2 + 2"}))
        .await;
    let next = ws.collect_until(|f| f["type"] == "agent_completed").await;
    assert_eq!(next[0]["seq"], head + 1);
}

/// A client may act on a socket's greeting from elsewhere at once (a message
/// on another tab's socket, or over REST): that socket must hear the run from
/// its first event, not from whenever it happened to go live.
async fn a_socket_hears_every_event_published_after_its_greeting(database: Database) {
    let Some(server) = TestServer::start_storing_in(database, |_| {}).await else {
        return;
    };
    for n in 0..30 {
        let user = server.register(&format!("greeted{n}")).await;
        let mut first = server.connect(&user).await;
        let mut second = server.connect(&user).await;
        first
            .send_json(&json!({"type": "user_message", "content": "1 + 1"}))
            .await;
        let frames = second
            .collect_until(|f| f["type"] == "agent_completed")
            .await;
        let seqs: Vec<u64> = frames.iter().filter_map(|f| f["seq"].as_u64()).collect();
        assert_eq!(frames[0]["type"], "thread_created", "attempt {n}: {seqs:?}");
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
        first
            .collect_until(|f| f["type"] == "agent_completed")
            .await;
    }
}
