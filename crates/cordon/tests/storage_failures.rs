//! Bounded, honest writes: a store that cannot keep up refuses new runs with `overloaded`; a full disk ends runs `storage_failed`, turns `/readyz` to 503, and heals by itself once space is freed.
#![allow(
    clippy::unwrap_used,
    reason = "a test should panic loudly on a broken assumption"
)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cordon_test_support::{Account, TestServer, WsClient, is_terminal};
use serde_json::{Value, json};

/// A size-limited tmpfs mounted for one test, unmounted when dropped.
struct SmallDisk {
    mount: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    /// `None` (the test is skipped) where mounting is not allowed, except on
    /// CI, which runs as root and must run it.
    fn mount(megabytes: u32) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let mount = dir.path().join("disk");
        std::fs::create_dir(&mount).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(&mount)
            .status()
            .is_ok_and(|status| status.success());
        if !mounted {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must be able to mount a tmpfs (run as root)"
            );
            eprintln!("skipped: cannot mount a tmpfs here (not root?)");
            return None;
        }
        Some(Self { mount, _dir: dir })
    }

    fn data_dir(&self) -> Arc<tempfile::TempDir> {
        Arc::new(tempfile::tempdir_in(&self.mount).unwrap())
    }

    /// Writes a file until the disk is full; returns its path.
    fn fill(&self) -> PathBuf {
        let path = self.mount.join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk = vec![0xA5_u8; 64 * 1024];
        while file.write_all(&chunk).is_ok() {}
        let byte = [0_u8; 1];
        while file.write_all(&byte).is_ok() {}
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
    }
}

