//! `Browser`: a chromedriver started by the test, and `BrowserSession`s of headless Chromium driven through WebDriver (`fantoccini`).
//!
//! One `Browser` runs at a time per test binary (it holds a process-wide
//! lock): on a small CI machine two Chromiums side by side make timings flaky.
//! Without chromedriver on `PATH` (or in `CHROMEDRIVER`) `Browser::start`
//! panics when `CI` is set, so CI cannot pass without running the browser
//! tests, and otherwise returns `None` after printing why.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Map, Value, json};
use tempfile::TempDir;
use tokio::sync::{Mutex, MutexGuard};

static ONE_BROWSER_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// A running chromedriver; dropping it ends the sessions still open (a test
/// that panicked) so no Chromium outlives the test, then stops chromedriver.
pub struct Browser {
    driver: Child,
    port: u16,
    open_sessions: Arc<StdMutex<Vec<String>>>,
    _serial: MutexGuard<'static, ()>,
}

/// One headless Chromium with its own fresh profile; derefs to the WebDriver client.
pub struct BrowserSession {
    client: Client,
    id: String,
    open_sessions: Arc<StdMutex<Vec<String>>>,
    _profile: TempDir,
}

impl Browser {
    /// Starts chromedriver on a free loopback port and waits until it answers.
    pub async fn start() -> Option<Self> {
        let Some(driver_path) = find_chromedriver() else {
            let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
            assert!(
                !ci,
                "chromedriver is not installed but CI is set: the browser tests must run in CI \
                 (apt-get install chromium chromium-driver)"
            );
            eprintln!(
                "SKIPPED: chromedriver not found on PATH; install Debian's `chromium` and \
                 `chromium-driver` to run the browser tests"
            );
            return None;
        };
        let serial = ONE_BROWSER_AT_A_TIME.lock().await;
        let port = free_port();
        let mut command = Command::new(&driver_path);
        command
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let driver = command
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {}: {e}", driver_path.display()));
        let browser = Self {
            driver,
            port,
            open_sessions: Arc::default(),
            _serial: serial,
        };
        browser.wait_ready().await;
        Some(browser)
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn wait_ready(&self) {
        let http = reqwest::Client::new();
        for _ in 0..200 {
            let status = http.get(format!("{}/status", self.url())).send().await;
            if status.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("chromedriver at {} never became ready", self.url());
    }

    /// A new headless Chromium session (1280×900, fresh profile).
    pub async fn session(&self) -> BrowserSession {
        let profile = tempfile::tempdir().expect("browser profile dir");
        let mut args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--window-size=1280,900".to_owned(),
        ];
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let mut options = json!({ "args": args });
        if Path::new("/usr/bin/chromium").exists() {
            options["binary"] = json!("/usr/bin/chromium");
        }
        let mut capabilities = Map::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert("goog:chromeOptions".into(), options);
        // Collect the page's console errors (a CSP violation shows up there).
        capabilities.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url())
            .await
            .expect("a WebDriver session with headless Chromium");
        let id = client
            .session_id()
            .await
            .expect("the session id")
            .expect("a session id");
        self.open_sessions.lock().unwrap().push(id.clone());
        BrowserSession {
            client,
            id,
            open_sessions: Arc::clone(&self.open_sessions),
            _profile: profile,
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let left_open =
            std::mem::take(&mut *self.open_sessions.lock().unwrap_or_else(|e| e.into_inner()));
        for id in left_open {
            delete_session(self.port, &id);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl BrowserSession {
    /// Ends the session (closes Chromium).
    pub async fn close(self) {
        self.open_sessions
            .lock()
            .unwrap()
            .retain(|id| *id != self.id);
        let _ = self.client.close().await;
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns its result.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Polls `script` until it returns `true`, or panics with `what` after `timeout`.
    pub async fn wait_until(&self, what: &str, timeout: Duration, script: &str) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.js(script, vec![]).await == Value::Bool(true) {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                let body = self.js("return document.body.innerText;", vec![]).await;
                panic!("timed out waiting for {what}; the page shows:\n{body}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Deref for BrowserSession {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

/// `DELETE /session/{id}` with a blocking, minimal HTTP/1.1 request (usable in `Drop`).
fn delete_session(port: u16, id: &str) {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let request = format!(
        "DELETE /session/{id} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).is_ok() {
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response);
    }
}

fn find_chromedriver() -> Option<PathBuf> {
    if let Some(explicit) = std::env::var_os("CHROMEDRIVER") {
        let path = PathBuf::from(explicit);
        return path.is_file().then_some(path);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("chromedriver"))
        .find(|candidate| candidate.is_file())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}
