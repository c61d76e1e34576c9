//! The golden path end to end: register, open a socket, ask, watch the agent work, read it all back over REST.
#![allow(
    clippy::unwrap_used,
    reason = "a test should panic loudly on a broken assumption"
)]

use cordon_test_support::on_each_database;
use cordon_test_support::postgres::Database;
use cordon_test_support::{TestServer, is_terminal};
use serde_json::{Value, json};

on_each_database!(
    a_question_streams_thinking_a_tool_call_and_the_answer,
    a_follow_up_in_the_same_thread_searches_the_users_own_history,
);

fn types(frames: &[Value]) -> Vec<&str> {
    frames.iter().map(|f| f["type"].as_str().unwrap()).collect()
}

async fn a_question_streams_thinking_a_tool_call_and_the_answer(database: Database) {
    let Some(server) = TestServer::start_storing_in(database, |_| {}).await else {
        return;
    };
    let alice = server.register("alice").await;
    let mut ws = server.connect(&alice).await;

    ws.send_json(&json!({"type": "user_message", "content": "What is (2 + 3) * 4?"}))
        .await;
    let frames = ws.collect_until(is_terminal).await;

    assert_eq!(
        types(&frames),
        [
            "thread_created",
            "agent_started",
            "agent_thinking",
            "agent_thinking",
            "tool_executing",
            "tool_completed",
            "agent_thinking",
            "agent_completed"
        ]
    );
    let thread_id = frames[0]["thread_id"].as_str().unwrap().to_owned();
    assert_eq!(frames[0]["title"], "What is (2 + 3) * 4?");
    let run_id = frames[1]["run_id"].as_str().unwrap().to_owned();
    // `thread_created` is the run's first logged event.
    let run_events = &frames[..];
    for (i, event) in run_events.iter().enumerate() {
        assert_eq!(event["run_id"], run_id.as_str());
        assert_eq!(event["thread_id"], thread_id.as_str());
        assert_eq!(
            event["seq"],
            i as u64 + 1,
            "seq is per user and starts at 1"
        );
        assert!(event["ts"].as_str().unwrap().ends_with('Z'));
    }
    assert_eq!(frames[0]["seq"], 1);
    assert_eq!(frames[4]["tool"], "calculator");
    assert_eq!(frames[4]["arguments"]["expression"], "(2 + 3) * 4");
    assert_eq!(frames[5]["result"]["value"], 20);
    assert_eq!(frames[5]["is_error"], false);
    assert_eq!(frames[7]["answer"], "(2 + 3) * 4 = 20.");

    let (status, threads) = server.get_json(&alice, "/api/threads").await;
    assert_eq!(status, 200);
    assert_eq!(threads.as_array().unwrap().len(), 1);
    assert_eq!(threads[0]["id"], thread_id.as_str());

    let (status, messages) = server
        .get_json(&alice, &format!("/api/threads/{thread_id}/messages"))
        .await;
    assert_eq!(status, 200);
    let roles: Vec<_> = messages
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "assistant"]);
    assert_eq!(messages[1]["content"], "(2 + 3) * 4 = 20.");
    assert_eq!(messages[1]["run_id"], run_id.as_str());

    let (status, run) = server
        .get_json(&alice, &format!("/api/runs/{run_id}"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(run["status"], "completed");
    assert_eq!(run["thread_id"], thread_id.as_str());
    assert!(run["finished_at"].is_string());
    assert!(run["error"].is_null());

    let (status, stored) = server
        .get_json(&alice, &format!("/api/runs/{run_id}/events"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        stored.as_array().unwrap(),
        run_events,
        "the stored log is what was sent"
    );

    let (_, tail) = server
        .get_json(&alice, &format!("/api/runs/{run_id}/events?after_seq=5"))
        .await;
    assert_eq!(
        types(tail.as_array().unwrap()),
        ["tool_completed", "agent_thinking", "agent_completed"]
    );
    server.stop().await;
}

async fn a_follow_up_in_the_same_thread_searches_the_users_own_history(database: Database) {
    let Some(server) = TestServer::start_storing_in(database, |_| {}).await else {
        return;
    };
    let bob = server.register("bob").await;
    let mut ws = server.connect(&bob).await;
    ws.send_json(&json!({"type": "user_message", "content": "I planted tomatoes in the garden"}))
        .await;
    // Any terminal frame ends the wait: a run that failed shows its error
    // instead of a timeout.
    let first = ws.collect_until(is_terminal).await;
    assert_eq!(
        first.last().unwrap()["type"],
        "agent_completed",
        "{first:#?}"
    );
    let thread_id = first[0]["thread_id"].as_str().unwrap().to_owned();

    ws.send_json(
        &json!({"type": "user_message", "thread_id": thread_id, "content": "What about tomatoes?"}),
    )
    .await;
    let second = ws.collect_until(is_terminal).await;
    assert_eq!(
        second.last().unwrap()["type"],
        "agent_completed",
        "{second:#?}"
    );
    assert_eq!(
        second[0]["type"], "agent_started",
        "no new thread for a follow-up"
    );
    assert_eq!(second[0]["thread_id"], thread_id.as_str());
    let tool = second
        .iter()
        .find(|f| f["type"] == "tool_completed")
        .unwrap();
    assert_eq!(tool["tool"], "search_history");
    assert_eq!(
        tool["result"]["matches"][0]["content"],
        "I planted tomatoes in the garden"
    );
    let answer = second.last().unwrap()["answer"].as_str().unwrap();
    assert!(
        answer.contains("I planted tomatoes in the garden"),
        "{answer}"
    );
    // seq keeps rising across runs of the same user.
    let last_first = first.last().unwrap()["seq"].as_u64().unwrap();
    assert_eq!(second[0]["seq"].as_u64().unwrap(), last_first + 1);
}
