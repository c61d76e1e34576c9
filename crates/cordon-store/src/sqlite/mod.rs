//! `SqliteStore`: the embedded SQLite implementation of `Store`.

pub(crate) mod checkpoint;
mod indexer;
mod search;
mod writes;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cordon_core::{
    EventSink, LlmCallRecord, LogBounds, Message, MessagePage, ModelUsage, RunEvent, RunFilter,
    RunId, RunOutcome, RunRecord, Store, StoreError, StoredEvent, Thread, ThreadId, UsageTotals,
    User, UserId,
};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Row, SqlitePool};

use crate::StoreOptions;
use crate::convert::{
    backend, event_of, message_of, model_usage_of, run_of, seq_param, thread_of, to_micros, user_of,
};
use crate::queue::WriteQueue;
use crate::writer::{EventRow, WriteOp};
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
            _checkpointer: checkpointer,
        }))
    }

    async fn find_thread(
        &self,
        user_id: &UserId,
        thread_id: &ThreadId,
    ) -> Result<Option<Thread>, StoreError> {
        sqlx::query(
            "SELECT id, user_id, title, created_at, updated_at FROM threads WHERE id = ? AND user_id = ?",
        )
        .bind(thread_id.as_str())
        .bind(user_id.as_str())
        .fetch_optional(&self.reads)
        .await
        .map_err(backend)?
        .map(thread_of)
        .transpose()
    }

    /// One page of the thread's messages, oldest first; `None` when the
    /// thread is not the user's. It reads only the page: newest first
    /// through the by-thread index, then reversed.
    /// `INDEXED BY`: left to itself the planner picked the by-user index, so
    /// every history read scanned all of the user's messages and runs slowed
    /// down as users wrote more (docs/performance.md).
    /// One query: the thread row (so "not yours" and "empty" differ) joined
    /// with its messages; an empty page yields one row of NULLs.
    async fn thread_messages(
        &self,
        user_id: &UserId,
        thread_id: &ThreadId,
        page: &MessagePage,
    ) -> Result<Option<Vec<Message>>, StoreError> {
        let rows = sqlx::query(
            "SELECT m.id, m.thread_id, m.role, m.content, m.run_id, m.created_at \
             FROM threads t LEFT JOIN messages m INDEXED BY messages_by_thread \
             ON m.thread_id = t.id AND m.user_id = t.user_id \
             AND (?3 IS NULL OR m.rowid < (SELECT rowid FROM messages \
                  WHERE id = ?3 AND thread_id = t.id AND user_id = t.user_id)) \
             WHERE t.id = ?1 AND t.user_id = ?2 ORDER BY m.rowid DESC LIMIT ?4",
        )
        .bind(thread_id.as_str())
        .bind(user_id.as_str())
        .bind(page.before.as_ref().map(|id| id.as_str()))
        .bind(i64::from(page.limit.max(1)))
        .fetch_all(&self.reads)
        .await
        .map_err(backend)?;
        if rows.is_empty() {
            return Ok(None);
        }
        let mut messages: Vec<Message> = rows
            .into_iter()
            .filter(|row| {
                row.try_get::<Option<String>, _>("id")
                    .ok()
                    .flatten()
                    .is_some()
            })
            .map(message_of)
            .collect::<Result<_, _>>()?;
        messages.reverse();
        Ok(Some(messages))
    }

    async fn query_runs(
        &self,
        sql: &str,
        binds: &[&str],
        limit: Option<u32>,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let mut query = sqlx::query(sql);
        for bind in binds {
            query = query.bind(*bind);
        }
        if let Some(limit) = limit {
            query = query.bind(i64::from(limit));
        }
        query
            .fetch_all(&self.reads)
            .await
            .map_err(backend)?
            .into_iter()
            .map(run_of)
            .collect()
    }
}

const RUN_COLUMNS: &str =
    "id, user_id, thread_id, agent, status, created_at, finished_at, error_code, error_message";

