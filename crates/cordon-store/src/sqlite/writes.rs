//! The SQLite side of the writer: its own rusqlite connection, every write of a batch applied in one transaction with cached prepared statements.
//!
//! Every statement of a batch runs on the writer's thread: no per-statement
//! hop to another thread, which was the writer's cost through sqlx.

use cordon_core::{LlmCallRecord, Message, RunOutcome, RunRecord, StoreError, Thread, User};
use rusqlite::{Connection, ErrorCode, params};

use crate::convert::{rusqlite_backend as backend, to_micros};
use crate::sqlite::checkpoint::WalBound;
use crate::writer::{EventRow, PauseRow, WriteBackend, WriteOp};

/// The writer's connection and the bound on its write-ahead log.
pub struct SqliteWrites {
    conn: Connection,
    wal: WalBound,
}

impl SqliteWrites {
    pub fn new(conn: Connection, wal: WalBound) -> Self {
        Self { conn, wal }
    }
}

impl WriteBackend for SqliteWrites {
    /// A write refused on its own (a taken username) is answered alone; any
    /// other error aborts the whole batch: after a full disk or an I/O error
    /// SQLite may have rolled back already, and later statements must not
    /// run outside the transaction.
    fn commit(&mut self, batch: &[WriteOp]) -> Result<Vec<Result<u64, StoreError>>, String> {
        let mut results = Vec::with_capacity(batch.len());
        in_transaction(&mut self.conn, |tx| {
            for op in batch {
                results.push(apply(tx, op)?);
            }
            Ok(())
        })
        .map_err(|error| error.to_string())?;
        Ok(results)
    }

    fn probe(&mut self) -> Result<(), StoreError> {
        room_on_disk(&self.conn)?;
        in_transaction(&mut self.conn, |tx| probe_write(tx)).map_err(backend)
    }

    fn after_batch(&mut self) {
        self.wal.after_batch(&self.conn);
    }
}

/// Opens the writer's connection to the (already migrated) database.
pub fn open(path: &std::path::Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(backend)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(backend)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(backend)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(backend)?;
    // With `synchronous=NORMAL` a commit in WAL mode does not fsync; only a
    // checkpoint does. The checkpointer thread runs them, so no commit (and
    // so no event, which is sent only once committed) waits for the disk.
    conn.pragma_update(None, "wal_autocheckpoint", 0)
        .map_err(backend)?;
    // The per-user indexes it inserts into outgrow SQLite's default 2 MiB cache
    // within minutes under load; 32 MiB keeps their hot pages resident.
    conn.pragma_update(None, "cache_size", -32 * 1024)
        .map_err(backend)?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

fn in_transaction(
    conn: &mut Connection,
    body: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<()>,
) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    body(&tx)?;
    tx.commit()
}

/// Applies one write inside the batch's transaction. The outer `Err` aborts
/// the batch; the inner one answers this write alone (rows changed or why not).
fn apply(conn: &Connection, op: &WriteOp) -> rusqlite::Result<Result<u64, StoreError>> {
    let applied = match op {
        WriteOp::CreateUser(user, _) => return insert_user(conn, user).map(|r| r.map(|()| 1)),
        WriteOp::RevokeTokens(user_id, _) => revoke_tokens(conn, user_id),
        WriteOp::PutSecret {
            user_id,
            name,
            sealed,
            ..
        } => put_secret(conn, user_id, name, sealed),
        WriteOp::DeleteSecret { user_id, name, .. } => conn
            .prepare_cached("DELETE FROM user_secrets WHERE user_id = ?1 AND name = ?2")?
            .execute(params![user_id, name])
            .map(drop),
        WriteOp::SetAdmin { user_id, admin, .. } => conn
            .prepare_cached("UPDATE users SET admin = ?2 WHERE id = ?1")?
            .execute(params![user_id, i64::from(*admin)])
            .map(drop),
        WriteOp::PutBudget {
            user_id, limits, ..
        } => put_budget(conn, user_id, limits.as_ref()),
        WriteOp::PutPause { user_id, pause, .. } => put_pause(conn, user_id, pause),
        WriteOp::TakePause {
            user_id, run_id, ..
        } => take_pause(conn, user_id, run_id),
        WriteOp::CreateThread(thread) => insert_thread(conn, thread),
        WriteOp::BeginRun(run, message) => begin_run(conn, run, message.as_ref()),
        WriteOp::StartQueuedRun { user_id, run_id } => start_queued_run(conn, user_id, run_id),
        WriteOp::Event(row) => insert_event(conn, row),
        WriteOp::EndRun { event, outcome, .. } => insert_event(conn, event)
            .and_then(|()| finish_run(conn, &event.user_id, &event.run_id, outcome)),
        WriteOp::LlmCall { user_id, call } => insert_llm_call(conn, user_id, call),
        WriteOp::PruneEvents(floors, _) => return refused_alone(prune_events(conn, floors)),
        WriteOp::Barrier(_) => Ok(()),
        WriteOp::Probe(_) => probe_write(conn),
    };
    refused_alone(applied.map(|()| 1))
}

