//! A database of its own for each test, on the PostgreSQL server named by `CORDON_TEST_DATABASE_URL` (`.ci/run` starts one).

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::{Connection, Executor, PgConnection};

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
