//! `ClickHouse`: a real `clickhouse-server` (Debian's 18.16) on loopback ports with a temporary data dir, stopped with SIGKILL and started again on the same port and data, for the analytics tests.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::child::free_port;

pub struct ClickHouse {
    child: Option<Child>,
    dir: TempDir,
    http_port: u16,
    http: reqwest::Client,
}

impl ClickHouse {
    /// Starts one, or `None` when `clickhouse-server` is not installed
    /// outside CI (under CI it must be: `.ci/run` installs it).
    pub async fn start() -> Option<Self> {
        let installed = Command::new("clickhouse-server")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !installed {
            assert!(
                std::env::var_os("CI").is_none(),
                "clickhouse-server must be installed under CI"
            );
            eprintln!("skipped: clickhouse-server is not installed");
            return None;
        }
        let mut clickhouse = Self {
            child: None,
            dir: tempfile::tempdir().unwrap(),
            http_port: free_port(),
            http: reqwest::Client::new(),
        };
        clickhouse.write_config();
        clickhouse.resume().await;
        Some(clickhouse)
    }

    /// `http://127.0.0.1:PORT/DATABASE`, as `--clickhouse-url` takes it.
    pub fn url(&self, database: &str) -> String {
        format!("http://127.0.0.1:{}/{database}", self.http_port)
    }

    /// Stops it with SIGKILL: an outage.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it (again) on its port and data, once it answers queries.
    pub async fn resume(&mut self) {
        let config = self.dir.path().join("config.xml");
        let child = Command::new("clickhouse-server")
            .arg(format!("--config-file={}", config.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        for _ in 0..400 {
            if self.try_query("SELECT 1").await.is_some() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("clickhouse-server never answered");
    }

    /// The answer to `sql` (tab-separated), panicking on an error.
    pub async fn query(&self, sql: &str) -> String {
        match self.try_query(sql).await {
            Some(Ok(text)) => text,
            Some(Err(error)) => panic!("{sql}: {error}"),
            None => panic!("{sql}: ClickHouse is not reachable"),
        }
    }

    /// `None` when unreachable, else the body or the error ClickHouse gave.
    async fn try_query(&self, sql: &str) -> Option<Result<String, String>> {
        let url = format!("http://127.0.0.1:{}/", self.http_port);
        let response = self.http.post(url).body(sql.to_owned()).send().await.ok()?;
        let ok = response.status().is_success();
        let text = response.text().await.ok()?;
        Some(if ok { Ok(text) } else { Err(text) })
    }

    fn write_config(&self) {
        let dir = self.dir.path().display();
        let tcp_port = free_port();
        let config = format!(
            r#"<?xml version="1.0"?>
<yandex>
    <logger><level>warning</level><log>{dir}/server.log</log><errorlog>{dir}/error.log</errorlog></logger>
    <listen_host>127.0.0.1</listen_host>
    <http_port>{http}</http_port>
    <tcp_port>{tcp_port}</tcp_port>
    <path>{dir}/data/</path>
    <tmp_path>{dir}/tmp/</tmp_path>
    <user_files_path>{dir}/user_files/</user_files_path>
    <format_schema_path>{dir}/format_schemas/</format_schema_path>
    <users_config>users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <mark_cache_size>268435456</mark_cache_size>
</yandex>
"#,
            http = self.http_port
        );
        let users = r#"<?xml version="1.0"?>
<yandex>
    <profiles><default></default></profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas><default></default></quotas>
</yandex>
"#;
        std::fs::write(self.dir.path().join("config.xml"), config).unwrap();
        std::fs::write(self.dir.path().join("users.xml"), users).unwrap();
    }
}

impl Drop for ClickHouse {
    fn drop(&mut self) {
        self.stop();
    }
}
