//! `SqliteStore`: the embedded SQLite implementation of `Store`.

pub(crate) mod checkpoint;
mod indexer;
mod search;
mod writes;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cordon_core::{StoreError, UserId};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, SqlitePool};

use crate::StoreOptions;
use crate::convert::backend;
use crate::queue::WriteQueue;
use crate::shared::{Sql, impl_store};
use checkpoint::{Checkpointer, WalBound};
pub use search::DEFAULT_SEARCH_BUDGET;
use search::Searches;
use writes::SqliteWrites;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// File name of the database inside the data directory.
pub const DATABASE_FILE: &str = "cordon.db";

pub struct SqliteStore {
    reads: SqlitePool,
    /// History searches (a tool's queries) run here, off `reads` and under a
    /// time budget: however many a tenant starts, other tenants' reads do
    /// not wait behind them.
    searches: Searches,
    writes: WriteQueue,
    sealing: Option<crate::SealingKey>,
    _checkpointer: Checkpointer,
}

impl SqliteStore {
    /// Opens (creating if needed) `data_dir/cordon.db` with default options.
    pub async fn open(data_dir: &Path) -> Result<Arc<Self>, StoreError> {
        Self::open_with(data_dir, StoreOptions::default()).await
    }

    /// Opens (creating if needed) `data_dir/cordon.db`, migrates it and starts the writer.
    pub async fn open_with(
        data_dir: &Path,
        options: StoreOptions,
    ) -> Result<Arc<Self>, StoreError> {
        let connect = SqliteConnectOptions::new()
            .filename(data_dir.join(DATABASE_FILE))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .disable_statement_logging();
        let reads = SqlitePoolOptions::new()
            .max_connections(4)
            // A local file cannot drop a connection: skip the ping that would
            // double every read's round trips to SQLite's thread.
            .test_before_acquire(false)
            .connect_with(connect.clone())
            .await
            .map_err(backend)?;
        let database = data_dir.join(DATABASE_FILE);
        MIGRATOR
            .run(&reads)
            .await
            .map_err(|error| StoreError::Backend(format!("migration failed: {error}")))?;
        let conn = writes::open(&database)?;
        let searches = Searches::open(connect, &database, data_dir, options.search_budget).await?;
        let checkpointer = Checkpointer::start(&database)?;
        let backend = SqliteWrites::new(conn, WalBound::new(&database));
        let writes = WriteQueue::start(backend, options.write_queue_capacity)?;
        Ok(Arc::new(Self {
            reads,
            searches,
            writes,
            sealing: options.sealing_key,
            _checkpointer: checkpointer,
        }))
    }

    /// A history search, on the search pool under its budget.
    async fn search_history(
        &self,
        user_id: &UserId,
        query: &str,
        limit: u32,
    ) -> Result<Vec<cordon_core::Message>, StoreError> {
        self.searches.messages(user_id, query, limit).await
    }
}

/// SQLite's text of the shared queries. `INDEXED BY` in `thread_messages`:
/// left to itself the planner picked the by-user index, so every history
/// read scanned all of the user's messages and runs slowed down as users
/// wrote more (docs/performance.md).
const SQLITE: Sql = Sql {
    budget_override: "SELECT daily_usd, monthly_usd, daily_tokens, monthly_tokens FROM user_budgets \
                      WHERE user_id = ?",
    spend_since: "SELECT COALESCE(SUM(input_tokens + output_tokens), 0) AS tokens, \
                  COALESCE(SUM(cost_usd), 0.0) AS cost_usd FROM llm_calls \
                  WHERE user_id = ? AND created_at >= ?",
    pause: "SELECT run_id, thread_id, state, expires_at FROM run_pauses \
            WHERE user_id = ? AND run_id = ?",
    pauses: "SELECT run_id, thread_id, state, expires_at FROM run_pauses WHERE user_id = ? \
             ORDER BY expires_at",
    expired_pauses: "SELECT user_id, run_id FROM run_pauses WHERE expires_at < ?",
    secret: "SELECT sealed FROM user_secrets WHERE user_id = ? AND name = ?",
    secret_names: "SELECT name, updated_at FROM user_secrets WHERE user_id = ? ORDER BY name",
    find_user_by_name: "SELECT id, username, password_hash, created_at, token_generation, admin FROM users \
                        WHERE username = ?",
    get_user: "SELECT id, username, password_hash, created_at, token_generation, admin FROM users WHERE id = ?",
    find_thread: "SELECT id, user_id, title, created_at, updated_at FROM threads WHERE id = ? AND user_id = ?",
    thread_messages: "SELECT m.id, m.thread_id, m.role, m.content, m.run_id, m.created_at \
         FROM threads t LEFT JOIN messages m INDEXED BY messages_by_thread \
         ON m.thread_id = t.id AND m.user_id = t.user_id \
         AND (?3 IS NULL OR m.rowid < (SELECT rowid FROM messages \
              WHERE id = ?3 AND thread_id = t.id AND user_id = t.user_id)) \
         WHERE t.id = ?1 AND t.user_id = ?2 ORDER BY m.rowid DESC LIMIT ?4",
    list_threads: "SELECT id, user_id, title, created_at, updated_at FROM threads \
         WHERE user_id = ?1 AND (?2 IS NULL OR (updated_at, rowid) < \
             (SELECT updated_at, rowid FROM threads WHERE id = ?2 AND user_id = ?1)) \
         ORDER BY updated_at DESC, rowid DESC LIMIT ?3",
    get_run: "SELECT id, user_id, thread_id, agent, status, created_at, finished_at, error_code, \
              error_message FROM runs WHERE id = ? AND user_id = ?",
    list_events: "SELECT seq, run_id, event_type, payload FROM run_events \
                  WHERE user_id = ? AND seq > ? ORDER BY seq LIMIT ?",
    log_bounds: "SELECT COALESCE((SELECT pruned_through FROM event_log_floor WHERE user_id = ?1), 0), \
                 COALESCE((SELECT MAX(seq) FROM run_events WHERE user_id = ?1), 0)",
    prune_floors: "SELECT user_id, MAX(seq) FROM run_events WHERE ts < ? GROUP BY user_id",
    unfinished_runs: "SELECT id, user_id, thread_id, agent, status, created_at, finished_at, error_code, \
                      error_message FROM runs WHERE status IN ('queued', 'running') ORDER BY rowid",
    list_run_events: "SELECT seq, run_id, event_type, payload FROM run_events \
                      WHERE user_id = ? AND run_id = ? AND seq > ? ORDER BY seq",
    run_usage: "SELECT model, COUNT(*) AS calls, SUM(input_tokens) AS input_tokens, \
                SUM(output_tokens) AS output_tokens, SUM(cost_usd) AS cost_usd FROM llm_calls \
                WHERE user_id = ? AND run_id = ? GROUP BY model ORDER BY calls DESC, model",
    usage_runs: "SELECT COUNT(DISTINCT run_id) FROM llm_calls WHERE user_id = ?",
    usage_by_model: "SELECT model, COUNT(*) AS calls, SUM(input_tokens) AS input_tokens, \
                     SUM(output_tokens) AS output_tokens, SUM(cost_usd) AS cost_usd FROM llm_calls \
                     WHERE user_id = ? GROUP BY model ORDER BY cost_usd DESC, model",
    param: |_| "?".to_owned(),
    runs_newest_first: " ORDER BY created_at DESC, rowid DESC",
};

impl_store!(SqliteStore, SQLITE);