#[async_trait]
impl Store for SqliteStore {
    /// Ready means reads answer and writes are taken: while they fail, a
    /// probe write is tried, so readiness comes back by itself with the disk.
    async fn ping(&self) -> Result<(), StoreError> {
        self.writes.probe_if_failing().await?;
        sqlx::query("SELECT 1")
            .execute(&self.reads)
            .await
            .map(drop)
            .map_err(backend)
    }

    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        let user = user.clone();
        self.writes
            .write(|ack| WriteOp::CreateUser(user, ack))
            .await
    }

    async fn find_user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        sqlx::query(
            "SELECT id, username, password_hash, created_at, token_generation FROM users WHERE username = ?",
        )
            .bind(username)
            .fetch_optional(&self.reads)
            .await
            .map_err(backend)?
            .map(user_of)
            .transpose()
    }

    async fn get_user(&self, user_id: &UserId) -> Result<Option<User>, StoreError> {
        sqlx::query(
            "SELECT id, username, password_hash, created_at, token_generation FROM users WHERE id = ?",
        )
            .bind(user_id.as_str())
            .fetch_optional(&self.reads)
            .await
            .map_err(backend)?
            .map(user_of)
            .transpose()
    }

    async fn revoke_tokens(&self, user_id: &UserId) -> Result<Option<u32>, StoreError> {
        let id = user_id.as_str().to_owned();
        self.writes
            .write(|ack| WriteOp::RevokeTokens(id, ack))
            .await?;
        Ok(self
            .get_user(user_id)
            .await?
            .map(|user| user.token_generation))
    }

    fn create_thread(&self, thread: &Thread) -> Result<(), StoreError> {
        self.writes.enqueue(WriteOp::CreateThread(thread.clone()))
    }

    async fn get_thread(
        &self,
        user_id: &UserId,
        thread_id: &ThreadId,
    ) -> Result<Option<Thread>, StoreError> {
        if let Some(thread) = self.find_thread(user_id, thread_id).await? {
            return Ok(Some(thread));
        }
        // Threads are queued without waiting; a miss may be one still queued.
        self.writes.own_writes_settled(user_id).await?;
        self.find_thread(user_id, thread_id).await
    }

    async fn list_threads(
        &self,
        user_id: &UserId,
        limit: u32,
        after: Option<&ThreadId>,
    ) -> Result<Vec<Thread>, StoreError> {
        self.writes.own_writes_settled(user_id).await?;
        sqlx::query(
            "SELECT id, user_id, title, created_at, updated_at FROM threads \
             WHERE user_id = ?1 AND (?2 IS NULL OR (updated_at, rowid) < \
                 (SELECT updated_at, rowid FROM threads WHERE id = ?2 AND user_id = ?1)) \
             ORDER BY updated_at DESC, rowid DESC LIMIT ?3",
        )
        .bind(user_id.as_str())
        .bind(after.map(ThreadId::as_str))
        .bind(i64::from(limit.max(1)))
        .fetch_all(&self.reads)
        .await
        .map_err(backend)?
        .into_iter()
        .map(thread_of)
        .collect()
    }

    async fn list_messages(
        &self,
        user_id: &UserId,
        thread_id: &ThreadId,
        page: &MessagePage,
    ) -> Result<Option<Vec<Message>>, StoreError> {
        if let Some(messages) = self.thread_messages(user_id, thread_id, page).await? {
            return Ok(Some(messages));
        }
        self.writes.own_writes_settled(user_id).await?;
        self.thread_messages(user_id, thread_id, page).await
    }

    async fn search_messages(
        &self,
        user_id: &UserId,
        query: &str,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        // The run's own message is queued with `begin_run`, not awaited: a
        // search from that run must find it (and what came just before).
        self.writes.own_writes_settled(user_id).await?;
        self.searches.messages(user_id, query, limit).await
    }

    fn begin_run(&self, run: &RunRecord, message: Option<&Message>) -> Result<(), StoreError> {
        self.writes
            .enqueue(WriteOp::BeginRun(run.clone(), message.cloned()))
    }

    fn start_queued_run(&self, user_id: &UserId, run_id: &RunId) -> Result<(), StoreError> {
        self.writes.enqueue(WriteOp::StartQueuedRun {
            user_id: user_id.to_string(),
            run_id: run_id.to_string(),
        })
    }

    async fn finish_run(
        &self,
        user_id: &UserId,
        run_id: &RunId,
        outcome: &RunOutcome,
    ) -> Result<(), StoreError> {
        let (user_id, run_id, outcome) = (user_id.to_string(), run_id.to_string(), outcome.clone());
        self.writes
            .write(|ack| WriteOp::FinishRun {
                user_id,
                run_id,
                outcome,
                ack,
            })
            .await
    }

    async fn get_run(
        &self,
        user_id: &UserId,
        run_id: &RunId,
    ) -> Result<Option<RunRecord>, StoreError> {
        self.writes.own_writes_settled(user_id).await?;
        sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE id = ? AND user_id = ?"
        ))
        .bind(run_id.as_str())
        .bind(user_id.as_str())
        .fetch_optional(&self.reads)
        .await
        .map_err(backend)?
        .map(run_of)
        .transpose()
    }

    fn append_event(
        &self,
        user_id: &UserId,
        event: &RunEvent,
        payload: Arc<str>,
        subscriber: Arc<dyn EventSink>,
    ) -> Result<(), StoreError> {
        self.writes.enqueue(WriteOp::Event(EventRow::new(
            user_id,
            event,
            payload,
            Some(subscriber),
        )))
    }

    async fn list_events(
        &self,
        user_id: &UserId,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        // No barrier: an event is published only after it committed, so
        // everything a client could have seen is already readable.
        sqlx::query(
            "SELECT seq, run_id, event_type, payload FROM run_events \
             WHERE user_id = ? AND seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(user_id.as_str())
        .bind(seq_param(after_seq))
        .bind(i64::from(limit))
        .fetch_all(&self.reads)
        .await
        .map_err(backend)?
        .into_iter()
        .map(event_of)
        .collect()
    }

    async fn log_bounds(&self, user_id: &UserId) -> Result<LogBounds, StoreError> {
        let (floor, head): (i64, i64) = sqlx::query_as(
            "SELECT COALESCE((SELECT pruned_through FROM event_log_floor WHERE user_id = ?1), 0), \
             COALESCE((SELECT MAX(seq) FROM run_events WHERE user_id = ?1), 0)",
        )
        .bind(user_id.as_str())
        .fetch_one(&self.reads)
        .await
        .map_err(backend)?;
        let floor = u64::try_from(floor).unwrap_or(0);
        Ok(LogBounds {
            floor,
            head: u64::try_from(head).unwrap_or(0).max(floor),
        })
    }

    async fn prune_events(&self, before: time::OffsetDateTime) -> Result<u64, StoreError> {
        // The scan runs on a reader (WAL lets it overlap the writer); the
        // writer then deletes by primary key.
        let floors: Vec<(String, i64)> = sqlx::query_as(
            "SELECT user_id, MAX(seq) FROM run_events WHERE ts < ? GROUP BY user_id",
        )
        .bind(to_micros(before))
        .fetch_all(&self.reads)
        .await
        .map_err(backend)?;
        if floors.is_empty() {
            return Ok(0);
        }
        self.writes.prune(floors).await
    }

    async fn list_runs(
        &self,
        user_id: &UserId,
        filter: &RunFilter,
    ) -> Result<Vec<RunRecord>, StoreError> {
        self.writes.own_writes_settled(user_id).await?;
        let mut sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE user_id = ?");
        let mut binds = vec![user_id.as_str()];
        if let Some(status) = filter.status {
            sql.push_str(" AND status = ?");
            binds.push(status.as_str());
        }
        if let Some(thread_id) = &filter.thread_id {
            sql.push_str(" AND thread_id = ?");
            binds.push(thread_id.as_str());
        }
        sql.push_str(" ORDER BY created_at DESC, rowid DESC LIMIT ?");
        self.query_runs(&sql, &binds, Some(filter.limit)).await
    }

    async fn unfinished_runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        self.writes.barrier().await?;
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE status IN ('queued', 'running') ORDER BY rowid"
        );
        self.query_runs(&sql, &[], None).await
    }

    async fn end_abandoned_run(
        &self,
        user_id: &UserId,
        event: &RunEvent,
        payload: Arc<str>,
        outcome: &RunOutcome,
    ) -> Result<(), StoreError> {
        let event = EventRow::new(user_id, event, payload, None);
        let outcome = outcome.clone();
        self.writes
            .write(|ack| WriteOp::EndAbandonedRun {
                event,
                outcome,
                ack,
            })
            .await
    }

    async fn list_run_events(
        &self,
        user_id: &UserId,
        run_id: &RunId,
        after_seq: u64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.writes.own_writes_settled(user_id).await?;
        let rows = sqlx::query(
            "SELECT seq, run_id, event_type, payload FROM run_events \
             WHERE run_id = ? AND user_id = ? AND seq > ? ORDER BY seq",
        )
        .bind(run_id.as_str())
        .bind(user_id.as_str())
        .bind(seq_param(after_seq))
        .fetch_all(&self.reads)
        .await
        .map_err(backend)?;
        rows.into_iter().map(event_of).collect()
    }

    fn record_llm_call(&self, user_id: &UserId, call: &LlmCallRecord) {
        let op = WriteOp::LlmCall {
            user_id: user_id.to_string(),
            call: call.clone(),
        };
        if self.writes.enqueue(op).is_err() {
            tracing::error!("the store is closed; a model call's usage was not stored");
        }
    }

    async fn run_usage(
        &self,
        user_id: &UserId,
        run_id: &RunId,
    ) -> Result<Vec<ModelUsage>, StoreError> {
        self.writes.own_writes_settled(user_id).await?;
        sqlx::query(
            "SELECT model, COUNT(*) AS calls, SUM(input_tokens) AS input_tokens, \
             SUM(output_tokens) AS output_tokens, SUM(cost_usd) AS cost_usd \
             FROM llm_calls WHERE user_id = ? AND run_id = ? GROUP BY model ORDER BY calls DESC, model",
        )
        .bind(user_id.as_str())
        .bind(run_id.as_str())
        .fetch_all(&self.reads)
        .await
        .map_err(backend)?
        .into_iter()
        .map(model_usage_of)
        .collect()
    }

    async fn usage_totals(&self, user_id: &UserId) -> Result<UsageTotals, StoreError> {
        self.writes.own_writes_settled(user_id).await?;
        let runs: i64 =
            sqlx::query_scalar("SELECT COUNT(DISTINCT run_id) FROM llm_calls WHERE user_id = ?")
                .bind(user_id.as_str())
                .fetch_one(&self.reads)
                .await
                .map_err(backend)?;
        let by_model = sqlx::query(
            "SELECT model, COUNT(*) AS calls, SUM(input_tokens) AS input_tokens, \
             SUM(output_tokens) AS output_tokens, SUM(cost_usd) AS cost_usd \
             FROM llm_calls WHERE user_id = ? GROUP BY model ORDER BY cost_usd DESC, model",
        )
        .bind(user_id.as_str())
        .fetch_all(&self.reads)
        .await
        .map_err(backend)?
        .into_iter()
        .map(model_usage_of)
        .collect::<Result<Vec<_>, _>>()?;
        Ok(UsageTotals::summed(
            u64::try_from(runs).unwrap_or(0),
            by_model,
        ))
    }

    async fn sync(&self) -> Result<(), StoreError> {
        self.writes.sync().await
    }

    fn admit_writes(&self) -> Result<(), StoreError> {
        self.writes.admit_writes()
    }

    async fn writable(&self) {
        self.writes.writable().await;
    }

    fn failure_epoch(&self) -> u64 {
        self.writes.failure_epoch()
    }

    async fn close(&self) {
        let _ = self.writes.barrier().await;
        self.reads.close().await;
        self.searches.close().await;
    }
}