/// A constraint violation refuses one write (it is logged by its caller);
/// any other error is the batch's.
fn refused_alone(result: rusqlite::Result<u64>) -> rusqlite::Result<Result<u64, StoreError>> {
    match result {
        Ok(rows) => Ok(Ok(rows)),
        Err(rusqlite::Error::SqliteFailure(failure, message))
            if failure.code == ErrorCode::ConstraintViolation =>
        {
            let error = rusqlite::Error::SqliteFailure(failure, message);
            Ok(Err(backend(error)))
        }
        Err(error) => Err(error),
    }
}

/// Free space the database's filesystem must have before writes are taken
/// again. SQLite can often still write into pages it owns on a full disk,
/// so a probe write alone would succeed, let the next real write fail, and
/// readiness would flap.
const MIN_FREE_BYTES: u64 = 4 * 1024 * 1024;

/// `Err` while the database's filesystem has less than `MIN_FREE_BYTES` free.
fn room_on_disk(conn: &Connection) -> Result<(), StoreError> {
    let Some(dir) = conn
        .path()
        .map(std::path::Path::new)
        .and_then(std::path::Path::parent)
    else {
        return Ok(());
    };
    let stats = rustix::fs::statvfs(dir)
        .map_err(|error| StoreError::Backend(format!("could not read free space: {error}")))?;
    let free = stats.f_bavail.saturating_mul(stats.f_frsize);
    if free < MIN_FREE_BYTES {
        return Err(StoreError::Backend(format!(
            "the disk has {free} bytes free; writes resume past {MIN_FREE_BYTES}"
        )));
    }
    Ok(())
}

/// Rewrites one 64 KiB row: it commits only when the log file can take
/// that much again.
fn probe_write(conn: &Connection) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO write_probe (id, at, pad) VALUES (1, ?1, zeroblob(65536))",
    )?
    .execute(params![to_micros(cordon_core::now())])
    .map(drop)
}

fn start_queued_run(conn: &Connection, user_id: &str, run_id: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE runs SET status = 'running' WHERE id = ?1 AND user_id = ?2 AND status = 'queued'",
    )?
    .execute(params![run_id, user_id])
    .map(drop)
}

fn put_pause(conn: &Connection, user_id: &str, pause: &PauseRow) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO run_pauses (user_id, run_id, thread_id, state, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (user_id, run_id) DO UPDATE SET \
         state = excluded.state, expires_at = excluded.expires_at",
    )?
    .execute(params![
        user_id,
        pause.run_id,
        pause.thread_id,
        pause.state,
        pause.expires_at
    ])?;
    conn.prepare_cached(
        "UPDATE runs SET status = 'waiting_approval' WHERE id = ?1 AND user_id = ?2 \
         AND status IN ('running', 'waiting_approval')",
    )?
    .execute(params![pause.run_id, user_id])
    .map(drop)
}

fn take_pause(conn: &Connection, user_id: &str, run_id: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM run_pauses WHERE user_id = ?1 AND run_id = ?2")?
        .execute(params![user_id, run_id])?;
    conn.prepare_cached(
        "UPDATE runs SET status = 'running' WHERE id = ?1 AND user_id = ?2 \
         AND status = 'waiting_approval'",
    )?
    .execute(params![run_id, user_id])
    .map(drop)
}

/// Deletes a prefix of each listed user's log and records how far it went,
/// so `seq` never restarts and an expired cursor is recognised.
fn prune_events(conn: &Connection, floors: &[(String, i64)]) -> rusqlite::Result<u64> {
    let mut deleted = 0;
    for (user_id, floor) in floors {
        conn.prepare_cached(
            "INSERT INTO event_log_floor (user_id, pruned_through) VALUES (?1, ?2) \
             ON CONFLICT (user_id) DO UPDATE SET pruned_through = MAX(pruned_through, excluded.pruned_through)",
        )?
        .execute(params![user_id, floor])?;
        deleted += conn
            .prepare_cached("DELETE FROM run_events WHERE user_id = ?1 AND seq <= ?2")?
            .execute(params![user_id, floor])?;
    }
    Ok(deleted as u64)
}

fn revoke_tokens(conn: &Connection, user_id: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE users SET token_generation = token_generation + 1 WHERE id = ?1")?
        .execute(params![user_id])
        .map(drop)
}

