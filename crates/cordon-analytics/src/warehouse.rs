//! `Warehouse`: the one module that speaks to ClickHouse: the tables (created on start, within what Debian's 18.16 supports: `DateTime`, `MergeTree`), batch inserts, and the usage report's queries.

use std::collections::BTreeMap;

use clickhouse::Row;
use serde::Deserialize;

use crate::report::{Durations, ErrorCount, UsageByModel, UsageByUser, UsageRange, UsageReport};
use crate::rows::{CallRow, RunRow, seconds};
use crate::{AnalyticsError, ClickHouseConfig};

pub(crate) const RUNS: &str = "cordon_runs";
pub(crate) const CALLS: &str = "cordon_model_calls";

const CREATE_RUNS: &str = "CREATE TABLE IF NOT EXISTS cordon_runs (
    finished_at DateTime, started_at DateTime, duration_ms UInt64,
    user_id String, thread_id String, run_id String, agent String, model String,
    status String, error_code String
) ENGINE = MergeTree() PARTITION BY toYYYYMM(finished_at) ORDER BY (finished_at, user_id)";

const CREATE_CALLS: &str = "CREATE TABLE IF NOT EXISTS cordon_model_calls (
    started_at DateTime, duration_ms UInt64,
    user_id String, thread_id String, run_id String, agent String, model String,
    error_code String, input_tokens UInt64, output_tokens UInt64, cost_usd Float64
) ENGINE = MergeTree() PARTITION BY toYYYYMM(started_at) ORDER BY (started_at, user_id)";

#[derive(Clone)]
pub struct Warehouse {
    config: ClickHouseConfig,
    client: clickhouse::Client,
}

impl Warehouse {
    pub fn new(config: ClickHouseConfig) -> Self {
        let client = config.client(&config.database);
        Self { config, client }
    }

    /// Creates the database and both tables unless they exist.
    pub async fn create_schema(&self) -> Result<(), AnalyticsError> {
        let database = clickhouse::sql::Identifier(&self.config.database);
        self.config
            .client("default")
            .query("CREATE DATABASE IF NOT EXISTS ?")
            .bind(database)
            .execute()
            .await?;
        self.client.query(CREATE_RUNS).execute().await?;
        self.client.query(CREATE_CALLS).execute().await?;
        Ok(())
    }

    pub(crate) async fn insert_runs(&self, rows: &[RunRow]) -> Result<(), AnalyticsError> {
        let mut insert = self.client.insert::<RunRow>(RUNS).await?;
        for row in rows {
            insert.write(row).await?;
        }
        Ok(insert.end().await?)
    }

    pub(crate) async fn insert_calls(&self, rows: &[CallRow]) -> Result<(), AnalyticsError> {
        let mut insert = self.client.insert::<CallRow>(CALLS).await?;
        for row in rows {
            insert.write(row).await?;
        }
        Ok(insert.end().await?)
    }

    /// Runs, tokens and cost per user and per model, errors by code and
    /// run durations over `range`.
    pub async fn usage(&self, range: UsageRange) -> Result<UsageReport, AnalyticsError> {
        let by_user = self.users(range).await?;
        let by_model = self.models(range).await?;
        let errors = self.errors(range).await?;
        let durations = self.durations(range).await?;
        Ok(UsageReport::new(
            range, by_user, by_model, errors, durations,
        ))
    }

    async fn users(&self, range: UsageRange) -> Result<Vec<UsageByUser>, AnalyticsError> {
        #[derive(Row, Deserialize)]
        struct Runs {
            user_id: String,
            runs: u64,
            failed: u64,
        }
        #[derive(Row, Deserialize)]
        struct Calls {
            user_id: String,
            calls: u64,
            input_tokens: u64,
            output_tokens: u64,
            cost_usd: f64,
        }
        let runs: Vec<Runs> = self
            .ranged(
                "SELECT user_id, count(), countIf(status != 'completed') FROM cordon_runs \
                 WHERE finished_at >= toDateTime(?) AND finished_at < toDateTime(?) GROUP BY user_id",
                range,
            )
            .fetch_all()
            .await?;
        let calls: Vec<Calls> = self
            .ranged(
                "SELECT user_id, count(), sum(input_tokens), sum(output_tokens), sum(cost_usd) \
                 FROM cordon_model_calls \
                 WHERE started_at >= toDateTime(?) AND started_at < toDateTime(?) GROUP BY user_id",
                range,
            )
            .fetch_all()
            .await?;
        let mut users = BTreeMap::<String, UsageByUser>::new();
        let named = |id: &str| UsageByUser {
            user_id: id.to_owned(),
            ..UsageByUser::default()
        };
        for r in runs {
            let user = users
                .entry(r.user_id.clone())
                .or_insert_with(|| named(&r.user_id));
            user.runs = r.runs;
            user.failed_runs = r.failed;
        }
        for c in calls {
            let user = users
                .entry(c.user_id.clone())
                .or_insert_with(|| named(&c.user_id));
            user.model_calls = c.calls;
            user.input_tokens = c.input_tokens;
            user.output_tokens = c.output_tokens;
            user.cost_usd = c.cost_usd;
        }
        Ok(users.into_values().collect())
    }

    async fn models(&self, range: UsageRange) -> Result<Vec<UsageByModel>, AnalyticsError> {
        Ok(self
            .ranged(
                "SELECT model, count(), countIf(error_code != ''), sum(input_tokens), \
                 sum(output_tokens), sum(cost_usd), quantile(0.5)(duration_ms), \
                 quantile(0.99)(duration_ms) FROM cordon_model_calls \
                 WHERE started_at >= toDateTime(?) AND started_at < toDateTime(?) \
                 GROUP BY model ORDER BY sum(cost_usd) DESC, model",
                range,
            )
            .fetch_all()
            .await?)
    }

    async fn errors(&self, range: UsageRange) -> Result<Vec<ErrorCount>, AnalyticsError> {
        #[derive(Row, Deserialize)]
        struct Errors {
            code: String,
            runs: u64,
        }
        let errors: Vec<Errors> = self
            .ranged(
                "SELECT error_code, count() FROM cordon_runs \
                 WHERE finished_at >= toDateTime(?) AND finished_at < toDateTime(?) \
                 AND error_code != '' GROUP BY error_code ORDER BY count() DESC, error_code",
                range,
            )
            .fetch_all()
            .await?;
        Ok(errors
            .into_iter()
            .map(|e| ErrorCount {
                code: e.code,
                runs: e.runs,
                rate: 0.0,
            })
            .collect())
    }

    async fn durations(&self, range: UsageRange) -> Result<Durations, AnalyticsError> {
        Ok(self
            .ranged(
                "SELECT count(), quantile(0.5)(duration_ms), quantile(0.99)(duration_ms) \
                 FROM cordon_runs WHERE finished_at >= toDateTime(?) AND finished_at < toDateTime(?)",
                range,
            )
            .fetch_one()
            .await?)
    }

    /// `sql` over `range` (its two `?`), answered in RowBinary: the client
    /// asks for it with the `default_format` setting, which 18.16 ignores.
    /// Rows hold whole seconds, so the end is rounded up: a run that ended
    /// within the range's last second is in it.
    fn ranged(&self, sql: &str, range: UsageRange) -> clickhouse::query::Query {
        let to = seconds(range.to) + u32::from(range.to.nanosecond() > 0);
        self.client
            .query(&format!("{sql} FORMAT RowBinary"))
            .bind(seconds(range.from))
            .bind(to)
    }
}

impl std::fmt::Debug for Warehouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Warehouse")
            .field("config", &self.config)
            .finish()
    }
}
