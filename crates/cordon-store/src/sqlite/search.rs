//! The history search: an FTS5 trigram query on a pool of its own, under a time budget per query.
//!
//! A tenant's search can be made expensive on purpose (a long near-miss
//! phrase over long messages costs the size of its history), so each query
//! runs at most its CPU budget ([`DEFAULT_SEARCH_BUDGET`] unless configured;
//! SQLite's progress handler interrupts it),
//! on connections no other read waits for, and (on Linux) on threads of the
//! idle scheduling class: a search only gets CPU no other thread wants, so it
//! never holds a core another tenant's request is waiting for.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cordon_core::background::{self, Background};
use cordon_core::{Message, StoreError, UserId};
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{Sqlite, SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{Executor, SqlitePool};

use crate::convert::{backend, message_of};
use crate::sqlite::indexer::{Indexer, SEARCH_FILE};

/// CPU time one search may spend before it is interrupted, unless
/// configured otherwise. CPU, not wall time: in the idle class a search on a
/// busy machine waits for CPU, and that wait must not count against it.
pub const DEFAULT_SEARCH_BUDGET: Duration = Duration::from_millis(50);
/// Longest one search may hold a connection, waiting for CPU included.
const SEARCH_WALL_LIMIT: Duration = Duration::from_secs(2);
/// Searches that may run at once, over all tenants.
const SEARCH_CONNECTIONS: u32 = 2;
/// SQLite virtual-machine steps between two looks at the clock.
const STEPS_PER_CHECK: i32 = 1_000;
/// SQLite's result code for a statement its progress handler stopped.
const SQLITE_INTERRUPT: &str = "9";
/// Longest a search waits for the indexer to reach the newest message (it
/// then searches what is indexed).
const INDEX_WAIT: Duration = Duration::from_millis(500);

/// The search pool (connections to the database with the index attached) and the indexer.
#[derive(Debug, Clone)]
pub struct Searches {
    pool: SqlitePool,
    indexer: Arc<Indexer>,
    budget: Duration,
}

impl Searches {
    /// Starts the indexer of `data_dir/search.db` and the pool that reads it.
    pub async fn open(
        connect: SqliteConnectOptions,
        database: &Path,
        data_dir: &Path,
        budget: Duration,
    ) -> Result<Self, StoreError> {
        let indexer = Arc::new(Indexer::start(database, data_dir)?);
        let attach = format!(
            "ATTACH DATABASE '{}' AS search",
            data_dir
                .join(SEARCH_FILE)
                .display()
                .to_string()
                .replace('\'', "''")
        );
        let pool = SqlitePoolOptions::new()
            .max_connections(SEARCH_CONNECTIONS)
            .test_before_acquire(false)
            .after_connect(move |conn, _| {
                let attach = attach.clone();
                Box::pin(async move { conn.execute(attach.as_str()).await.map(|_| ()) })
            })
            .connect_with(connect)
            .await
            .map_err(backend)?;
        Ok(Self {
            pool,
            indexer,
            budget,
        })
    }

    /// `user_id`'s own user messages containing `query`, best first.
    pub async fn messages(
        &self,
        user_id: &UserId,
        query: &str,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        // Trigrams match substrings of 3 characters or more: the store
        // answers a shorter query with nothing before it gets here.
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        self.wait_for_index(&mut conn).await?;
        let out_of_time = limit_cpu(&mut conn, self.budget).await?;
        let rows = sqlx::query(
            "SELECT m.id, m.thread_id, m.role, m.content, m.run_id, m.created_at \
             FROM search.messages_fts f JOIN messages m ON m.rowid = f.rowid \
             WHERE messages_fts MATCH ?1 AND m.user_id = ?2 AND m.role = 'user' \
             ORDER BY f.rank LIMIT ?3",
        )
        .bind(search_expression(user_id, query))
        .bind(user_id.as_str())
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await;
        lift_limit(&mut conn).await?;
        match rows {
            Ok(rows) => rows.into_iter().map(message_of).collect(),
            Err(error) if interrupted(&error) => Err(StoreError::OverBudget {
                // Which limit stopped it: the CPU budget, or the wall limit
                // (a search that waited that long for CPU).
                budget: if out_of_time.load(Ordering::Relaxed) {
                    SEARCH_WALL_LIMIT
                } else {
                    self.budget
                },
            }),
            Err(error) => Err(backend(error)),
        }
    }

    /// Lets the indexer reach the newest committed message first, so a
    /// search finds what was said just before it.
    async fn wait_for_index(&self, conn: &mut PoolConnection<Sqlite>) -> Result<(), StoreError> {
        let newest: i64 = sqlx::query_scalar("SELECT coalesce(max(rowid), 0) FROM messages")
            .fetch_one(&mut **conn)
            .await
            .map_err(backend)?;
        let progress = &self.indexer.progress;
        if progress.upto() < newest {
            self.indexer.wake();
            if !progress.reached(newest, INDEX_WAIT).await {
                tracing::debug!(
                    newest,
                    upto = progress.upto(),
                    "searching an index that lags"
                );
            }
        }
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Interrupts the connection's next statements once they have used
/// `budget` of CPU or [`SEARCH_WALL_LIMIT`] of time, until [`lift_limit`];
/// the flag tells whether it was the wall limit.
async fn limit_cpu(
    conn: &mut PoolConnection<Sqlite>,
    budget: Duration,
) -> Result<Arc<AtomicBool>, StoreError> {
    let mut handle = conn.lock_handle().await.map_err(backend)?;
    let wall_deadline = Instant::now() + SEARCH_WALL_LIMIT;
    let out_of_time = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&out_of_time);
    // The handler runs on SQLite's worker thread: its CPU clock is the search's.
    let mut started: Option<Duration> = None;
    handle.set_progress_handler(STEPS_PER_CHECK, move || {
        lower_priority_of_this_thread();
        let used = thread_cpu_time();
        let started = *started.get_or_insert(used);
        if Instant::now() >= wall_deadline {
            flag.store(true, Ordering::Relaxed);
            return false;
        }
        used.saturating_sub(started) < budget
    });
    Ok(out_of_time)
}

async fn lift_limit(conn: &mut PoolConnection<Sqlite>) -> Result<(), StoreError> {
    conn.lock_handle()
        .await
        .map_err(backend)?
        .remove_progress_handler();
    Ok(())
}

fn thread_cpu_time() -> Duration {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        now.tv_sec.unsigned_abs(),
        now.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

/// Moves the calling thread to the idle scheduling class, once: a search
/// connection's SQLite worker thread, from the progress handler, which SQLite
/// runs there (a search that never reaches it was cheap).
///
/// Measured with `cordon bench --abuse` on 2 cores: with the search threads at
/// nice 19 another tenant's `GET /api/threads` p99 still rose from 1.0 to 4 ms
/// while a noisy tenant searched (a woken thread waits out the nice thread's
/// slice); under SCHED_IDLE it stayed within 10 %.
fn lower_priority_of_this_thread() {
    background::enter(Background::Idle);
}

fn interrupted(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|error| error.code())
        .is_some_and(|code| code == SQLITE_INTERRUPT)
}

/// The FTS5 query: the user's rows, containing `query` as a phrase (quotes
/// doubled, so any text is a literal).
fn search_expression(user_id: &UserId, query: &str) -> String {
    let phrase = |text: &str| format!("\"{}\"", text.replace('"', "\"\""));
    format!(
        "user_key : {} AND content : {}",
        phrase(user_id.as_str()),
        phrase(query)
    )
}