fn put_budget(
    conn: &Connection,
    user_id: &str,
    limits: Option<&cordon_core::BudgetLimits>,
) -> rusqlite::Result<()> {
    let Some(limits) = limits else {
        return conn
            .prepare_cached("DELETE FROM user_budgets WHERE user_id = ?1")?
            .execute(params![user_id])
            .map(drop);
    };
    let tokens = |limit: Option<u64>| limit.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
    conn.prepare_cached(
        "INSERT INTO user_budgets (user_id, daily_usd, monthly_usd, daily_tokens, monthly_tokens, \
         updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (user_id) DO UPDATE SET \
         daily_usd = excluded.daily_usd, monthly_usd = excluded.monthly_usd, \
         daily_tokens = excluded.daily_tokens, monthly_tokens = excluded.monthly_tokens, \
         updated_at = excluded.updated_at",
    )?
    .execute(params![
        user_id,
        limits.daily_usd,
        limits.monthly_usd,
        tokens(limits.daily_tokens),
        tokens(limits.monthly_tokens),
        to_micros(cordon_core::now())
    ])
    .map(drop)
}

fn put_secret(conn: &Connection, user_id: &str, name: &str, sealed: &[u8]) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO user_secrets (user_id, name, sealed, updated_at) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (user_id, name) DO UPDATE SET sealed = excluded.sealed, \
         updated_at = excluded.updated_at",
    )?
    .execute(params![
        user_id,
        name,
        sealed,
        to_micros(cordon_core::now())
    ])
    .map(drop)
}

fn insert_user(conn: &Connection, user: &User) -> rusqlite::Result<Result<(), StoreError>> {
    let result = conn
        .prepare_cached(
            "INSERT INTO users (id, username, password_hash, created_at, token_generation) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .and_then(|mut insert| {
            insert.execute(params![
                user.id.as_str(),
                user.username,
                user.password_hash,
                to_micros(user.created_at),
                user.token_generation
            ])
        });
    match result {
        Ok(_) => Ok(Ok(())),
        Err(rusqlite::Error::SqliteFailure(failure, _))
            if failure.code == ErrorCode::ConstraintViolation =>
        {
            Ok(Err(StoreError::UsernameTaken))
        }
        Err(error) => Err(error),
    }
}

fn insert_thread(conn: &Connection, thread: &Thread) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO threads (id, user_id, title, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        thread.id.as_str(),
        thread.user_id.as_str(),
        thread.title,
        to_micros(thread.created_at),
        to_micros(thread.updated_at)
    ])
    .map(drop)
}

fn begin_run(
    conn: &Connection,
    run: &RunRecord,
    message: Option<&Message>,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO runs (id, user_id, thread_id, agent, status, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        run.id.as_str(),
        run.user_id.as_str(),
        run.thread_id.as_str(),
        run.agent,
        run.status.as_str(),
        to_micros(run.created_at)
    ])?;
    if let Some(message) = message {
        insert_message(conn, run.user_id.as_str(), message)?;
    }
    Ok(())
}

fn finish_run(
    conn: &Connection,
    user_id: &str,
    run_id: &str,
    outcome: &RunOutcome,
) -> rusqlite::Result<()> {
    // Only the first end counts: a terminal status never changes again.
    conn.prepare_cached(
        "UPDATE runs SET status = ?1, finished_at = ?2, error_code = ?3, error_message = ?4 \
         WHERE id = ?5 AND user_id = ?6 AND status IN ('queued', 'running')",
    )?
    .execute(params![
        outcome.status.as_str(),
        to_micros(cordon_core::now()),
        outcome.error_code,
        outcome.error_message,
        run_id,
        user_id
    ])?;
    if let Some(answer) = &outcome.answer {
        insert_message(conn, user_id, answer)?;
        // A thread's `updated_at` is its last answer: one update per run.
        conn.prepare_cached("UPDATE threads SET updated_at = ?1 WHERE id = ?2 AND user_id = ?3")?
            .execute(params![
                to_micros(answer.created_at),
                answer.thread_id.as_str(),
                user_id
            ])?;
    }
    Ok(())
}

fn insert_message(conn: &Connection, user_id: &str, message: &Message) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO messages (id, user_id, thread_id, role, content, run_id, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        message.id.as_str(),
        user_id,
        message.thread_id.as_str(),
        message.role.as_str(),
        message.content,
        message.run_id.as_ref().map(|id| id.as_str()),
        to_micros(message.created_at)
    ])
    .map(drop)
}

fn insert_event(conn: &Connection, row: &EventRow) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO run_events (user_id, seq, run_id, event_type, ts, payload) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![row.user_id, row.seq, row.run_id, row.event_type, row.ts, &*row.payload])
    .map(drop)
}

fn insert_llm_call(conn: &Connection, user_id: &str, call: &LlmCallRecord) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO llm_calls (user_id, run_id, model, input_tokens, output_tokens, cost_usd, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        user_id,
        call.run_id.as_str(),
        call.model,
        i64::try_from(call.input_tokens).unwrap_or(i64::MAX),
        i64::try_from(call.output_tokens).unwrap_or(i64::MAX),
        call.cost_usd,
        to_micros(call.at)
    ])
    .map(drop)
}
