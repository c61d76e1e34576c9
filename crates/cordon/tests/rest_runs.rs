//! The run lifecycle over REST: submit (202 once stored), the log for pollers, run lists and cancel.
#![allow(
    clippy::unwrap_used,
    reason = "a test should panic loudly on a broken assumption"
)]

use std::time::Duration;

use cordon_test_support::TestServer;
use serde_json::json;

#[tokio::test]
async fn a_message_posted_over_rest_runs_and_streams_to_the_users_sockets() {
    let server = TestServer::start().await;
    let fay = server.register("fay").await;
    let mut ws = server.connect(&fay).await;

    let (status, accepted) = server
        .post_json(
            &fay,
            "/api/messages",
            &json!({"content": "what is 3 * 4?", "client_request_id": "rest-1"}),
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["status"], "running");
    let frames = ws.collect_until(|f| f["type"] == "agent_completed").await;
    assert_eq!(frames[0]["type"], "thread_created");
    assert_eq!(frames[0]["seq"], accepted["seq"]);
    assert_eq!(frames[0]["run_id"], accepted["run_id"]);
    assert_eq!(frames[1]["client_request_id"], "rest-1");
    assert_eq!(frames.last().unwrap()["answer"], "3 * 4 = 12.");

    // The poller's view is the same log.
    assert_eq!(server.event_log(&fay).await, frames);
    let (_, page) = server
        .get_json(&fay, "/api/events?after_seq=2&limit=3")
        .await;
    let seqs: Vec<u64> = page
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [3, 4, 5]);

    let thread_id = accepted["thread_id"].as_str().unwrap();
    let (status, second) = server
        .post_json(
            &fay,
            &format!("/api/threads/{thread_id}/messages"),
            &json!({"content": "and 1 + 1?"}),
        )
        .await;
    assert_eq!(status, 202);
    assert_eq!(second["thread_id"], thread_id);
    ws.collect_until(|f| f["type"] == "agent_completed").await;
    let (_, runs) = server
        .get_json(
            &fay,
            &format!("/api/runs?status=completed&thread_id={thread_id}"),
        )
        .await;
    let ids: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            second["run_id"].as_str().unwrap(),
            accepted["run_id"].as_str().unwrap()
        ]
    );
    let (status, _) = server.get_json(&fay, "/api/runs?status=sleeping").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn bad_and_foreign_messages_are_refused_with_their_codes() {
    let server =
        TestServer::start_with(|c| c.offline_step_delay = Duration::from_millis(200)).await;
    let gus = server.register("gus").await;
    let hal = server.register("hal").await;
    let (status, body) = server
        .post_json(&gus, "/api/messages", &json!({"content": "  "}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_message"))
    );
    let (status, body) = server
        .post_json(
            &gus,
            "/api/messages",
            &json!({"content": "x".repeat(40 * 1024)}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("message_too_large"))
    );
    let (status, body) = server
        .post_json(&gus, "/api/messages", &json!({"text": "hi"}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_body"))
    );

    let (_, accepted) = server
        .post_json(&gus, "/api/messages", &json!({"content": "1 + 1"}))
        .await;
    let thread = accepted["thread_id"].as_str().unwrap();
    // Another user's thread is not found, exactly like a missing one.
    let (status, body) = server
        .post_json(
            &hal,
            &format!("/api/threads/{thread}/messages"),
            &json!({"content": "mine?"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("thread_not_found"))
    );
    let (status, body) = server
        .post_json(
            &gus,
            &format!("/api/threads/{thread}/messages"),
            &json!({"content": "again"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("thread_busy"))
    );
    let (_, runs) = server.get_json(&hal, "/api/runs").await;
    assert!(
        runs.as_array().unwrap().is_empty(),
        "hal sees none of gus's runs"
    );
}

#[tokio::test]
async fn cancel_over_rest_stops_the_run_and_a_second_cancel_conflicts() {
    let server =
        TestServer::start_with(|c| c.offline_step_delay = Duration::from_millis(500)).await;
    let ida = server.register("ida").await;
    let jon = server.register("jon").await;
    let mut ws = server.connect(&ida).await;
    let (_, accepted) = server
        .post_json(&ida, "/api/messages", &json!({"content": "what is 9 * 9?"}))
        .await;
    let run_id = accepted["run_id"].as_str().unwrap();
    let path = format!("/api/runs/{run_id}/cancel");

    let (status, _) = server.post_json(&jon, &path, &json!({})).await;
    assert_eq!(status, 404, "another user cannot cancel it");
    let (status, body) = server.post_json(&ida, &path, &json!({})).await;
    assert_eq!((status, body["status"].as_str()), (202, Some("cancelling")));
    let frames = ws.collect_until(|f| f["type"] == "agent_error").await;
    assert_eq!(frames.last().unwrap()["code"], "cancelled");
    let (_, run) = server.get_json(&ida, &format!("/api/runs/{run_id}")).await;
    assert_eq!(run["status"], "cancelled");
    let (status, body) = server.post_json(&ida, &path, &json!({})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("run_finished"))
    );
}
