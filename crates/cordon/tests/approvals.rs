//! Approval by a person, over real sockets and REST: a run that calls a tool marked `requires_approval` pauses, runs the call exactly once when approved, tells the model when rejected, survives a restart and expires.
#![allow(
    clippy::unwrap_used,
    reason = "a test should panic loudly on a broken assumption"
)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use cordon_server::ServerConfig;
use cordon_test_support::{Account, TestServer, WsClient, is_terminal};
use serde_json::{Value, json};
use tempfile::TempDir;

/// The offline model answers arithmetic with the calculator; here a person
/// must approve each calculator call.
fn calculator_needs_approval(config: &mut ServerConfig) {
    config.engine.approval_tools = BTreeSet::from(["calculator".to_owned()]);
}

async fn start() -> TestServer {
    TestServer::start_with(calculator_needs_approval).await
}

const QUESTION: &str = "What is (2 + 3) * 4?";

/// Asks a question that needs the calculator; the frames up to its `approval_required`.
async fn ask_until_paused(ws: &mut WsClient, content: &str) -> Vec<Value> {
    ws.send_json(&json!({"type": "user_message", "content": content}))
        .await;
    ws.collect_until(|f| f["type"] == "approval_required" || is_terminal(f))
        .await
}

fn of_type<'a>(frames: &'a [Value], kind: &str) -> Vec<&'a Value> {
    frames.iter().filter(|f| f["type"] == kind).collect()
}

fn approval_path(required: &Value) -> String {
    format!(
        "/api/runs/{}/approvals/{}",
        required["run_id"].as_str().unwrap(),
        required["call_id"].as_str().unwrap()
    )
}

async fn run_status(server: &TestServer, account: &Account, run_id: &str) -> String {
    let (status, run) = server
        .get_json(account, &format!("/api/runs/{run_id}"))
        .await;
    assert_eq!(status, 200, "{run}");
    run["status"].as_str().unwrap().to_owned()
}

/// How many times the user's stored log shows the call as executed.
async fn executions(server: &TestServer, account: &Account, run_id: &str) -> usize {
    server
        .event_log(account)
        .await
        .iter()
        .filter(|e| e["run_id"] == run_id && e["type"] == "tool_completed")
        .count()
}

#[tokio::test]
async fn an_approved_call_runs_once_and_the_run_completes() {
    let server = start().await;
    let ada = server.register("ada").await;
    let mut ws = server.connect(&ada).await;

    let frames = ask_until_paused(&mut ws, QUESTION).await;
    let required = frames.last().unwrap().clone();
    assert_eq!(required["type"], "approval_required", "{frames:#?}");
    assert_eq!(required["tool"], "calculator");
    assert_eq!(required["arguments"]["expression"], "(2 + 3) * 4");
    assert!(required["expires_at"].is_string());
    assert!(
        of_type(&frames, "tool_executing").is_empty(),
        "ran before approval"
    );
    let run_id = required["run_id"].as_str().unwrap();
    assert_eq!(run_status(&server, &ada, run_id).await, "waiting_approval");
    // Nothing runs while it waits.
    assert!(ws.try_next_json(Duration::from_millis(300)).await.is_none());

    ws.send_json(&json!({"type": "approve", "call_id": required["call_id"]}))
        .await;
    let frames = ws.collect_until(is_terminal).await;
    let resolved = of_type(&frames, "approval_resolved");
    assert_eq!(resolved.len(), 1, "{frames:#?}");
    assert_eq!(resolved[0]["decision"], "approved");
    assert_eq!(resolved[0]["call_id"], required["call_id"]);
    let completed = of_type(&frames, "tool_completed");
    assert_eq!(completed.len(), 1);
    assert_eq!(completed[0]["result"]["value"], 20);
    let end = frames.last().unwrap();
    assert_eq!(end["type"], "agent_completed", "{frames:#?}");
    assert!(end["answer"].as_str().unwrap().contains("20"));
    assert_eq!(run_status(&server, &ada, run_id).await, "completed");

    // A second answer is refused and runs nothing.
    ws.send_json(&json!({"type": "approve", "call_id": required["call_id"]}))
        .await;
    let refusal = ws.next_json().await;
    assert_eq!(refusal["type"], "error");
    assert_eq!(refusal["code"], "already_resolved");
    assert_eq!(executions(&server, &ada, run_id).await, 1);
}

