//! A real `cordon serve` child killed with SIGKILL mid-run: on restart its run ends `interrupted`, in the log, and no seen `seq` is reused.
#![allow(
    clippy::unwrap_used,
    reason = "a test should panic loudly on a broken assumption"
)]

use std::ffi::OsString;
use std::path::Path;

use cordon_test_support::WsClient;
use cordon_test_support::child::{ChildServer, free_port};
use serde_json::{Value, json};

/// A `cordon serve` process on a fixed loopback port and data dir.
async fn start(data_dir: &Path, port: u16) -> ChildServer {
    let args = [
        OsString::from("--offline-delay-ms"),
        "400".into(),
        "--data-dir".into(),
        data_dir.into(),
    ];
    ChildServer::start(env!("CARGO_BIN_EXE_cordon"), port, &args, &[]).await
}

#[tokio::test]
async fn a_killed_server_ends_its_runs_as_interrupted_on_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cordon = start(dir.path(), port).await;
    let kim = cordon.register("kim").await;
    let mut ws = WsClient::connect(&format!("ws://{}/ws", cordon.base), &kim.token).await;
    ws.send_json(&json!({"type": "user_message", "content": "what is 7 * 6?"}))
        .await;
    // The offline model takes 400 ms a step: kill while the run is mid-pipeline.
    let seen = ws.collect_until(|f| f["type"] == "agent_thinking").await;
    let run_id = seen[1]["run_id"].as_str().unwrap().to_owned();
    cordon.kill();

    // A second crash, right as the restarted server comes up, is survived too.
    let again = start(dir.path(), port).await;
    again.kill();
    let cordon = start(dir.path(), port).await;

    let (_, run) = cordon.get(&kim, &format!("/api/runs/{run_id}")).await;
    assert_eq!(run["status"], "interrupted");
    assert_eq!(run["error"]["code"], "interrupted");
    let (_, log) = cordon.get(&kim, "/api/events?after_seq=0").await;
    let log = log.as_array().unwrap();
    // Everything the client saw before the crash is in the log, unchanged.
    assert_eq!(&log[..seen.len()], &seen[..]);
    let terminal: Vec<&Value> = log.iter().filter(|e| e["type"] == "agent_error").collect();
    assert_eq!(terminal.len(), 1, "the run ended exactly once: {log:?}");
    assert_eq!(terminal[0]["code"], "interrupted");
    assert_eq!(terminal[0]["run_id"], run_id.as_str());

    // A resuming client sees the end, and numbering continues after it.
    let cursor = seen.last().unwrap()["seq"].as_u64().unwrap();
    let url = format!("ws://{}/ws?after_seq={cursor}", cordon.base);
    let mut ws = WsClient::connect(&url, &kim.token).await;
    let resumed = ws.collect_until(|f| f["code"] == "interrupted").await;
    assert_eq!(resumed[0]["seq"], cursor + 1);
    let last = resumed.last().unwrap()["seq"].as_u64().unwrap();
    ws.send_json(&json!({"type": "user_message", "content": "1 + 1"}))
        .await;
    let next = ws.collect_until(|f| f["type"] == "thread_created").await;
    assert_eq!(next.last().unwrap()["seq"], last + 1);
}
