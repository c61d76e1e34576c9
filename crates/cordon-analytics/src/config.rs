//! `ClickHouseConfig`: where analytics go (`--clickhouse-url http://user:password@host:8123/database`) and how much is buffered; the password is redacted in `Debug`.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::AnalyticsError;

/// Rows held while ClickHouse is slow or away; past it new rows are dropped.
pub const DEFAULT_BUFFER_ROWS: usize = 100_000;

#[derive(Clone)]
pub struct ClickHouseConfig {
    /// The HTTP endpoint, without credentials or database (`http://host:8123`).
    pub endpoint: String,
    pub database: String,
    pub user: Option<String>,
    pub password: Option<SecretString>,
    /// Rows (runs and model calls together) buffered at most.
    pub buffer_rows: usize,
    /// Most rows of one table written in one insert.
    pub batch_rows: usize,
    /// How often buffered rows are written when fewer than a batch wait.
    pub flush_interval: Duration,
}

impl ClickHouseConfig {
    /// Reads `http(s)://[user[:password]@]host[:port][/database]` (database
    /// `default` when none).
    pub fn from_url(raw: &str) -> Result<Self, AnalyticsError> {
        let url =
            url::Url::parse(raw).map_err(|error| AnalyticsError::InvalidUrl(error.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(AnalyticsError::InvalidUrl(format!(
                "the scheme must be http or https, not {}",
                url.scheme()
            )));
        }
        let host = url
            .host_str()
            .ok_or_else(|| AnalyticsError::InvalidUrl("no host".into()))?;
        let endpoint = match url.port() {
            Some(port) => format!("{}://{host}:{port}", url.scheme()),
            None => format!("{}://{host}", url.scheme()),
        };
        let database = url.path().trim_matches('/');
        Ok(Self {
            endpoint,
            database: if database.is_empty() {
                "default"
            } else {
                database
            }
            .to_owned(),
            user: (!url.username().is_empty()).then(|| url.username().to_owned()),
            password: url
                .password()
                .map(|password| SecretString::from(password.to_owned())),
            buffer_rows: DEFAULT_BUFFER_ROWS,
            batch_rows: 10_000,
            flush_interval: Duration::from_secs(1),
        })
    }

    /// A client of this server and database: RowBinary without schema
    /// validation and no compression, which Debian's 18.16 understands.
    pub(crate) fn client(&self, database: &str) -> clickhouse::Client {
        let mut client = clickhouse::Client::default()
            .with_url(&self.endpoint)
            .with_database(database)
            .with_validation(false)
            .with_compression(clickhouse::Compression::None);
        if let Some(user) = &self.user {
            client = client.with_user(user);
        }
        if let Some(password) = &self.password {
            client = client.with_password(password.expose_secret());
        }
        client
    }
}

impl std::fmt::Debug for ClickHouseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickHouseConfig")
            .field("endpoint", &self.endpoint)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("buffer_rows", &self.buffer_rows)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_gives_endpoint_database_and_credentials_and_debug_hides_the_password() {
        let config = ClickHouseConfig::from_url("http://ana:s3cret@127.0.0.1:8123/metrics")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.endpoint, "http://127.0.0.1:8123");
        assert_eq!(config.database, "metrics");
        assert_eq!(config.user.as_deref(), Some("ana"));
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("s3cret") && shown.contains("<redacted>"),
            "{shown}"
        );
        let plain =
            ClickHouseConfig::from_url("http://localhost:8123").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((plain.database.as_str(), plain.user), ("default", None));
        assert!(ClickHouseConfig::from_url("tcp://localhost:9000").is_err());
    }
}
