//! A database of its own for each test, on the PostgreSQL server named by `CORDON_TEST_DATABASE_URL` (`.ci/run` starts one), and the macro that runs a test on each database.

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::{Connection, Executor, PgConnection};

/// Which database a test's server or store keeps its data in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Database {
    Sqlite,
    Postgres,
}

/// Where a test's data goes: a temporary SQLite file, or a fresh database
/// on the PostgreSQL test server (its URL).
pub enum Fresh {
    Sqlite,
    Postgres(String),
}

impl Database {
    /// A fresh place for a test's data, or `None` when the test must be
    /// skipped (PostgreSQL without a test server, outside CI).
    pub async fn fresh(self) -> Option<Fresh> {
        match self {
            Database::Sqlite => Some(Fresh::Sqlite),
            Database::Postgres => Some(Fresh::Postgres(fresh_database(&test_server()?).await)),
        }
    }
}

/// Runs each named `async fn(Database)` once per database, as
/// `on_sqlite::name` and `on_postgres::name`; with `with = runner;` first,
/// each runs as `runner(database, name)` instead.
#[macro_export]
macro_rules! on_each_database {
    (with = $runner:ident; $($test:ident),* $(,)?) => {
        $crate::on_each_database!(@mod on_sqlite, Sqlite, |db, test| super::$runner(db, test); $($test),*);
        $crate::on_each_database!(@mod on_postgres, Postgres, |db, test| super::$runner(db, test); $($test),*);
    };
    ($($test:ident),* $(,)?) => {
        $crate::on_each_database!(@mod on_sqlite, Sqlite, |db, test| test(db); $($test),*);
        $crate::on_each_database!(@mod on_postgres, Postgres, |db, test| test(db); $($test),*);
    };
    (@mod $module:ident, $database:ident, |$db:ident, $t:ident| $call:expr; $($test:ident),*) => {
        mod $module {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                let $db = $crate::postgres::Database::$database;
                let $t = super::$test;
                $call.await;
            })*
        }
    };
}

/// The server the tests may create databases on, if one is configured;
/// under CI it must be (the PostgreSQL half of a suite fails, not skips).
pub fn test_server() -> Option<String> {
    match std::env::var("CORDON_TEST_DATABASE_URL") {
        Ok(url) => Some(url),
        Err(_) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CORDON_TEST_DATABASE_URL must name a PostgreSQL server under CI"
            );
            eprintln!("skipped: CORDON_TEST_DATABASE_URL is not set");
            None
        }
    }
}

/// Creates an empty database on `server` (a `postgres://…/database` URL)
/// and returns the URL of the new one.
pub async fn fresh_database(server: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    let name = format!(
        "cordon_test_{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let mut admin = PgConnection::connect(server)
        .await
        .expect("connect to the test PostgreSQL server");
    admin
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .expect("create a test database");
    let _ = admin.close().await;
    with_database(server, &name)
}

/// `server` with its database replaced by `name` (query parameters dropped).
fn with_database(server: &str, name: &str) -> String {
    let base = server.split('?').next().unwrap_or(server);
    let after_scheme = base.find("://").map_or(0, |at| at + 3);
    let host_end = base[after_scheme..]
        .find('/')
        .map_or(base.len(), |at| after_scheme + at);
    format!("{}/{name}", &base[..host_end])
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_database_of_a_url_is_replaced() {
        let replaced = |url| super::with_database(url, "t1");
        assert_eq!(
            replaced("postgres://p@127.0.0.1:5/postgres"),
            "postgres://p@127.0.0.1:5/t1"
        );
        assert_eq!(
            replaced("postgres://p@127.0.0.1:5"),
            "postgres://p@127.0.0.1:5/t1"
        );
        assert_eq!(
            replaced("postgres://h/db?sslmode=disable"),
            "postgres://h/t1"
        );
    }
}
