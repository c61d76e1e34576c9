//! Protocol edges: malformed frames keep the socket open, heartbeats, idle timeout, and other users' data answering 404.
#![allow(
    clippy::unwrap_used,
    reason = "a test should panic loudly on a broken assumption"
)]

use std::time::Duration;

use cordon_test_support::TestServer;
use serde_json::json;

#[tokio::test]
async fn malformed_frames_get_an_error_and_the_connection_stays_open() {
    let server = TestServer::start().await;
    let hank = server.register("hank").await;
    let mut ws = server.connect(&hank).await;
    let cases = [
        ("not json", "invalid_json"),
        ("{}", "missing_type"),
        (r#"{"type":"launch_missiles"}"#, "unknown_type"),
        (r#"{"type":"user_message"}"#, "invalid_frame"),
        (
            r#"{"type":"user_message","content":"   "}"#,
            "invalid_message",
        ),
        (
            r#"{"type":"user_message","content":"hi","thread_id":"default"}"#,
            "thread_not_found",
        ),
        (r#"{"type":"cancel","run_id":"nope"}"#, "run_not_found"),
    ];
    for (text, code) in cases {
        ws.send_text(text).await;
        let reply = ws.next_json().await;
        assert_eq!(reply["type"], "error", "{text}");
        assert_eq!(reply["code"], code, "{text}");
        assert!(reply["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    ws.send_json(&json!({"type": "ping"})).await;
    assert_eq!(ws.next_json().await["type"], "pong");
    ws.send_json(&json!({"type": "user_message", "content": "1 + 2"}))
        .await;
    let frames = ws.collect_until(|f| f["type"] == "agent_completed").await;
    assert_eq!(frames.last().unwrap()["answer"], "1 + 2 = 3.");
}

#[tokio::test]
async fn another_users_thread_and_run_answer_404_like_missing_ones() {
    let server = TestServer::start().await;
    let ivy = server.register("ivy").await;
    let jack = server.register("jack").await;
    let mut ws = server.connect(&ivy).await;
    ws.send_json(&json!({"type": "user_message", "content": "secret plans 1 + 1"}))
        .await;
    let frames = ws.collect_until(|f| f["type"] == "agent_completed").await;
    let thread_id = frames[0]["thread_id"].as_str().unwrap();
    let run_id = frames[1]["run_id"].as_str().unwrap();

    for path in [
        format!("/api/threads/{thread_id}/messages"),
        format!("/api/runs/{run_id}"),
        format!("/api/runs/{run_id}/events"),
    ] {
        let (theirs, body) = server.get_json(&jack, &path).await;
        let missing_path = path
            .replace(thread_id, "00000000-missing")
            .replace(run_id, "00000000-missing");
        let (missing, missing_body) = server.get_json(&jack, &missing_path).await;
        assert_eq!((theirs, missing), (404, 404), "{path}");
        assert_eq!(body["error"]["code"], "not_found");
        assert_eq!(body["error"]["code"], missing_body["error"]["code"]);
    }
    let (_, threads) = server.get_json(&jack, "/api/threads").await;
    assert_eq!(threads, json!([]));

    let mut jack_ws = server.connect(&jack).await;
    jack_ws
        .send_json(&json!({"type": "user_message", "thread_id": thread_id, "content": "let me in"}))
        .await;
    assert_eq!(jack_ws.next_json().await["code"], "thread_not_found");
}

#[tokio::test]
async fn heartbeat_pings_and_idle_sockets_are_closed() {
    let server = TestServer::start_with(|c| {
        c.heartbeat_interval = Duration::from_millis(100);
        c.idle_timeout = Duration::from_millis(450);
    })
    .await;
    let kim = server.register("kim").await;
    let mut ws = server.connect(&kim).await;
    let ping = ws.next_json().await;
    assert_eq!(ping["type"], "ping");
    assert!(ping["ts"].is_string());
    // Client traffic keeps the socket alive past one idle timeout...
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        ws.send_json(&json!({"type": "pong"})).await;
    }
    // ...silence closes it with a reason.
    let closed = ws.closed(Duration::from_secs(5)).await;
    assert_eq!(closed, Some((1000, "idle timeout".to_owned())));
}
