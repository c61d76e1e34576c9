//! `ChildServer`: a real `cordon serve` process on a loopback port, stopped with real signals; `Broker`: a real `nats-server` for several of them.

use std::ffi::OsString;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::server::{Account, PASSWORD};

/// A free loopback port (free when asked; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `cordon serve` child process.
pub struct ChildServer {
    child: Child,
    /// `127.0.0.1:port`.
    pub base: String,
}

impl ChildServer {
    /// Starts `binary serve --addr 127.0.0.1:port ARGS` with `envs` and waits until it is ready.
    pub async fn start(binary: &str, port: u16, args: &[OsString], envs: &[(&str, &str)]) -> Self {
        let child = Command::new(binary)
            .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
            .args(args)
            .envs(envs.iter().copied())
            // `CORDON_TEST_SERVER_LOGS=1` shows the child's log, for debugging.
            .stdout(match std::env::var_os("CORDON_TEST_SERVER_LOGS") {
                Some(_) => Stdio::inherit(),
                None => Stdio::null(),
            })
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let server = Self {
            child,
            base: format!("127.0.0.1:{port}"),
        };
        server.wait_ready().await;
        server
    }

    async fn wait_ready(&self) {
        let http = reqwest::Client::new();
        for _ in 0..400 {
            let ready = http.get(self.url("/readyz")).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("cordon never became ready");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.base)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.base)
    }

    /// SIGKILL: no shutdown, no flush, exactly like a crash.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, as an orchestrator stops a container; waits for the exit (blocking).
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        self.child.wait().unwrap()
    }

    pub async fn register(&self, username: &str) -> Account {
        let auth = self
            .post(
                None,
                "/api/auth/register",
                &json!({"username": username, "password": PASSWORD}),
            )
            .await
            .1;
        Account {
            username: username.into(),
            user_id: auth["user_id"].as_str().unwrap().into(),
            token: auth["token"].as_str().unwrap().into(),
        }
    }

    pub async fn get(&self, account: &Account, path: &str) -> (u16, Value) {
        let response = reqwest::Client::new()
            .get(self.url(path))
            .bearer_auth(&account.token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, account: Option<&Account>, path: &str, body: &Value) -> (u16, Value) {
        let mut request = reqwest::Client::new().post(self.url(path)).json(body);
        if let Some(account) = account {
            request = request.bearer_auth(&account.token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `nats-server` child on a loopback port, which can be stopped and started again on it.
pub struct Broker {
    child: Option<Child>,
    port: u16,
}

impl Broker {
    /// Starts one, or `None` when `nats-server` is not installed outside CI
    /// (under CI it must be: `.ci/run` installs it).
    pub async fn start() -> Option<Self> {
        let installed = Command::new("nats-server")
            .arg("--version")
            .output()
            .is_ok();
        if !installed {
            assert!(
                std::env::var_os("CI").is_none(),
                "nats-server must be installed under CI"
            );
            eprintln!("skipped: nats-server is not installed");
            return None;
        }
        let mut broker = Self {
            child: None,
            port: free_port(),
        };
        broker.resume().await;
        Some(broker)
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Stops it (SIGKILL): an outage.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, once it accepts connections.
    pub async fn resume(&mut self) {
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("nats-server never listened");
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}
