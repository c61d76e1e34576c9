//! Graceful shutdown: running runs finish within the grace period, then sockets get a close frame.
#![allow(
    clippy::unwrap_used,
    reason = "a test should panic loudly on a broken assumption"
)]

use std::time::Duration;

use cordon_test_support::{TestServer, is_terminal};
use serde_json::json;

#[tokio::test]
async fn a_running_run_finishes_before_sockets_close_with_1001() {
    let mut server = TestServer::start_with(|c| {
        c.offline_step_delay = Duration::from_millis(300);
        c.shutdown_grace = Duration::from_secs(5);
    })
    .await;
    let pia = server.register("pia").await;
    let mut ws = server.connect(&pia).await;
    ws.send_json(&json!({"type": "user_message", "content": "what is 9 * 9?"}))
        .await;
    ws.collect_until(|f| f["type"] == "agent_started").await;

    server.signal_shutdown();
    let frames = ws.collect_until(is_terminal).await;
    assert_eq!(
        frames.last().unwrap()["answer"],
        "9 * 9 = 81.",
        "the run finished during the grace period"
    );
    let closed = ws.closed(Duration::from_secs(10)).await;
    assert_eq!(closed, Some((1001, "server shutting down".to_owned())));
    let data_dir = server.stop().await;

    // What finished during the drain was stored.
    let server = TestServer::start_in(data_dir, |_| {}).await;
    let (_, threads) = server.get_json(&pia, "/api/threads").await;
    let thread_id = threads[0]["id"].as_str().unwrap();
    let (_, messages) = server
        .get_json(&pia, &format!("/api/threads/{thread_id}/messages"))
        .await;
    assert_eq!(messages[1]["content"], "9 * 9 = 81.");
}
