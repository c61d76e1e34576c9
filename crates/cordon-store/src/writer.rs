//! The single writer: a dedicated thread that applies queued writes in group-committed transactions, in order.
//!
//! It owns its own SQLite connection (rusqlite) and runs every statement of a
//! batch on its own thread with cached prepared statements: no per-statement
//! hop to another thread, which was the writer's cost through sqlx.

use std::sync::Arc;

use cordon_core::{LlmCallRecord, Message, RunOutcome, RunRecord, StoreError, Thread, User};
use rusqlite::{Connection, ErrorCode, params};
use tokio::sync::{mpsc, oneshot};

use crate::convert::to_micros;

/// Most writes folded into one transaction.
const MAX_BATCH: usize = 1024;

pub type Ack = oneshot::Sender<Result<(), StoreError>>;

/// One queued write. Variants with an `ack` are awaited by their caller.
pub enum WriteOp {
    CreateUser(User, Ack),
    /// Bumps the user's token generation (by id).
    RevokeTokens(String, Ack),
    /// Not acknowledged: reads of threads wait on the queue instead.
    CreateThread(Thread),
    /// Not acknowledged: reads of runs wait on the queue instead.
    BeginRun(RunRecord, Option<Message>),
    FinishRun {
        user_id: String,
        run_id: String,
        outcome: RunOutcome,
        ack: Ack,
    },
    Event(EventRow),
    /// One model call's usage; not acknowledged, like events.
    LlmCall {
        user_id: String,
        call: LlmCallRecord,
    },
    /// Acknowledged once everything queued before it is committed.
    Barrier(Ack),
}

pub struct EventRow {
    pub user_id: String,
    pub seq: i64,
    pub run_id: String,
    pub event_type: &'static str,
    pub ts: i64,
    pub payload: Arc<str>,
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
    // The per-user indexes it inserts into outgrow SQLite's default 2 MiB cache
    // within minutes under load; 32 MiB keeps their hot pages resident.
    conn.pragma_update(None, "cache_size", -32 * 1024)
        .map_err(backend)?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

/// Drains the queue until every sender is gone, committing one batch at a
/// time; runs on its own thread (it blocks).
pub fn run(mut conn: Connection, mut queue: mpsc::UnboundedReceiver<WriteOp>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = queue.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        commit_batch(&mut conn, &mut batch);
    }
}

fn commit_batch(conn: &mut Connection, batch: &mut Vec<WriteOp>) {
    let mut results = Vec::with_capacity(batch.len());
    let committed = (|| {
        let tx = conn.transaction()?;
        for op in batch.iter() {
            results.push(apply(&tx, op));
        }
        tx.commit()
    })();
    if let Err(error) = &committed {
        tracing::error!(%error, writes = batch.len(), "a write batch failed to commit");
    }
    for (op, result) in batch
        .drain(..)
        .zip(results.into_iter().chain(std::iter::repeat_with(|| Ok(()))))
    {
        let result = match &committed {
            Ok(()) => result,
            Err(error) => Err(StoreError::Backend(error.to_string())),
        };
        acknowledge(op, result);
    }
}

fn backend(error: rusqlite::Error) -> StoreError {
    StoreError::Backend(error.to_string())
}

fn acknowledge(op: WriteOp, result: Result<(), StoreError>) {
    let ack = match op {
        WriteOp::CreateUser(_, ack)
        | WriteOp::RevokeTokens(_, ack)
        | WriteOp::FinishRun { ack, .. }
        | WriteOp::Barrier(ack) => ack,
        WriteOp::Event(row) => return log_failure(result, "run event", &row.run_id),
        WriteOp::LlmCall { call, .. } => {
            return log_failure(result, "model call's usage", call.run_id.as_str());
        }
        WriteOp::CreateThread(thread) => return log_failure(result, "thread", thread.id.as_str()),
        WriteOp::BeginRun(run, _) => return log_failure(result, "run", run.id.as_str()),
    };
    let _ = ack.send(result);
}

/// Unacknowledged writes have nobody to tell: a failure goes to the log.
fn log_failure(result: Result<(), StoreError>, what: &str, id: &str) {
    if let Err(error) = result {
        tracing::error!(%error, id, "could not store a {what}");
    }
}

fn apply(conn: &Connection, op: &WriteOp) -> Result<(), StoreError> {
    let applied = match op {
        WriteOp::CreateUser(user, _) => return insert_user(conn, user),
        WriteOp::RevokeTokens(user_id, _) => revoke_tokens(conn, user_id),
        WriteOp::CreateThread(thread) => insert_thread(conn, thread),
        WriteOp::BeginRun(run, message) => begin_run(conn, run, message.as_ref()),
        WriteOp::FinishRun {
            user_id,
            run_id,
            outcome,
            ..
        } => finish_run(conn, user_id, run_id, outcome),
        WriteOp::Event(row) => insert_event(conn, row),
        WriteOp::LlmCall { user_id, call } => insert_llm_call(conn, user_id, call),
        WriteOp::Barrier(_) => Ok(()),
    };
    applied.map_err(backend)
}

fn revoke_tokens(conn: &Connection, user_id: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE users SET token_generation = token_generation + 1 WHERE id = ?1")?
        .execute(params![user_id])
        .map(drop)
}

fn insert_user(conn: &Connection, user: &User) -> Result<(), StoreError> {
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
        Ok(_) => Ok(()),
        Err(rusqlite::Error::SqliteFailure(failure, _))
            if failure.code == ErrorCode::ConstraintViolation =>
        {
            Err(StoreError::UsernameTaken)
        }
        Err(error) => Err(backend(error)),
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
    conn.prepare_cached(
        "UPDATE runs SET status = ?1, finished_at = ?2, error_code = ?3, error_message = ?4 \
         WHERE id = ?5 AND user_id = ?6",
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
        to_micros(cordon_core::now())
    ])
    .map(drop)
}
