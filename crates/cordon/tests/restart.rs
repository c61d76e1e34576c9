//! Durability: a restart on the same data dir keeps accounts, threads, runs and the event sequence.
#![allow(
    clippy::unwrap_used,
    reason = "a test should panic loudly on a broken assumption"
)]

use cordon_test_support::{TestServer, first_of};
use serde_json::json;

#[tokio::test]
async fn restart_keeps_threads_and_continues_seq() {
    let server = TestServer::start().await;
    let omar = server.register("omar").await;
    let mut ws = server.connect(&omar).await;
    ws.send_json(&json!({"type": "user_message", "content": "remember 40 + 2"}))
        .await;
    let frames = ws.collect_until(|f| f["type"] == "agent_completed").await;
    let thread_id = frames[0]["thread_id"].as_str().unwrap().to_owned();
    let last_seq = frames.last().unwrap()["seq"].as_u64().unwrap();
    ws.close().await;
    let data_dir = server.stop().await;

    let server = cordon_test_support::TestServer::start_in(data_dir, |_| {}).await;
    // The old token still works: the signing secret was kept in the data dir.
    let (status, threads) = server.get_json(&omar, "/api/threads").await;
    assert_eq!(status, 200);
    assert_eq!(threads[0]["id"], thread_id.as_str());
    let (_, messages) = server
        .get_json(&omar, &format!("/api/threads/{thread_id}/messages"))
        .await;
    assert_eq!(messages.as_array().unwrap().len(), 2);

    let mut ws = server.connect(&omar).await;
    ws.send_json(&json!({"type": "user_message", "thread_id": thread_id, "content": "and 1 + 1"}))
        .await;
    let frames = ws.collect_until(|f| f["type"] == "agent_completed").await;
    assert_eq!(
        frames[0]["seq"].as_u64().unwrap(),
        last_seq + 1,
        "seq continues after a restart"
    );
}

#[tokio::test]
async fn the_search_index_is_derived_data_rebuilt_from_the_messages() {
    let server = TestServer::start().await;
    let pia = server.register("pia").await;
    let mut ws = server.connect(&pia).await;
    ws.ask("I planted tomatoes").await;
    ws.close().await;
    let data_dir = server.stop().await;
    for file in ["search.db", "search.db-wal", "search.db-shm"] {
        let _ = std::fs::remove_file(data_dir.path().join(file));
    }

    let server = TestServer::start_in(data_dir, |_| {}).await;
    let mut ws = server.connect(&pia).await;
    let frames = ws.ask("what about tomatoes?").await;
    assert_eq!(
        first_of(&frames, "tool_completed")["result"]["matches"][0]["content"],
        "I planted tomatoes",
        "a lost index is rebuilt from the stored messages"
    );
}
