//! Real MCP servers for the tool tests: the reference `server-everything` over stdio, and a recording server (Python SDK) over streamable HTTP.
//!
//! `scripts/mcp-test-servers.sh DIR` installs both; the tests find them
//! through `CORDON_TEST_MCP_EVERYTHING` (the server's `dist/index.js`) and
//! `CORDON_TEST_MCP_PYTHON` (a Python with the `mcp` package). Without them
//! the tests are skipped, except under `CI`, where they must run.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cordon_mcp::{McpServer, McpServerConfig};
use serde_json::Value;
use tempfile::TempDir;

use crate::child::free_port;

/// The environment variable that tells one test's server processes from another's.
const MARK: &str = "CORDON_TEST_MCP_MARK";

/// The processes whose environment carries `marker`.
pub fn pids_marked(marker: &str) -> Vec<u32> {
    let wanted = format!("{MARK}={marker}");
    let Ok(processes) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    processes
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|environ| {
                environ
                    .split(|byte| *byte == 0)
                    .any(|variable| variable == wanted.as_bytes())
            })
        })
        .collect()
}

/// Where the installed test servers are, or `None` (outside CI) when they are not.
pub struct McpFixtures {
    everything: String,
    python: String,
}

impl McpFixtures {
    pub fn find() -> Option<Self> {
        let everything = std::env::var("CORDON_TEST_MCP_EVERYTHING").ok();
        let python = std::env::var("CORDON_TEST_MCP_PYTHON").ok();
        match (everything, python) {
            (Some(everything), Some(python)) => Some(Self { everything, python }),
            _ => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "CORDON_TEST_MCP_EVERYTHING and CORDON_TEST_MCP_PYTHON must be set under CI \
                     (.ci/run runs scripts/mcp-test-servers.sh)"
                );
                eprintln!(
                    "skipped: the MCP test servers are not installed (scripts/mcp-test-servers.sh)"
                );
                None
            }
        }
    }

    /// `server-everything` over stdio, as the server `name`; its process
    /// carries `marker` in its environment (see [`pids_marked`]).
    pub fn everything(&self, name: &str, marker: &str) -> McpServer {
        let config = McpServerConfig {
            command: Some("node".into()),
            args: vec![self.everything.clone(), "stdio".into()],
            env: BTreeMap::from([(MARK.to_owned(), marker.to_owned())]),
            url: None,
            headers: BTreeMap::new(),
            timeout_secs: Some(10.0),
            per_user: false,
        };
        config.check(name).unwrap()
    }

    /// Starts the recording server on a free loopback port.
    pub async fn recorder(&self) -> Recorder {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("calls.jsonl");
        let port = free_port();
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../cordon/tests/mcp/recording_server.py");
        let child = Command::new(&self.python)
            .arg(script)
            .arg(port.to_string())
            .arg(&log)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let recorder = Recorder {
            child,
            port,
            log,
            _dir: dir,
        };
        recorder.wait_listening().await;
        recorder
    }
}

/// The recording MCP server, stopped on drop.
pub struct Recorder {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: TempDir,
}

impl Recorder {
    async fn wait_listening(&self) {
        for _ in 0..400 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the recording MCP server never listened");
    }

    /// This server as `name`, sending `headers` with every request, calls
    /// timing out after `timeout_secs`.
    pub fn server(&self, name: &str, headers: &[(&str, &str)], timeout_secs: f64) -> McpServer {
        self.declared(name, headers, timeout_secs, false)
    }

    /// This server as `name` with a connection per user, `headers` filled
    /// from each user's `{secret.NAME}`.
    pub fn per_user_server(&self, name: &str, headers: &[(&str, &str)]) -> McpServer {
        self.declared(name, headers, 10.0, true)
    }

    fn declared(
        &self,
        name: &str,
        headers: &[(&str, &str)],
        timeout_secs: f64,
        per_user: bool,
    ) -> McpServer {
        let config = McpServerConfig {
            command: None,
            args: Vec::new(),
            env: BTreeMap::new(),
            url: Some(format!("http://127.0.0.1:{}/mcp", self.port)),
            headers: headers
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect(),
            timeout_secs: Some(timeout_secs),
            per_user,
        };
        config.check(name).unwrap()
    }

    /// Every call recorded so far, in order.
    pub fn calls(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    /// Waits until a recorded call satisfies `found`.
    pub async fn wait_for(&self, within: Duration, found: impl Fn(&Value) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline {
            if self.calls().iter().any(&found) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
