//! Per-user limits, timeouts and cancellation, seen from a real client.
#![allow(
    clippy::unwrap_used,
    reason = "a test should panic loudly on a broken assumption"
)]

use std::time::Duration;

use cordon_test_support::{TestServer, is_terminal};
use serde_json::{Value, json};

#[tokio::test]
async fn a_third_concurrent_run_is_rejected_with_user_concurrency_limit() {
    let server =
        TestServer::start_with(|c| c.offline_step_delay = Duration::from_millis(300)).await;
    let carol = server.register("carol").await;
    let dave = server.register("dave").await;
    let mut ws = server.connect(&carol).await;
    for n in 1..=3 {
        ws.send_json(&json!({"type": "user_message", "content": format!("what is {n} + {n}?")}))
            .await;
    }
    let mut terminal = Vec::new();
    while terminal.len() < 3 {
        let frame = ws.next_json().await;
        if is_terminal(&frame) {
            terminal.push(frame);
        }
    }
    let rejected: Vec<&Value> = terminal
        .iter()
        .filter(|f| f["type"] == "agent_error")
        .collect();
    assert_eq!(
        rejected.len(),
        1,
        "exactly one run is over the limit: {terminal:?}"
    );
    assert_eq!(rejected[0]["code"], "user_concurrency_limit");
    // A refusal is a reply, not a log event: `seq` 0, and nothing is stored.
    assert!(rejected[0]["run_id"].is_string());
    assert_eq!(rejected[0]["seq"], 0);
    assert_eq!(
        terminal
            .iter()
            .filter(|f| f["type"] == "agent_completed")
            .count(),
        2
    );
    let run_id = rejected[0]["run_id"].as_str().unwrap();
    let (status, _) = server
        .get_json(&carol, &format!("/api/runs/{run_id}"))
        .await;
    assert_eq!(status, 404, "a refused message leaves no run behind");
    let (_, threads) = server.get_json(&carol, "/api/threads").await;
    assert_eq!(
        threads.as_array().unwrap().len(),
        2,
        "and no thread: only the two admitted runs made one"
    );

    // Another user is not affected by carol's limit, and carol can run again.
    let mut other = server.connect(&dave).await;
    other
        .send_json(&json!({"type": "user_message", "content": "1 + 1"}))
        .await;
    let frames = other.collect_until(is_terminal).await;
    assert_eq!(frames.last().unwrap()["type"], "agent_completed");
    ws.send_json(&json!({"type": "user_message", "content": "2 + 2"}))
        .await;
    let frames = ws.collect_until(is_terminal).await;
    assert_eq!(frames.last().unwrap()["type"], "agent_completed");
}

#[tokio::test]
async fn an_agent_past_its_timeout_ends_with_timeout() {
    let server = TestServer::start_with(|c| {
        c.offline_step_delay = Duration::from_millis(600);
        c.engine.agent_timeout = Duration::from_millis(150);
    })
    .await;
    let erin = server.register("erin").await;
    let mut ws = server.connect(&erin).await;
    ws.send_json(&json!({"type": "user_message", "content": "what is 6 * 7?"}))
        .await;
    let frames = ws.collect_until(is_terminal).await;
    let end = frames.last().unwrap();
    assert_eq!(end["type"], "agent_error");
    assert_eq!(end["code"], "timeout");
    assert!(end["message"].as_str().unwrap().contains("assistant"));
    let run_id = end["run_id"].as_str().unwrap();
    let (_, run) = server.get_json(&erin, &format!("/api/runs/{run_id}")).await;
    assert_eq!(run["status"], "timed_out");
}

#[tokio::test]
async fn cancel_stops_a_run_and_unknown_runs_are_reported() {
    let server = TestServer::start_with(|c| c.offline_step_delay = Duration::from_secs(5)).await;
    let frank = server.register("frank").await;
    let grace = server.register("grace").await;
    let mut ws = server.connect(&frank).await;
    let started = ws.start_run("slow question").await;
    let run_id = started["run_id"].as_str().unwrap().to_owned();

    // Another user cannot cancel frank's run: it is "not found" for them.
    let mut intruder = server.connect(&grace).await;
    intruder
        .send_json(&json!({"type": "cancel", "run_id": run_id}))
        .await;
    let reply = intruder.next_json().await;
    assert_eq!(
        (reply["type"].as_str(), reply["code"].as_str()),
        (Some("error"), Some("run_not_found"))
    );

    ws.send_json(&json!({"type": "cancel", "run_id": run_id}))
        .await;
    let frames = ws.collect_until(is_terminal).await;
    let end = frames.last().unwrap();
    assert_eq!(
        (end["type"].as_str(), end["code"].as_str()),
        (Some("agent_error"), Some("cancelled"))
    );
    assert_eq!(end["run_id"], run_id.as_str());
    let (_, run) = server
        .get_json(&frank, &format!("/api/runs/{run_id}"))
        .await;
    assert_eq!(run["status"], "cancelled");

    ws.send_json(&json!({"type": "cancel", "run_id": run_id}))
        .await;
    let reply = ws.next_json().await;
    assert_eq!(
        reply["code"], "run_not_found",
        "a finished run cannot be cancelled again"
    );
}