#[tokio::test]
async fn a_rejected_call_never_runs_and_the_model_is_told() {
    let server = start().await;
    let bo = server.register("bob").await;
    let mut ws = server.connect(&bo).await;
    let required = ask_until_paused(&mut ws, QUESTION).await.pop().unwrap();

    let (status, body) = server
        .post_json(
            &bo,
            &approval_path(&required),
            &json!({"decision": "reject", "reason": "not now"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["decision"], "rejected");
    assert_eq!(body["resumed"], true);
    let frames = ws.collect_until(is_terminal).await;
    let resolved = of_type(&frames, "approval_resolved");
    assert_eq!(resolved[0]["decision"], "rejected");
    assert_eq!(resolved[0]["reason"], "not now");
    assert!(of_type(&frames, "tool_executing").is_empty(), "{frames:#?}");
    let end = frames.last().unwrap();
    assert_eq!(end["type"], "agent_completed", "{frames:#?}");
    // The offline model reports the failed tool call it was given.
    assert!(
        end["answer"].as_str().unwrap().contains("rejected"),
        "{end}"
    );
    let run_id = required["run_id"].as_str().unwrap();
    assert_eq!(executions(&server, &bo, run_id).await, 0);
}

#[tokio::test]
async fn two_concurrent_answers_run_the_call_exactly_once() {
    let server = start().await;
    let cy = server.register("cyd").await;
    let mut ws = server.connect(&cy).await;
    let required = ask_until_paused(&mut ws, QUESTION).await.pop().unwrap();
    let path = approval_path(&required);
    let approve = json!({"decision": "approve"});

    let (first, second) = tokio::join!(
        server.post_json(&cy, &path, &approve),
        server.post_json(&cy, &path, &approve)
    );
    let mut statuses = [first.0, second.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409], "{first:?} {second:?}");
    let refused = if first.0 == 409 { first.1 } else { second.1 };
    assert_eq!(refused["error"]["code"], "already_resolved");

    let frames = ws.collect_until(is_terminal).await;
    assert_eq!(frames.last().unwrap()["type"], "agent_completed");
    let run_id = required["run_id"].as_str().unwrap();
    assert_eq!(executions(&server, &cy, run_id).await, 1);
}

#[tokio::test]
async fn another_user_cannot_answer_and_unknown_calls_are_not_found() {
    let server = start().await;
    let dee = server.register("dee").await;
    let eve = server.register("eve").await;
    let mut ws = server.connect(&dee).await;
    let required = ask_until_paused(&mut ws, QUESTION).await.pop().unwrap();

    let (status, body) = server
        .post_json(
            &eve,
            &approval_path(&required),
            &json!({"decision": "approve"}),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "approval_not_found");
    let mut eve_ws = server.connect(&eve).await;
    eve_ws
        .send_json(&json!({"type": "approve", "call_id": required["call_id"]}))
        .await;
    assert_eq!(eve_ws.next_json().await["code"], "approval_not_found");
    let (status, body) = server
        .post_json(
            &dee,
            &approval_path(&required),
            &json!({"decision": "maybe"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let run_id = required["run_id"].as_str().unwrap();
    assert_eq!(run_status(&server, &dee, run_id).await, "waiting_approval");
    assert!(ws.try_next_json(Duration::from_millis(200)).await.is_none());
}

#[tokio::test]
async fn the_paused_thread_stays_busy_and_a_cancel_ends_the_run() {
    let server = start().await;
    let fay = server.register("fay").await;
    let mut ws = server.connect(&fay).await;
    let required = ask_until_paused(&mut ws, QUESTION).await.pop().unwrap();
    let thread_id = required["thread_id"].clone();

    ws.send_json(&json!({"type": "user_message", "thread_id": thread_id, "content": "1 + 1"}))
        .await;
    let refusal = ws.next_json().await;
    assert_eq!(refusal["code"], "thread_busy", "{refusal}");

    ws.send_json(&json!({"type": "cancel", "run_id": required["run_id"]}))
        .await;
    let frames = ws.collect_until(is_terminal).await;
    assert_eq!(frames.last().unwrap()["code"], "cancelled", "{frames:#?}");
    let run_id = required["run_id"].as_str().unwrap();
    assert_eq!(run_status(&server, &fay, run_id).await, "cancelled");
    // The thread is free again.
    ws.send_json(&json!({"type": "user_message", "thread_id": thread_id, "content": "hello"}))
        .await;
    let frames = ws.collect_until(is_terminal).await;
    assert_eq!(frames.last().unwrap()["type"], "agent_completed");
}

#[tokio::test]
async fn a_call_with_an_id_several_runs_wait_on_needs_its_run() {
    let server = start().await;
    let gus = server.register("gus").await;
    let mut ws = server.connect(&gus).await;
    let first = ask_until_paused(&mut ws, QUESTION).await.pop().unwrap();
    let second = ask_until_paused(&mut ws, "What is 6 * 7?")
        .await
        .pop()
        .unwrap();
    assert_eq!(
        first["call_id"], second["call_id"],
        "the offline model reuses ids"
    );

    ws.send_json(&json!({"type": "approve", "call_id": first["call_id"]}))
        .await;
    let refusal = ws.next_json().await;
    assert_eq!(refusal["code"], "ambiguous_call_id", "{refusal}");
    ws.send_json(
        &json!({"type": "approve", "call_id": second["call_id"], "run_id": second["run_id"]}),
    )
    .await;
    let frames = ws.collect_until(is_terminal).await;
    assert_eq!(frames.last().unwrap()["run_id"], second["run_id"]);
    assert!(
        frames.last().unwrap()["answer"]
            .as_str()
            .unwrap()
            .contains("42")
    );
    // Now only the first waits on that id.
    ws.send_json(&json!({"type": "approve", "call_id": first["call_id"]}))
        .await;
    let frames = ws.collect_until(is_terminal).await;
    assert_eq!(frames.last().unwrap()["run_id"], first["run_id"]);
}

#[tokio::test]
async fn a_pending_approval_survives_a_restart_and_a_reconnect() {
    let data_dir = Arc::new(TempDir::new().unwrap());
    let server = TestServer::start_in(Arc::clone(&data_dir), calculator_needs_approval).await;
    let hal = server.register("hal").await;
    let mut ws = server.connect(&hal).await;
    let required = ask_until_paused(&mut ws, QUESTION).await.pop().unwrap();
    ws.close().await;
    server.stop().await;

    let server = TestServer::start_in(data_dir, calculator_needs_approval).await;
    let run_id = required["run_id"].as_str().unwrap();
    assert_eq!(run_status(&server, &hal, run_id).await, "waiting_approval");
    // A resumed stream replays the pending approval.
    let mut ws = server.connect_after(&hal, 0).await;
    let replayed = ws.collect_until(|f| f["type"] == "approval_required").await;
    assert_eq!(replayed.last().unwrap()["call_id"], required["call_id"]);
    // The thread is still the paused run's.
    ws.send_json(
        &json!({"type": "user_message", "thread_id": required["thread_id"], "content": "1 + 1"}),
    )
    .await;
    assert_eq!(ws.next_json().await["code"], "thread_busy");

    ws.send_json(&json!({"type": "approve", "call_id": required["call_id"]}))
        .await;
    let frames = ws.collect_until(is_terminal).await;
    assert_eq!(
        frames.last().unwrap()["type"],
        "agent_completed",
        "{frames:#?}"
    );
    assert_eq!(executions(&server, &hal, run_id).await, 1);
    assert_eq!(run_status(&server, &hal, run_id).await, "completed");
}

#[tokio::test]
async fn an_unanswered_approval_expires_and_ends_the_run() {
    let server = TestServer::start_with(|config| {
        calculator_needs_approval(config);
        config.engine.approval_ttl = Duration::from_millis(500);
    })
    .await;
    let ida = server.register("ida").await;
    let mut ws = server.connect(&ida).await;
    let required = ask_until_paused(&mut ws, QUESTION).await.pop().unwrap();

    let frames = ws.collect_until(is_terminal).await;
    let resolved = of_type(&frames, "approval_resolved");
    assert_eq!(resolved.len(), 1, "{frames:#?}");
    assert_eq!(resolved[0]["decision"], "expired");
    let end = frames.last().unwrap();
    assert_eq!(end["code"], "approval_expired", "{end}");
    let run_id = required["run_id"].as_str().unwrap();
    assert_eq!(run_status(&server, &ida, run_id).await, "failed");
    let (status, body) = server
        .post_json(
            &ida,
            &approval_path(&required),
            &json!({"decision": "approve"}),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(executions(&server, &ida, run_id).await, 0);
}

#[tokio::test]
async fn a_message_sent_with_interrupt_ends_the_paused_run_and_runs_next() {
    let server = start().await;
    let jo = server.register("jon").await;
    let mut ws = server.connect(&jo).await;
    let required = ask_until_paused(&mut ws, QUESTION).await.pop().unwrap();

    ws.send_json(
        &json!({"type": "user_message", "thread_id": required["thread_id"],
                         "content": "never mind, hello", "multitask": "interrupt"}),
    )
    .await;
    let frames = ws.collect_until(is_terminal).await;
    let end = frames.last().unwrap();
    assert_eq!(end["run_id"], required["run_id"], "{frames:#?}");
    assert_eq!(end["code"], "interrupted");
    let frames = ws.collect_until(is_terminal).await;
    assert_eq!(
        frames.last().unwrap()["type"],
        "agent_completed",
        "{frames:#?}"
    );
    assert_ne!(frames.last().unwrap()["run_id"], required["run_id"]);
    let run_id = required["run_id"].as_str().unwrap();
    assert_eq!(run_status(&server, &jo, run_id).await, "interrupted");
    assert_eq!(executions(&server, &jo, run_id).await, 0);
}
