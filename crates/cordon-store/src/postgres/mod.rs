//! `PgStore`: the PostgreSQL implementation of `Store`, selected by `--database-url postgres://…`.
//!
//! The same shape as SQLite's: reads through a connection pool, every write
//! through the one writer thread ([`crate::writer`], with this module's
//! [`writes`] backend) that group-commits whatever queued up meanwhile, and
//! history searches on a pool of their own under a time budget
//! (`statement_timeout`), so one tenant's searches never hold the
//! connections other tenants read through.

mod bulk;
mod owners;
mod writes;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use cordon_core::{Message, StoreError, UserId};
use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};

use crate::StoreOptions;
use crate::convert::{backend, message_of};
use crate::queue::WriteQueue;
use crate::shared::{Sql, impl_store};
pub use owners::{Claimed, DEAD_PEER_BOUND, PgOwners};
use writes::PgWrites;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations-postgres");

/// Connections for ordinary reads.
const READ_CONNECTIONS: u32 = 8;
/// Connections for history searches, apart from the reads.
const SEARCH_CONNECTIONS: u32 = 2;
/// The advisory lock an instance holds on its database (any constant of
/// cordon's own; "cordon" in ASCII).
const INSTANCE_LOCK: i64 = 0x636f_7264_6f6e;
/// PostgreSQL's code for a statement stopped by `statement_timeout`.
const QUERY_CANCELED: &str = "57014";

pub struct PgStore {
    reads: PgPool,
    searches: PgPool,
    search_budget: Duration,
    writes: WriteQueue,
    sealing: Option<crate::SealingKey>,
    /// Holds `INSTANCE_LOCK` for the store's life unless the database is
    /// shared: uncoordinated, a second instance would hand out the same `seq`
    /// numbers, so it is refused at start-up. Shared instances coordinate
    /// through `PgOwners` instead.
    _instance: Option<std::sync::Mutex<PgConnection>>,
}

impl PgStore {
    /// Connects to `url` (`postgres://user:password@host:port/database`),
    /// migrates the database and starts the writer.
    pub async fn open(url: &str, options: StoreOptions) -> Result<Arc<Self>, StoreError> {
        let connect = PgConnectOptions::from_str(url)
            .map_err(|error| StoreError::Backend(format!("invalid database URL: {error}")))?
            .disable_statement_logging();
        let pool = |size| {
            PgPoolOptions::new()
                .max_connections(size)
                .acquire_timeout(Duration::from_secs(10))
                .connect_lazy_with(connect.clone())
        };
        let instance = match options.shared {
            true => None,
            false => Some(std::sync::Mutex::new(hold_instance_lock(&connect).await?)),
        };
        let reads = pool(READ_CONNECTIONS);
        MIGRATOR
            .run(&reads)
            .await
            .map_err(|error| StoreError::Backend(format!("migration failed: {error}")))?;
        let writes = WriteQueue::start(
            PgWrites::new(connect.clone())?,
            options.write_queue_capacity,
        )?;
        Ok(Arc::new(Self {
            reads,
            searches: pool(SEARCH_CONNECTIONS),
            search_budget: options.search_budget,
            writes,
            sealing: options.sealing_key,
            _instance: instance,
        }))
    }

    /// The search itself, in a transaction whose `statement_timeout` is the budget.
    async fn search(
        &self,
        user_id: &UserId,
        query: &str,
        limit: u32,
    ) -> Result<Vec<Message>, sqlx::Error> {
        let mut tx = self.searches.begin().await?;
        let budget_ms = self.search_budget.as_millis().max(1);
        sqlx::query(&format!("SET LOCAL statement_timeout = {budget_ms}"))
            .execute(&mut *tx)
            .await?;
        let rows = sqlx::query(
            "SELECT id, thread_id, role, content, run_id, created_at FROM messages \
             WHERE user_id = $1 AND role = 'user' AND strpos(lower(content), lower($2)) > 0 \
             ORDER BY position DESC LIMIT $3",
        )
        .bind(user_id.as_str())
        .bind(query)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.into_iter()
            .map(|row| message_of(row).map_err(|error| sqlx::Error::Decode(error.into())))
            .collect()
    }

    /// A history search, on the search pool under its budget.
    async fn search_history(
        &self,
        user_id: &UserId,
        query: &str,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        match self.search(user_id, query, limit).await {
            Ok(messages) => Ok(messages),
            Err(error) if over_budget(&error) => Err(StoreError::OverBudget {
                budget: self.search_budget,
            }),
            Err(error) => Err(backend(error)),
        }
    }
}

/// A connection holding the instance lock, or why there is none.
async fn hold_instance_lock(connect: &PgConnectOptions) -> Result<PgConnection, StoreError> {
    let mut conn = connect.connect().await.map_err(backend)?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(INSTANCE_LOCK)
        .fetch_one(&mut conn)
        .await
        .map_err(backend)?;
    if !locked {
        return Err(StoreError::Backend(
            "another cordon instance is serving this database; several instances need --broker-url"
                .into(),
        ));
    }
    Ok(conn)
}

