//! The single writer: applies queued writes in group-committed transactions, in order.

use std::sync::Arc;

use cordon_core::{LlmCallRecord, Message, RunOutcome, RunRecord, StoreError, Thread, User};
use sqlx::{Connection, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use crate::convert::{backend, to_micros};

/// Most writes folded into one transaction.
const MAX_BATCH: usize = 1024;

pub type Ack = oneshot::Sender<Result<(), StoreError>>;

/// One queued write. Variants with an `ack` are awaited by their caller.
pub enum WriteOp {
    CreateUser(User, Ack),
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

/// Drains the queue until every sender is gone, committing one batch at a time.
pub async fn run(mut conn: SqliteConnection, mut queue: mpsc::UnboundedReceiver<WriteOp>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = queue.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        commit_batch(&mut conn, &mut batch).await;
    }
    let _ = conn.close().await;
}

async fn commit_batch(conn: &mut SqliteConnection, batch: &mut Vec<WriteOp>) {
    let mut results = Vec::with_capacity(batch.len());
    let committed = async {
        let mut tx = conn.begin().await?;
        for op in batch.iter() {
            // Events are written together below: one statement per chunk
            // instead of one round trip to SQLite's thread per event.
            let result = match op {
                WriteOp::Event(_) => Ok(()),
                op => apply(&mut tx, op).await,
            };
            results.push(result);
        }
        insert_events(&mut tx, batch).await;
        tx.commit().await
    }
    .await;
    if let Err(error) = &committed {
        tracing::error!(%error, writes = batch.len(), "a write batch failed to commit");
    }
    for (op, result) in batch
        .drain(..)
        .zip(results.into_iter().chain(std::iter::repeat_with(|| Ok(()))))
    {
        let result = match &committed {
            Ok(()) => result,
            Err(error) => Err(backend_ref(error)),
        };
        acknowledge(op, result);
    }
}

fn backend_ref(error: &sqlx::Error) -> StoreError {
    StoreError::Backend(error.to_string())
}

fn acknowledge(op: WriteOp, result: Result<(), StoreError>) {
    let ack = match op {
        WriteOp::CreateUser(_, ack) | WriteOp::FinishRun { ack, .. } | WriteOp::Barrier(ack) => ack,
        WriteOp::Event(_) => {
            if let Err(error) = result {
                tracing::error!(%error, "could not store a run event");
            }
            return;
        }
        WriteOp::LlmCall { .. } => {
            if let Err(error) = result {
                tracing::error!(%error, "could not store a model call's usage");
            }
            return;
        }
        WriteOp::CreateThread(thread) => {
            if let Err(error) = result {
                tracing::error!(%error, thread_id = %thread.id, "could not store a thread");
            }
            return;
        }
        WriteOp::BeginRun(run, _) => {
            if let Err(error) = result {
                tracing::error!(%error, run_id = %run.id, "could not store a run");
            }
            return;
        }
    };
    let _ = ack.send(result);
}

async fn apply(conn: &mut SqliteConnection, op: &WriteOp) -> Result<(), StoreError> {
    match op {
        WriteOp::CreateUser(user, _) => insert_user(conn, user).await,
        WriteOp::CreateThread(thread) => insert_thread(conn, thread).await.map_err(backend),
        WriteOp::BeginRun(run, message) => begin_run(conn, run, message.as_ref())
            .await
            .map_err(backend),
        WriteOp::FinishRun {
            user_id,
            run_id,
            outcome,
            ..
        } => finish_run(conn, user_id, run_id, outcome)
            .await
            .map_err(backend),
        WriteOp::Event(_) => Ok(()), // written in bulk by `insert_events`
        WriteOp::LlmCall { user_id, call } => {
            insert_llm_call(conn, user_id, call).await.map_err(backend)
        }
        WriteOp::Barrier(_) => Ok(()),
    }
}

async fn insert_user(conn: &mut SqliteConnection, user: &User) -> Result<(), StoreError> {
    let result = sqlx::query(
        "INSERT INTO users (id, username, password_hash, created_at) VALUES (?, ?, ?, ?)",
    )
    .bind(user.id.as_str())
    .bind(&user.username)
    .bind(&user.password_hash)
    .bind(to_micros(user.created_at))
    .execute(conn)
    .await;
    match result {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
            Err(StoreError::UsernameTaken)
        }
        Err(error) => Err(backend(error)),
    }
}

async fn insert_thread(conn: &mut SqliteConnection, thread: &Thread) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO threads (id, user_id, title, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(thread.id.as_str())
    .bind(thread.user_id.as_str())
    .bind(&thread.title)
    .bind(to_micros(thread.created_at))
    .bind(to_micros(thread.updated_at))
    .execute(conn)
    .await
    .map(drop)
}

