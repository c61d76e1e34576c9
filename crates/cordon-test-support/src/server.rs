//! `TestServer`: the real server on an ephemeral loopback port, with a temporary data dir.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cordon_protocol::rest::AuthResponse;
use cordon_server::{Server, ServerConfig};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::ws::WsClient;

/// The password every test account is registered with.
pub const PASSWORD: &str = "correct horse battery";

/// A registered user of a test server.
#[derive(Debug, Clone)]
pub struct Account {
    pub username: String,
    pub user_id: String,
    pub token: String,
}

pub struct TestServer {
    pub addr: SocketAddr,
    /// Kept alive for the server's life; pass it to `start_in` to restart on the same data.
    pub data_dir: Arc<TempDir>,
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestServer {
    /// A server with test-friendly defaults (offline model without delay).
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// A server whose config `configure` may adjust.
    pub async fn start_with(configure: impl FnOnce(&mut ServerConfig)) -> Self {
        let dir = Arc::new(tempfile::tempdir().expect("temp data dir"));
        Self::start_in(dir, configure).await
    }

    /// A server storing in `database` (a fresh one), or `None` when the test
    /// must be skipped: PostgreSQL without a test server, outside CI.
    pub async fn start_storing_in(
        database: crate::postgres::Database,
        configure: impl FnOnce(&mut ServerConfig),
    ) -> Option<Self> {
        let url = match database.fresh().await? {
            crate::postgres::Fresh::Sqlite => None,
            crate::postgres::Fresh::Postgres(url) => Some(url),
        };
        Some(
            Self::start_with(|config| {
                config.database_url = url.map(secrecy::SecretString::from);
                configure(config);
            })
            .await,
        )
    }

    /// A server on an existing data dir (e.g. to test a restart).
    pub async fn start_in(
        data_dir: Arc<TempDir>,
        configure: impl FnOnce(&mut ServerConfig),
    ) -> Self {
        let config = test_config(&data_dir, configure);
        Self::start_server(data_dir, Server::new(config)).await
    }

    /// A server on a given address and data dir: restarts a stopped server on
    /// its old port, so clients that knew it (a browser) can reconnect.
    /// Retries the bind for a few seconds while the old socket goes away.
    pub async fn start_on(
        addr: SocketAddr,
        data_dir: Arc<TempDir>,
        configure: impl FnOnce(&mut ServerConfig),
    ) -> Self {
        let config = test_config(&data_dir, configure);
        let mut attempts = 0;
        let listener = loop {
            match TcpListener::bind(addr).await {
                Ok(listener) => break listener,
                Err(_) if attempts < 100 => {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(error) => panic!("could not bind {addr} again: {error}"),
            }
        };
        Self::serve_on(listener, data_dir, Server::new(config)).await
    }

    /// Runs a fully built `Server` (e.g. with a custom model).
    pub async fn start_server(data_dir: Arc<TempDir>, server: Server) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        Self::serve_on(listener, data_dir, server).await
    }

    async fn serve_on(listener: TcpListener, data_dir: Arc<TempDir>, server: Server) -> Self {
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            if let Err(error) = server.run(listener, shutdown).await {
                panic!("server failed: {error}");
            }
        });
        let server = Self {
            addr,
            data_dir,
            http: reqwest::Client::new(),
            stop: Some(stop),
            task: Some(task),
        };
        server.wait_ready().await;
        server
    }

    async fn wait_ready(&self) {
        for _ in 0..200 {
            let response = self.http.get(self.url("/readyz")).send().await;
            if response.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("server at {} never became ready", self.addr);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Registers `username` with the fixed test password.
    pub async fn register(&self, username: &str) -> Account {
        self.authenticate("/api/auth/register", username, 201).await
    }

    /// Signs a registered `username` in again: a second token, as from another device.
    pub async fn login(&self, username: &str) -> Account {
        self.authenticate("/api/auth/login", username, 200).await
    }

    async fn authenticate(&self, path: &str, username: &str, expected: u16) -> Account {
        let response = self
            .http
            .post(self.url(path))
            .json(&json!({ "username": username, "password": PASSWORD }))
            .send()
            .await
            .expect("auth request");
        assert_eq!(response.status(), expected, "{path} as {username}");
        let auth: AuthResponse = response.json().await.expect("auth response");
        Account {
            username: username.to_owned(),
            user_id: auth.user_id,
            token: auth.token,
        }
    }

    /// The `/metrics` exposition (Prometheus text).
    pub async fn metrics_text(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics request")
            .text()
            .await
            .expect("metrics body")
    }

    /// Opens an authenticated socket and consumes `connection_established`.
    pub async fn connect(&self, account: &Account) -> WsClient {
        WsClient::connect(&self.ws_url(), &account.token).await
    }

    /// Opens a socket that resumes after `after_seq` (`GET /ws?after_seq=N`) and consumes the greeting.
    pub async fn connect_after(&self, account: &Account, after_seq: u64) -> WsClient {
        let url = format!("{}?after_seq={after_seq}", self.ws_url());
        WsClient::connect(&url, &account.token).await
    }

    /// POST `body` as JSON to `path` with the account's token; returns status and JSON body.
    pub async fn post_json(&self, account: &Account, path: &str, body: &Value) -> (u16, Value) {
        self.request_json(reqwest::Method::POST, account, path, Some(body))
            .await
    }

    /// `method` on `path` with the account's token and `body` as JSON; returns
    /// status and JSON body (`null` when there is none).
    pub async fn request_json(
        &self,
        method: reqwest::Method,
        account: &Account,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, self.url(path))
            .bearer_auth(&account.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("HTTP request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// The account's whole event log, read page by page from `GET /api/events`.
    pub async fn event_log(&self, account: &Account) -> Vec<Value> {
        let mut log = Vec::new();
        let mut after = 0;
        loop {
            let path = format!("/api/events?after_seq={after}&limit=1000");
            let (status, page) = self.get_json(account, &path).await;
            assert_eq!(status, 200, "GET {path}: {page}");
            let page = page.as_array().cloned().unwrap_or_default();
            let Some(last) = page.last() else { return log };
            after = last["seq"].as_u64().expect("seq");
            log.extend(page);
        }
    }

    /// GET `path` with the account's token; returns status and JSON body.
    pub async fn get_json(&self, account: &Account, path: &str) -> (u16, Value) {
        self.request_json(reqwest::Method::GET, account, path, None)
            .await
    }

    /// Signals shutdown without waiting (e.g. to watch sockets drain); `stop` then waits.
    pub fn signal_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Signals shutdown and waits for the server to drain.
    pub async fn stop(mut self) -> Arc<TempDir> {
        self.shutdown().await;
        Arc::clone(&self.data_dir)
    }

    async fn shutdown(&mut self) {
        self.signal_shutdown();
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(20), task)
                .await
                .expect("server shut down in time")
                .expect("server task");
        }
    }
}

/// Test-friendly defaults (offline model without delay, short grace), then `configure`.
fn test_config(data_dir: &TempDir, configure: impl FnOnce(&mut ServerConfig)) -> ServerConfig {
    let mut config = ServerConfig::new(data_dir.path());
    config.offline_step_delay = Duration::ZERO;
    config.shutdown_grace = Duration::from_secs(2);
    // Every test user signs up from 127.0.0.1; the tests of the sign-up
    // throttle set their own limit.
    config.signups_per_hour = 100_000;
    configure(&mut config);
    config
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.signal_shutdown();
    }
}
