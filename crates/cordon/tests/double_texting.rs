//! Double texting over real sockets: `reject`, `enqueue`, `interrupt`, and two messages racing on one thread.
#![allow(
    clippy::unwrap_used,
    reason = "a test should panic loudly on a broken assumption"
)]

use std::time::Duration;

use cordon_test_support::{Account, TestServer, WsClient, is_terminal};
use serde_json::{Value, json};

/// A slow server (each model step takes `step_ms`) and a user with one thread whose first run is in progress.
async fn busy_thread(step_ms: u64) -> (TestServer, Account, WsClient, String, String) {
    let server =
        TestServer::start_with(|c| c.offline_step_delay = Duration::from_millis(step_ms)).await;
    let account = server.register("dana").await;
    let mut ws = server.connect(&account).await;
    ws.send_json(&json!({"type": "user_message", "content": "what is 1 + 1?"}))
        .await;
    let started = ws.collect_until(|f| f["type"] == "agent_started").await;
    let run = started.last().unwrap();
    let thread_id = run["thread_id"].as_str().unwrap().to_owned();
    let run_id = run["run_id"].as_str().unwrap().to_owned();
    (server, account, ws, thread_id, run_id)
}

#[tokio::test]
async fn reject_refuses_with_thread_busy_and_stores_nothing() {
    let (server, dana, mut ws, thread_id, _) = busy_thread(200).await;
    ws.send_json(&json!({"type": "user_message", "thread_id": thread_id,
        "content": "and 2 + 2?", "client_request_id": "second"}))
        .await;
    let refusal = ws.collect_until(|f| f["code"] == "thread_busy").await;
    let refusal = refusal.last().unwrap();
    assert_eq!(refusal["type"], "agent_error");
    assert_eq!(refusal["seq"], 0, "a refusal is not a log event");
    assert_eq!(refusal["client_request_id"], "second");
    assert_eq!(refusal["thread_id"], thread_id.as_str());
    ws.collect_until(is_terminal).await;

    let (_, messages) = server
        .get_json(&dana, &format!("/api/threads/{thread_id}/messages"))
        .await;
    let contents: Vec<&str> = messages
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, ["what is 1 + 1?", "1 + 1 = 2."]);
    let (_, runs) = server.get_json(&dana, "/api/runs").await;
    assert_eq!(runs.as_array().unwrap().len(), 1);
    let log = server.event_log(&dana).await;
    assert!(log.iter().all(|e| e["code"] != "thread_busy"));
}