fn over_budget(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|error| error.code())
        .is_some_and(|code| code == QUERY_CANCELED)
}

/// PostgreSQL's text of the shared queries. `position` stands in for
/// SQLite's rowid; sums of `BIGINT` are `NUMERIC` here, so they are cast back.
const POSTGRES: Sql = Sql {
    budget_override: "SELECT daily_usd, monthly_usd, daily_tokens, monthly_tokens FROM user_budgets \
                      WHERE user_id = $1",
    spend_since: "SELECT COALESCE(SUM(input_tokens + output_tokens), 0)::BIGINT AS tokens, \
                  COALESCE(SUM(cost_usd), 0.0)::FLOAT8 AS cost_usd FROM llm_calls \
                  WHERE user_id = $1 AND created_at >= $2",
    pause: "SELECT run_id, thread_id, state, expires_at FROM run_pauses \
            WHERE user_id = $1 AND run_id = $2",
    pauses: "SELECT run_id, thread_id, state, expires_at FROM run_pauses WHERE user_id = $1 \
             ORDER BY expires_at",
    expired_pauses: "SELECT user_id, run_id FROM run_pauses WHERE expires_at < $1",
    secret: "SELECT sealed FROM user_secrets WHERE user_id = $1 AND name = $2",
    secret_names: "SELECT name, updated_at FROM user_secrets WHERE user_id = $1 ORDER BY name",
    find_user_by_name: "SELECT id, username, password_hash, created_at, token_generation, admin FROM users \
                        WHERE lower(username) = lower($1)",
    get_user: "SELECT id, username, password_hash, created_at, token_generation, admin FROM users WHERE id = $1",
    find_thread: "SELECT id, user_id, title, created_at, updated_at FROM threads WHERE id = $1 AND user_id = $2",
    thread_messages: "SELECT m.id, m.thread_id, m.role, m.content, m.run_id, m.created_at \
         FROM threads t LEFT JOIN LATERAL ( \
             SELECT * FROM messages m WHERE m.thread_id = t.id AND m.user_id = t.user_id \
             AND ($3::text IS NULL OR m.position < (SELECT position FROM messages \
                  WHERE id = $3 AND thread_id = t.id AND user_id = t.user_id)) \
             ORDER BY m.position DESC LIMIT $4) m ON true \
         WHERE t.id = $1 AND t.user_id = $2",
    list_threads: "SELECT id, user_id, title, created_at, updated_at FROM threads \
         WHERE user_id = $1 AND ($2::text IS NULL OR (updated_at, position) < \
             (SELECT updated_at, position FROM threads WHERE id = $2 AND user_id = $1)) \
         ORDER BY updated_at DESC, position DESC LIMIT $3",
    get_run: "SELECT id, user_id, thread_id, agent, status, created_at, finished_at, error_code, \
              error_message FROM runs WHERE id = $1 AND user_id = $2",
    list_events: "SELECT seq, run_id, event_type, payload FROM run_events \
                  WHERE user_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
    log_bounds: "SELECT COALESCE((SELECT pruned_through FROM event_log_floor WHERE user_id = $1), 0), \
                 COALESCE((SELECT MAX(seq) FROM run_events WHERE user_id = $1), 0)",
    prune_floors: "SELECT user_id, MAX(seq) FROM run_events WHERE ts < $1 GROUP BY user_id",
    unfinished_runs: "SELECT id, user_id, thread_id, agent, status, created_at, finished_at, error_code, \
                      error_message FROM runs WHERE status IN ('queued', 'running') ORDER BY position",
    list_run_events: "SELECT seq, run_id, event_type, payload FROM run_events \
                      WHERE user_id = $1 AND run_id = $2 AND seq > $3 ORDER BY seq",
    run_usage: "SELECT model, COUNT(*) AS calls, SUM(input_tokens)::BIGINT AS input_tokens, \
                SUM(output_tokens)::BIGINT AS output_tokens, SUM(cost_usd) AS cost_usd FROM llm_calls \
                WHERE user_id = $1 AND run_id = $2 GROUP BY model ORDER BY calls DESC, model",
    usage_runs: "SELECT COUNT(DISTINCT run_id) FROM llm_calls WHERE user_id = $1",
    usage_by_model: "SELECT model, COUNT(*) AS calls, SUM(input_tokens)::BIGINT AS input_tokens, \
                     SUM(output_tokens)::BIGINT AS output_tokens, SUM(cost_usd) AS cost_usd FROM llm_calls \
                     WHERE user_id = $1 GROUP BY model ORDER BY cost_usd DESC, model",
    param: |n| format!("${n}"),
    runs_newest_first: " ORDER BY created_at DESC, position DESC",
};

impl_store!(PgStore, POSTGRES);