async fn readyz_status(server: &TestServer) -> u16 {
    server
        .http
        .get(server.url("/readyz"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Sends a new-thread message and waits for the answer or the refusal.
async fn ask(ws: &mut WsClient, content: &str) -> Vec<Value> {
    ws.send_json(&json!({"type": "user_message", "content": content}))
        .await;
    ws.collect_until(|f| is_terminal(f) || f["type"] == "error")
        .await
}

async fn run_status(server: &TestServer, account: &Account, run_id: &str) -> Value {
    let (status, run) = server
        .get_json(account, &format!("/api/runs/{run_id}"))
        .await;
    assert_eq!(status, 200, "run {run_id}: {run}");
    run
}

#[tokio::test]
async fn a_full_disk_fails_runs_honestly_and_the_server_heals_when_space_is_freed() {
    let Some(disk) = SmallDisk::mount(24) else {
        return;
    };
    let server = TestServer::start_in(disk.data_dir(), |_| {}).await;
    let erin = server.register("erin").await;
    let mut ws = server.connect(&erin).await;
    let first = ask(&mut ws, "what is 2 + 2?").await;
    assert_eq!(first.last().unwrap()["type"], "agent_completed");

    let filler = disk.fill();
    // SQLite may still have room in pages it owns; write until it has none.
    let mut completed = vec![first.last().unwrap()["run_id"].as_str().unwrap().to_owned()];
    let deadline = Instant::now() + Duration::from_secs(60);
    let failed = loop {
        assert!(
            Instant::now() < deadline,
            "writes never failed on a full disk"
        );
        let content = format!("what is 1 + 1? {}", "x".repeat(8000));
        let frames = ask(&mut ws, &content).await;
        let last = frames.last().unwrap().clone();
        if last["type"] != "agent_completed" {
            break last;
        }
        completed.push(last["run_id"].as_str().unwrap().to_owned());
    };
    assert_eq!(failed["code"], "storage_failed", "{failed}");
    assert_eq!(
        failed["seq"], 0,
        "a failure is a notice, not a log event: {failed}"
    );
    assert_eq!(
        readyz_status(&server).await,
        503,
        "not ready while writes fail"
    );

    // While it fails: a new message is refused, over the socket and over REST.
    let refused = ask(&mut ws, "are you there?").await;
    let refusal = refused.last().unwrap();
    assert_eq!(refusal["code"], "storage_failed", "{refusal}");
    assert_eq!(refusal["seq"], 0);
    let (status, body) = server
        .post_json(
            &erin,
            "/api/messages",
            &json!({"content": "and over REST?"}),
        )
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "storage_failed", "{body}");

    std::fs::remove_file(&filler).unwrap();
    wait_ready(&server).await;
    let after = ask(&mut ws, "what is 3 + 3?").await;
    assert_eq!(
        after.last().unwrap()["type"],
        "agent_completed",
        "{after:?}"
    );
    completed.push(after.last().unwrap()["run_id"].as_str().unwrap().to_owned());

    // Every success the client saw is stored, and nothing else completed.
    for run_id in &completed {
        let run = run_status(&server, &erin, run_id).await;
        assert_eq!(run["status"], "completed", "{run}");
    }
    let log = server.event_log(&erin).await;
    assert_no_duplicate_seq(&log);
    let completions = log
        .iter()
        .filter(|e| e["type"] == "agent_completed")
        .count();
    assert_eq!(
        completions,
        completed.len(),
        "only the answered runs completed"
    );
    // A run that was going when writes failed has its end stored soon after.
    let ended = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, runs) = server.get_json(&erin, "/api/runs?status=running").await;
        if runs == json!([]) {
            break;
        }
        assert!(Instant::now() < ended, "a run was left running: {runs}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Readiness comes back by itself once writes work again.
async fn wait_ready(server: &TestServer) {
    let healed = Instant::now() + Duration::from_secs(20);
    while readyz_status(server).await != 200 {
        assert!(Instant::now() < healed, "never ready again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_run_whose_writes_fail_midway_ends_storage_failed_and_its_end_is_stored_once_writes_work()
{
    let server = TestServer::start_with(|c| {
        c.offline_step_delay = Duration::from_millis(300);
    })
    .await;
    let fred = server.register("fred").await;
    let mut ws = server.connect(&fred).await;
    let started = ws.start_run("what is 12 * 12?").await;
    let run_id = started["run_id"].as_str().unwrap().to_owned();
    // Another connection holds the write lock past the writer's busy timeout
    // (5 s): the run's next write fails, as on a stalled or broken disk.
    let lock = WriteLock::take(server.data_dir.path());
    let frames = ws.collect_until(is_terminal).await;
    let failed = frames.last().unwrap();
    assert_eq!(failed["code"], "storage_failed", "{frames:?}");
    assert_eq!(failed["run_id"], run_id.as_str());
    assert_eq!(
        failed["seq"], 0,
        "the notice is not in the log (it could not be stored)"
    );
    assert_eq!(readyz_status(&server).await, 503);
    assert_eq!(
        run_status(&server, &fred, &run_id).await["status"],
        "running"
    );

    lock.release();
    wait_ready(&server).await;
    // The failed run's end is stored once writes work: in the log, with a real seq.
    let stored = ws.collect_until(is_terminal).await;
    let stored = stored.last().unwrap();
    assert_eq!(stored["run_id"], run_id.as_str());
    assert_eq!(stored["code"], "storage_failed");
    assert!(stored["seq"].as_u64().unwrap() > 0, "{stored}");
    let run = run_status(&server, &fred, &run_id).await;
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["error"]["code"], "storage_failed", "{run}");
    let after = ask(&mut ws, "what is 3 + 3?").await;
    assert_eq!(
        after.last().unwrap()["type"],
        "agent_completed",
        "{after:?}"
    );
    assert_no_duplicate_seq(&server.event_log(&fred).await);
}

fn assert_no_duplicate_seq(log: &[Value]) {
    let seqs: Vec<u64> = log.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
}

/// Holds the database's write lock from another connection, as a stalled
/// disk would, until dropped.
struct WriteLock(rusqlite::Connection);

impl WriteLock {
    fn take(data_dir: &Path) -> Self {
        let conn = rusqlite::Connection::open(data_dir.join("cordon.db")).unwrap();
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        Self(conn)
    }

    fn release(self) {
        self.0.execute_batch("COMMIT").unwrap();
    }
}

#[tokio::test]
async fn a_store_that_cannot_keep_up_refuses_new_runs_with_overloaded() {
    let server = TestServer::start_with(|c| c.write_queue_capacity = 16).await;
    let mut users = Vec::new();
    for name in ["ana", "ben", "cai", "dov", "eli", "fay"] {
        let account = server.register(name).await;
        let ws = server.connect(&account).await;
        users.push((account, ws));
    }
    let lock = WriteLock::take(server.data_dir.path());
    for (_, ws) in &mut users {
        ws.send_json(&json!({"type": "user_message", "content": "what is 5 + 5?"}))
            .await;
        // Let the writer take what is queued into its (blocked) batch.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut refused = Vec::new();
    for (account, ws) in &mut users {
        if let Some(frame) = ws.try_next_json(Duration::from_millis(300)).await {
            assert_eq!(frame["code"], "overloaded", "{frame}");
            assert_eq!(frame["seq"], 0, "a refusal is not a log event");
            refused.push(account.clone());
        }
    }
    assert!(
        !refused.is_empty(),
        "nobody was refused while the writer was stalled"
    );
    assert!(refused.len() < users.len(), "everybody was refused");
    lock.release();

    for (account, ws) in &mut users {
        if refused.iter().any(|r| r.user_id == account.user_id) {
            continue;
        }
        let frames = ws.collect_until(is_terminal).await;
        assert_eq!(
            frames.last().unwrap()["type"],
            "agent_completed",
            "{frames:?}"
        );
    }
    for account in &refused {
        assert!(
            server.event_log(account).await.is_empty(),
            "a refusal stored events"
        );
        let (_, threads) = server.get_json(account, "/api/threads").await;
        assert_eq!(threads, json!([]), "a refusal stored a thread");
    }
    let metrics = server.metrics_text().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("cordon_limit_rejections_total{reason=\"overloaded\"}")),
        "no overloaded rejection counted"
    );
}