async fn begin_run(
    conn: &mut SqliteConnection,
    run: &RunRecord,
    message: Option<&Message>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO runs (id, user_id, thread_id, agent, status, created_at) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(run.id.as_str())
    .bind(run.user_id.as_str())
    .bind(run.thread_id.as_str())
    .bind(&run.agent)
    .bind(run.status.as_str())
    .bind(to_micros(run.created_at))
    .execute(&mut *conn)
    .await?;
    if let Some(message) = message {
        insert_message(conn, run.user_id.as_str(), message).await?;
    }
    Ok(())
}

async fn finish_run(
    conn: &mut SqliteConnection,
    user_id: &str,
    run_id: &str,
    outcome: &RunOutcome,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE runs SET status = ?, finished_at = ?, error_code = ?, error_message = ? \
         WHERE id = ? AND user_id = ?",
    )
    .bind(outcome.status.as_str())
    .bind(to_micros(cordon_core::now()))
    .bind(&outcome.error_code)
    .bind(&outcome.error_message)
    .bind(run_id)
    .bind(user_id)
    .execute(&mut *conn)
    .await?;
    if let Some(answer) = &outcome.answer {
        insert_message(&mut *conn, user_id, answer).await?;
        // A thread's `updated_at` is its last answer: one update per run
        // rather than one per message keeps the writer's statement count down.
        sqlx::query("UPDATE threads SET updated_at = ? WHERE id = ? AND user_id = ?")
            .bind(to_micros(answer.created_at))
            .bind(answer.thread_id.as_str())
            .bind(user_id)
            .execute(conn)
            .await?;
    }
    Ok(())
}

async fn insert_message(
    conn: &mut SqliteConnection,
    user_id: &str,
    message: &Message,
) -> Result<(), sqlx::Error> {
    let created_at = to_micros(message.created_at);
    sqlx::query(
        "INSERT INTO messages (id, user_id, thread_id, role, content, run_id, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(message.id.as_str())
    .bind(user_id)
    .bind(message.thread_id.as_str())
    .bind(message.role.as_str())
    .bind(&message.content)
    .bind(message.run_id.as_ref().map(|id| id.as_str()))
    .bind(created_at)
    .execute(conn)
    .await
    .map(drop)
}

/// Rows per multi-row `INSERT` (6 parameters each, far below SQLite's limit).
const EVENTS_PER_STATEMENT: usize = 128;

/// Inserts every event of the batch, in order, a chunk per statement. A chunk
/// that fails (a constraint only undoes its own statement in SQLite) is
/// retried row by row, so one bad row never costs other users their events.
async fn insert_events(conn: &mut SqliteConnection, batch: &[WriteOp]) {
    let rows: Vec<&EventRow> = batch
        .iter()
        .filter_map(|op| match op {
            WriteOp::Event(row) => Some(row),
            _ => None,
        })
        .collect();
    for chunk in rows.chunks(EVENTS_PER_STATEMENT) {
        let mut insert = sqlx::QueryBuilder::new(
            "INSERT INTO run_events (user_id, seq, run_id, event_type, ts, payload) ",
        );
        insert.push_values(chunk, |mut values, row| {
            values
                .push_bind(row.user_id.as_str())
                .push_bind(row.seq)
                .push_bind(row.run_id.as_str())
                .push_bind(row.event_type)
                .push_bind(row.ts)
                .push_bind(&*row.payload);
        });
        if insert
            .build()
            .persistent(false)
            .execute(&mut *conn)
            .await
            .is_ok()
        {
            continue;
        }
        for row in chunk {
            if let Err(error) = insert_event(conn, row).await {
                tracing::error!(%error, seq = row.seq, "could not store a run event");
            }
        }
    }
}

async fn insert_event(conn: &mut SqliteConnection, row: &EventRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO run_events (user_id, seq, run_id, event_type, ts, payload) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(&row.user_id)
    .bind(row.seq)
    .bind(&row.run_id)
    .bind(row.event_type)
    .bind(row.ts)
    .bind(&*row.payload)
    .execute(conn)
    .await
    .map(drop)
}

async fn insert_llm_call(
    conn: &mut SqliteConnection,
    user_id: &str,
    call: &LlmCallRecord,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO llm_calls (user_id, run_id, model, input_tokens, output_tokens, cost_usd, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(user_id)
    .bind(call.run_id.as_str())
    .bind(&call.model)
    .bind(i64::try_from(call.input_tokens).unwrap_or(i64::MAX))
    .bind(i64::try_from(call.output_tokens).unwrap_or(i64::MAX))
    .bind(call.cost_usd)
    .bind(to_micros(cordon_core::now()))
    .execute(conn)
    .await
    .map(drop)
}