#[tokio::test]
async fn enqueue_runs_one_after_another_in_arrival_order() {
    let (server, dana, mut ws, thread_id, first_run) = busy_thread(60).await;
    for n in 2..=3 {
        ws.send_json(&json!({"type": "user_message", "thread_id": thread_id,
            "content": format!("what is {n} + {n}?"), "multitask": "enqueue",
            "client_request_id": format!("q{n}")}))
            .await;
    }
    let mut frames = Vec::new();
    let mut ended = 0;
    while ended < 3 {
        let frame = ws.next_json().await;
        if is_terminal(&frame) {
            ended += 1;
        }
        frames.push(frame);
    }
    let queued: Vec<&Value> = frames
        .iter()
        .filter(|f| f["type"] == "run_queued")
        .collect();
    assert_eq!(queued.len(), 2);
    assert_eq!(queued[0]["position"], 1);
    assert_eq!(queued[1]["position"], 2);
    // Each run starts only after the one before it on the thread ended.
    let order: Vec<(String, String)> = frames
        .iter()
        .filter(|f| f["type"] == "agent_started" || is_terminal(f))
        .map(|f| {
            (
                f["type"].as_str().unwrap().to_owned(),
                f["run_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let second = queued[0]["run_id"].as_str().unwrap().to_owned();
    let third = queued[1]["run_id"].as_str().unwrap().to_owned();
    let expected = [
        ("agent_completed", &first_run),
        ("agent_started", &second),
        ("agent_completed", &second),
        ("agent_started", &third),
        ("agent_completed", &third),
    ]
    .map(|(kind, run)| (kind.to_owned(), run.clone()));
    assert_eq!(order, expected);
    let started_second = frames
        .iter()
        .find(|f| f["type"] == "agent_started" && f["run_id"] == second.as_str())
        .unwrap();
    assert_eq!(started_second["client_request_id"], "q2");
    let (_, run) = server.get_json(&dana, &format!("/api/runs/{third}")).await;
    assert_eq!(run["status"], "completed");
}

#[tokio::test]
async fn interrupt_ends_the_running_run_as_interrupted_then_starts_the_new_one() {
    let (server, dana, mut ws, thread_id, first_run) = busy_thread(300).await;
    ws.send_json(&json!({"type": "user_message", "thread_id": thread_id,
        "content": "what is 5 * 5?", "multitask": "interrupt"}))
        .await;
    let frames = ws.collect_until(|f| f["type"] == "agent_completed").await;
    let queued = frames.iter().find(|f| f["type"] == "run_queued").unwrap();
    assert_eq!(queued["position"], 1);
    let new_run = queued["run_id"].as_str().unwrap();
    let interrupted = frames
        .iter()
        .position(|f| f["type"] == "agent_error" && f["run_id"] == first_run.as_str())
        .unwrap();
    assert_eq!(frames[interrupted]["code"], "interrupted");
    let started = frames
        .iter()
        .position(|f| f["type"] == "agent_started" && f["run_id"] == new_run)
        .unwrap();
    assert!(
        interrupted < started,
        "the old run ends before the new one starts"
    );
    assert_eq!(frames.last().unwrap()["answer"], "5 * 5 = 25.");
    let (_, run) = server
        .get_json(&dana, &format!("/api/runs/{first_run}"))
        .await;
    assert_eq!(run["status"], "interrupted");
    assert_eq!(run["error"]["code"], "interrupted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_messages_racing_on_one_thread_never_both_start() {
    let server = TestServer::start_with(|c| c.offline_step_delay = Duration::from_millis(50)).await;
    let eve = server.register("eve").await;
    let mut first = server.connect(&eve).await;
    let mut second = server.connect(&eve).await;
    first
        .send_json(&json!({"type": "user_message", "content": "1 + 1"}))
        .await;
    let done = first.collect_until(is_terminal).await;
    let thread_id = done[0]["thread_id"].as_str().unwrap().to_owned();
    second.collect_until(is_terminal).await;

    for round in 0..10 {
        let message = |n: u32| {
            json!({"type": "user_message", "thread_id": thread_id,
                "content": format!("{round} + {n}"), "client_request_id": format!("r{round}-{n}")})
        };
        let (one, two) = (message(1), message(2));
        tokio::join!(first.send_json(&one), second.send_json(&two));
        // Exactly one run starts (seen by both sockets); the other sender alone gets thread_busy.
        let mut started = Vec::new();
        let mut refused = Vec::new();
        for ws in [&mut first, &mut second] {
            let frames = ws.collect_until(|f| f["type"] == "agent_completed").await;
            for frame in frames {
                match (frame["type"].as_str().unwrap(), frame["code"].as_str()) {
                    ("agent_started", _) => started.push(frame["client_request_id"].clone()),
                    ("agent_error", Some("thread_busy")) => {
                        refused.push(frame["client_request_id"].clone())
                    }
                    _ => {}
                }
            }
        }
        assert_eq!(
            started.len(),
            2,
            "one run, seen on both sockets: {started:?}"
        );
        assert_eq!(started[0], started[1]);
        assert_eq!(refused.len(), 1, "round {round}: {refused:?}");
        assert_ne!(refused[0], started[0]);
    }
    let (_, runs) = server
        .get_json(&eve, &format!("/api/runs?thread_id={thread_id}"))
        .await;
    assert_eq!(runs.as_array().unwrap().len(), 11);
}
