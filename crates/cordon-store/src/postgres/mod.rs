//! `PgStore`: the PostgreSQL implementation of `Store`, selected by `--database-url postgres://…`.
//!
//! The same shape as SQLite's: reads through a connection pool, every write
//! through the one writer thread ([`crate::writer`], with this module's
//! [`writes`] backend) that group-commits whatever queued up meanwhile, and
//! history searches on a pool of their own under a time budget
//! (`statement_timeout`), so one tenant's searches never hold the
//! connections other tenants read through.

mod bulk;
mod writes;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cordon_core::{
    EventSink, LlmCallRecord, LogBounds, Message, MessagePage, ModelUsage, RunEvent, RunFilter,
    RunId, RunOutcome, RunRecord, Store, StoreError, StoredEvent, Thread, ThreadId, UsageTotals,
    User, UserId,
};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Row};

use crate::StoreOptions;
use crate::convert::{
    backend, event_of, message_of, model_usage_of, run_of, seq_param, thread_of, to_micros, user_of,
};
use crate::queue::WriteQueue;
use crate::writer::{EventRow, WriteOp};
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

const RUN_COLUMNS: &str =
    "id, user_id, thread_id, agent, status, created_at, finished_at, error_code, error_message";

pub struct PgStore {
    reads: PgPool,
    searches: PgPool,
    search_budget: Duration,
    writes: WriteQueue,
    /// Holds `INSTANCE_LOCK` for the store's life. Until instances
    /// coordinate `seq` and fan-out through the database (issue 14), a second
    /// one would hand out the same `seq` numbers: it is refused at start-up.
    _instance: std::sync::Mutex<PgConnection>,
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
        let instance = hold_instance_lock(&connect).await?;
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
            _instance: std::sync::Mutex::new(instance),
        }))
    }

    async fn find_thread(
        &self,
        user_id: &UserId,
        thread_id: &ThreadId,
    ) -> Result<Option<Thread>, StoreError> {
        sqlx::query(
            "SELECT id, user_id, title, created_at, updated_at FROM threads WHERE id = $1 AND user_id = $2",
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
    /// thread is not the user's. One query: the thread row (so "not yours"
    /// and "empty" differ) joined with the page, newest first, then reversed.
    async fn thread_messages(
        &self,
        user_id: &UserId,
        thread_id: &ThreadId,
        page: &MessagePage,
    ) -> Result<Option<Vec<Message>>, StoreError> {
        let rows = sqlx::query(
            "SELECT m.id, m.thread_id, m.role, m.content, m.run_id, m.created_at \
             FROM threads t LEFT JOIN LATERAL ( \
                 SELECT * FROM messages m WHERE m.thread_id = t.id AND m.user_id = t.user_id \
                 AND ($3::text IS NULL OR m.position < (SELECT position FROM messages \
                      WHERE id = $3 AND thread_id = t.id AND user_id = t.user_id)) \
                 ORDER BY m.position DESC LIMIT $4) m ON true \
             WHERE t.id = $1 AND t.user_id = $2",
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

    async fn runs_where(
        &self,
        condition: &str,
        binds: &[&str],
        limit: Option<u32>,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let limit_clause = limit.map_or(String::new(), |_| format!(" LIMIT ${}", binds.len() + 1));
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE {condition}{limit_clause}");
        let mut query = sqlx::query(&sql);
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

    async fn usage_by_model(
        &self,
        user_id: &UserId,
        run_id: Option<&RunId>,
        order: &str,
    ) -> Result<Vec<ModelUsage>, StoreError> {
        sqlx::query(&format!(
            "SELECT model, COUNT(*) AS calls, SUM(input_tokens)::BIGINT AS input_tokens, \
             SUM(output_tokens)::BIGINT AS output_tokens, SUM(cost_usd) AS cost_usd \
             FROM llm_calls WHERE user_id = $1 AND ($2::text IS NULL OR run_id = $2) \
             GROUP BY model ORDER BY {order}, model"
        ))
        .bind(user_id.as_str())
        .bind(run_id.map(RunId::as_str))
        .fetch_all(&self.reads)
        .await
        .map_err(backend)?
        .into_iter()
        .map(model_usage_of)
        .collect()
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
            "another cordon instance is serving this database; one instance per database for now"
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

#[async_trait]
impl Store for PgStore {
    /// Ready means reads answer and writes are taken: while they fail, a
    /// probe write is tried, so readiness comes back with the database.
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
            "SELECT id, username, password_hash, created_at, token_generation FROM users \
             WHERE lower(username) = lower($1)",
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
            "SELECT id, username, password_hash, created_at, token_generation FROM users WHERE id = $1",
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
             WHERE user_id = $1 AND ($2::text IS NULL OR (updated_at, position) < \
                 (SELECT updated_at, position FROM threads WHERE id = $2 AND user_id = $1)) \
             ORDER BY updated_at DESC, position DESC LIMIT $3",
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
        // As on SQLite, whose trigram index cannot match shorter text.
        if query.chars().count() < 3 {
            return Ok(Vec::new());
        }
        // The run's own message is queued with `begin_run`, not awaited.
        self.writes.own_writes_settled(user_id).await?;
        match self.search(user_id, query, limit).await {
            Ok(messages) => Ok(messages),
            Err(error) if over_budget(&error) => Err(StoreError::OverBudget {
                budget: self.search_budget,
            }),
            Err(error) => Err(backend(error)),
        }
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
        let mut runs = self
            .runs_where(
                "id = $1 AND user_id = $2",
                &[run_id.as_str(), user_id.as_str()],
                None,
            )
            .await?;
        Ok(runs.pop())
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
        // No wait: an event is published only after it committed.
        sqlx::query(
            "SELECT seq, run_id, event_type, payload FROM run_events \
             WHERE user_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
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
            "SELECT COALESCE((SELECT pruned_through FROM event_log_floor WHERE user_id = $1), 0), \
             COALESCE((SELECT MAX(seq) FROM run_events WHERE user_id = $1), 0)",
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
        let floors: Vec<(String, i64)> = sqlx::query_as(
            "SELECT user_id, MAX(seq) FROM run_events WHERE ts < $1 GROUP BY user_id",
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
        let mut condition = String::from("user_id = $1");
        let mut binds = vec![user_id.as_str()];
        if let Some(status) = filter.status {
            binds.push(status.as_str());
            condition.push_str(&format!(" AND status = ${}", binds.len()));
        }
        if let Some(thread_id) = &filter.thread_id {
            binds.push(thread_id.as_str());
            condition.push_str(&format!(" AND thread_id = ${}", binds.len()));
        }
        condition.push_str(" ORDER BY created_at DESC, position DESC");
        self.runs_where(&condition, &binds, Some(filter.limit))
            .await
    }

    async fn unfinished_runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        self.writes.barrier().await?;
        self.runs_where(
            "status IN ('queued', 'running') ORDER BY position",
            &[],
            None,
        )
        .await
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
        sqlx::query(
            "SELECT seq, run_id, event_type, payload FROM run_events \
             WHERE run_id = $1 AND user_id = $2 AND seq > $3 ORDER BY seq",
        )
        .bind(run_id.as_str())
        .bind(user_id.as_str())
        .bind(seq_param(after_seq))
        .fetch_all(&self.reads)
        .await
        .map_err(backend)?
        .into_iter()
        .map(event_of)
        .collect()
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
        self.usage_by_model(user_id, Some(run_id), "calls DESC")
            .await
    }

    async fn usage_totals(&self, user_id: &UserId) -> Result<UsageTotals, StoreError> {
        self.writes.own_writes_settled(user_id).await?;
        let runs: i64 =
            sqlx::query_scalar("SELECT COUNT(DISTINCT run_id) FROM llm_calls WHERE user_id = $1")
                .bind(user_id.as_str())
                .fetch_one(&self.reads)
                .await
                .map_err(backend)?;
        let by_model = self.usage_by_model(user_id, None, "cost_usd DESC").await?;
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
