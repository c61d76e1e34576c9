//! `TestCluster`: a fresh PostgreSQL database and a real `nats-server` shared by the `cordon serve` instances one test starts.

use std::ffi::OsString;

use crate::child::{Broker, ChildServer, free_port};
use crate::postgres::{Database, Fresh};

/// The signing secret every instance of a test shares (tokens work on any).
const SECRET: &str = "a shared signing secret of at least 32 bytes";

/// A database and a broker for one test's instances.
pub struct TestCluster {
    binary: String,
    database: String,
    pub broker: Broker,
    dirs: Vec<tempfile::TempDir>,
}

impl TestCluster {
    /// `None` without `CORDON_TEST_DATABASE_URL` or `nats-server` (outside CI).
    /// `binary` is the test's `env!("CARGO_BIN_EXE_cordon")`.
    pub async fn new(binary: &str) -> Option<Self> {
        let Some(Fresh::Postgres(database)) = Database::Postgres.fresh().await else {
            return None;
        };
        Some(Self {
            binary: binary.to_owned(),
            database,
            broker: Broker::start().await?,
            dirs: Vec::new(),
        })
    }

    /// One more instance; `delay_ms` per offline model step keeps runs in flight.
    pub async fn instance(&mut self, delay_ms: u32) -> ChildServer {
        self.instance_with(delay_ms, &[]).await
    }

    /// One more instance with `extra` arguments.
    pub async fn instance_with(&mut self, delay_ms: u32, extra: &[&str]) -> ChildServer {
        let dir = tempfile::tempdir().unwrap();
        let mut args: Vec<OsString> = vec![
            "--data-dir".into(),
            dir.path().into(),
            "--database-url".into(),
            self.database.clone().into(),
            "--broker-url".into(),
            self.broker.url().into(),
            "--offline-delay-ms".into(),
            delay_ms.to_string().into(),
            "--signups-per-hour".into(),
            "1000".into(),
        ];
        args.extend(extra.iter().map(OsString::from));
        self.dirs.push(dir);
        let envs = [
            ("CORDON_JWT_SECRET", SECRET),
            ("CORDON_SECRETS_KEY", SECRET),
        ];
        ChildServer::start(&self.binary, free_port(), &args, &envs).await
    }
}
