//! Opening a socket builds the user's engine, so the first message's path does no store read.
//! One test per binary: the metrics recorder is process-wide.
#![allow(
    clippy::unwrap_used,
    reason = "a test should panic loudly on a broken assumption"
)]

use cordon_test_support::{TestServer, WsClient, is_terminal};
use serde_json::json;

/// The value of an unlabelled metric in the server's `/metrics` text.
async fn metric(server: &TestServer, name: &str) -> f64 {
    let body = server.metrics_text().await;
    cordon_bench::parse_gauge(&body, name)
        .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{body}"))
}

/// A session reads client frames only once the engine is built: a pong proves it is.
async fn ping(ws: &mut WsClient) {
    ws.send_json(&json!({"type": "ping"})).await;
    assert_eq!(ws.next_json().await["type"], "pong");
}

#[tokio::test]
async fn a_socket_builds_its_users_engine_and_the_first_message_reuses_it() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    assert_eq!(metric(&server, "cordon_engines_created_total").await, 0.0);

    let mut first = server.connect(&alice).await;
    ping(&mut first).await;
    assert_eq!(metric(&server, "cordon_engines_active").await, 1.0);
    assert_eq!(metric(&server, "cordon_engines_created_total").await, 1.0);

    let mut second = server.connect(&alice).await;
    ping(&mut second).await;
    first
        .send_json(&json!({"type": "user_message", "content": "What is 6 * 7?"}))
        .await;
    let frames = first.collect_until(is_terminal).await;
    assert_eq!(frames.last().unwrap()["answer"], "6 * 7 = 42.");
    assert_eq!(frames[1]["type"], "agent_started");
    assert_eq!(frames[1]["seq"], 2, "after thread_created (seq 1)");
    assert_eq!(
        metric(&server, "cordon_engines_created_total").await,
        1.0,
        "a second socket and the message reuse the engine the first socket built"
    );

    let bob = server.register("bob").await;
    let mut bobs = server.connect(&bob).await;
    ping(&mut bobs).await;
    assert_eq!(metric(&server, "cordon_engines_active").await, 2.0);
}
