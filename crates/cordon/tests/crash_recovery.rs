//! A real `cordon serve` child killed with SIGKILL mid-run: on restart its run ends `interrupted`, in the log, and no seen `seq` is reused.
#![allow(
    clippy::unwrap_used,
    reason = "a test should panic loudly on a broken assumption"
)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cordon_test_support::{Account, PASSWORD, WsClient};
use serde_json::{Value, json};

/// A `cordon serve` process on a fixed loopback port and data dir.
struct Cordon {
    child: Child,
    base: String,
}

impl Cordon {
    async fn start(data_dir: &Path, port: u16) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_cordon"))
            .args([
                "serve",
                "--addr",
                &format!("127.0.0.1:{port}"),
                "--offline-delay-ms",
                "400",
            ])
            .arg("--data-dir")
            .arg(data_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let cordon = Self {
            child,
            base: format!("127.0.0.1:{port}"),
        };
        cordon.wait_ready().await;
        cordon
    }

    async fn wait_ready(&self) {
        let http = reqwest::Client::new();
        for _ in 0..400 {
            let ready = http
                .get(format!("http://{}/readyz", self.base))
                .send()
                .await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("cordon never became ready");
    }

    /// SIGKILL: no shutdown, no flush, exactly like a crash.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    async fn get(&self, account: &Account, path: &str) -> Value {
        reqwest::Client::new()
            .get(format!("http://{}{path}", self.base))
            .bearer_auth(&account.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

impl Drop for Cordon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn register(cordon: &Cordon, username: &str) -> Account {
    let auth: Value = reqwest::Client::new()
        .post(format!("http://{}/api/auth/register", cordon.base))
        .json(&json!({"username": username, "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    Account {
        username: username.into(),
        user_id: auth["user_id"].as_str().unwrap().into(),
        token: auth["token"].as_str().unwrap().into(),
    }
}

#[tokio::test]
async fn a_killed_server_ends_its_runs_as_interrupted_on_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cordon = Cordon::start(dir.path(), port).await;
    let kim = register(&cordon, "kim").await;
    let mut ws = WsClient::connect(&format!("ws://{}/ws", cordon.base), &kim.token).await;
    ws.send_json(&json!({"type": "user_message", "content": "what is 7 * 6?"}))
        .await;
    // The offline model takes 400 ms a step: kill while the run is mid-pipeline.
    let seen = ws.collect_until(|f| f["type"] == "agent_thinking").await;
    let run_id = seen[1]["run_id"].as_str().unwrap().to_owned();
    cordon.kill();

    // A second crash, right as the restarted server comes up, is survived too.
    let again = Cordon::start(dir.path(), port).await;
    again.kill();
    let cordon = Cordon::start(dir.path(), port).await;

    let run = cordon.get(&kim, &format!("/api/runs/{run_id}")).await;
    assert_eq!(run["status"], "interrupted");
    assert_eq!(run["error"]["code"], "interrupted");
    let log = cordon.get(&kim, "/api/events?after_seq=0").await;
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
