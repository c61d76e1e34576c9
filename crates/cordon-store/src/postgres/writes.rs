//! The PostgreSQL side of the writer: one connection of its own, every write of a batch applied in one transaction, a batch's events in one statement.
//!
//! The writer's loop is synchronous (it runs on its own thread for SQLite);
//! here that thread drives a small runtime of its own and blocks on each
//! batch. A batch that fails drops the connection: the next batch (or the
//! probe, while writes are failing) opens a new one, so a restarted
//! database is picked up again by itself.

use std::collections::HashSet;

use cordon_core::{LlmCallRecord, Message, RunOutcome, RunRecord, StoreError, Thread, User};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection, PgExecutor};

use crate::convert::{backend, to_micros};
use crate::writer::{EventRow, WriteBackend, WriteOp};

/// A statement's outcome inside the batch: the outer `Err` aborts the
/// batch, the inner one refuses this write alone.
type Applied = Result<Result<u64, StoreError>, sqlx::Error>;

pub struct PgWrites {
    runtime: tokio::runtime::Runtime,
    options: PgConnectOptions,
    conn: Option<PgConnection>,
}

impl PgWrites {
    pub fn new(options: PgConnectOptions) -> Result<Self, StoreError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| StoreError::Backend(format!("could not start the writer: {error}")))?;
        Ok(Self {
            runtime,
            options,
            conn: None,
        })
    }
}

impl WriteBackend for PgWrites {
    fn commit(&mut self, batch: &[WriteOp]) -> Result<Vec<Result<u64, StoreError>>, String> {
        let Self {
            runtime,
            options,
            conn,
        } = self;
        let result = runtime.block_on(async {
            let mut tx = connection(conn, options).await?.begin().await?;
            let results = apply_batch(&mut tx, batch).await?;
            tx.commit().await?;
            Ok(results)
        });
        forget_on_error(conn, result).map_err(|error| error.to_string())
    }

    fn probe(&mut self) -> Result<(), StoreError> {
        let Self {
            runtime,
            options,
            conn,
        } = self;
        let result = runtime.block_on(async {
            let mut tx = connection(conn, options).await?.begin().await?;
            probe_write(&mut tx).await?;
            tx.commit().await
        });
        forget_on_error(conn, result).map_err(backend)
    }
}

/// The writer's connection, opened if there is none.
async fn connection<'s>(
    slot: &'s mut Option<PgConnection>,
    options: &PgConnectOptions,
) -> Result<&'s mut PgConnection, sqlx::Error> {
    if slot.is_none() {
        *slot = Some(options.connect().await?);
    }
    slot.as_mut().ok_or(sqlx::Error::PoolClosed)
}

/// After any error the connection may be broken or mid-transaction: the
/// next batch opens a new one.
fn forget_on_error<T>(
    slot: &mut Option<PgConnection>,
    result: Result<T, sqlx::Error>,
) -> Result<T, sqlx::Error> {
    if result.is_err() {
        *slot = None;
    }
    result
}

/// Every write of the batch in queue order, except that all of its plain
/// events go in first, in one statement: inside one transaction the order
/// of its statements is invisible to readers, and no write of a batch reads
/// another's event.
async fn apply_batch(
    conn: &mut PgConnection,
    batch: &[WriteOp],
) -> Result<Vec<Result<u64, StoreError>>, sqlx::Error> {
    let events: Vec<&EventRow> = batch
        .iter()
        .filter_map(|op| match op {
            WriteOp::Event(row) => Some(row),
            _ => None,
        })
        .collect();
    let stored = insert_events(&mut *conn, &events).await?;
    let mut results = Vec::with_capacity(batch.len());
    for op in batch {
        results.push(match op {
            WriteOp::Event(row) => event_result(&stored, row),
            other => apply(&mut *conn, other).await?,
        });
    }
    Ok(results)
}

fn event_result(stored: &HashSet<(String, i64)>, row: &EventRow) -> Result<u64, StoreError> {
    if stored.contains(&(row.user_id.clone(), row.seq)) {
        Ok(1)
    } else {
        Err(StoreError::Backend(format!(
            "event {} of the user is already stored",
            row.seq
        )))
    }
}

async fn apply(conn: &mut PgConnection, op: &WriteOp) -> Applied {
    match op {
        WriteOp::CreateUser(user, _) => insert_user(conn, user).await,
        WriteOp::RevokeTokens(user_id, _) => ok(sqlx::query(
            "UPDATE users SET token_generation = token_generation + 1 WHERE id = $1",
        )
        .bind(user_id)
        .execute(conn)
        .await?
        .rows_affected()),
        WriteOp::CreateThread(thread) => insert_thread(conn, thread).await,
        WriteOp::BeginRun(run, message) => begin_run(conn, run, message.as_ref()).await,
        WriteOp::StartQueuedRun { user_id, run_id } => ok(sqlx::query(
            "UPDATE runs SET status = 'running' WHERE id = $1 AND user_id = $2 AND status = 'queued'",
        )
        .bind(run_id)
        .bind(user_id)
        .execute(conn)
        .await?
        .rows_affected()),
        WriteOp::FinishRun {
            user_id,
            run_id,
            outcome,
            ..
        } => finish_run(conn, user_id, run_id, outcome).await,
        WriteOp::Event(row) => {
            let stored = insert_events(&mut *conn, &[row]).await?;
            Ok(event_result(&stored, row))
        }
        WriteOp::EndAbandonedRun { event, outcome, .. } => {
            let stored = insert_events(&mut *conn, &[event]).await?;
            if let Err(refused) = event_result(&stored, event) {
                return Ok(Err(refused));
            }
            finish_run(conn, &event.user_id, &event.run_id, outcome).await
        }
        WriteOp::LlmCall { user_id, call } => insert_llm_call(conn, user_id, call).await,
        WriteOp::PruneEvents(floors, _) => prune_events(conn, floors).await,
        WriteOp::Barrier(_) => ok(0),
        WriteOp::Probe(_) => probe_write(conn).await.map(|()| Ok(1)),
    }
}

fn ok(rows: u64) -> Applied {
    Ok(Ok(rows))
}

/// An insert that found its key taken (`ON CONFLICT DO NOTHING` inserted
/// nothing) refuses its write alone: in PostgreSQL a failed statement would
/// abort the whole transaction.
fn inserted(rows: u64, what: &str) -> Result<u64, StoreError> {
    if rows == 0 {
        return Err(StoreError::Backend(format!("the {what} is already stored")));
    }
    Ok(rows)
}

/// Inserts `events` in one statement; answers which were stored (a taken
/// `(user_id, seq)` is skipped, and refused alone by the caller).
async fn insert_events<'c>(
    conn: impl PgExecutor<'c>,
    events: &[&EventRow],
) -> Result<HashSet<(String, i64)>, sqlx::Error> {
    if events.is_empty() {
        return Ok(HashSet::new());
    }
    let column =
        |get: fn(&EventRow) -> String| events.iter().map(|row| get(row)).collect::<Vec<_>>();
    let stored: Vec<(String, i64)> = sqlx::query_as(
        "INSERT INTO run_events (user_id, seq, run_id, event_type, ts, payload) \
         SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::text[], $5::bigint[], $6::text[]) \
         ON CONFLICT DO NOTHING RETURNING user_id, seq",
    )
    .bind(column(|row| row.user_id.clone()))
    .bind(events.iter().map(|row| row.seq).collect::<Vec<_>>())
    .bind(column(|row| row.run_id.clone()))
    .bind(column(|row| row.event_type.to_owned()))
    .bind(events.iter().map(|row| row.ts).collect::<Vec<_>>())
    .bind(column(|row| row.payload.to_string()))
    .fetch_all(conn)
    .await?;
    Ok(stored.into_iter().collect())
}

async fn insert_user(conn: &mut PgConnection, user: &User) -> Applied {
    let rows = sqlx::query(
        "INSERT INTO users (id, username, password_hash, created_at, token_generation) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(user.id.as_str())
    .bind(&user.username)
    .bind(&user.password_hash)
    .bind(to_micros(user.created_at))
    .bind(i64::from(user.token_generation))
    .execute(conn)
    .await?
    .rows_affected();
    Ok(if rows == 0 {
        Err(StoreError::UsernameTaken)
    } else {
        Ok(rows)
    })
}

async fn insert_thread(conn: &mut PgConnection, thread: &Thread) -> Applied {
    let rows = sqlx::query(
        "INSERT INTO threads (id, user_id, title, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(thread.id.as_str())
    .bind(thread.user_id.as_str())
    .bind(&thread.title)
    .bind(to_micros(thread.created_at))
    .bind(to_micros(thread.updated_at))
    .execute(conn)
    .await?
    .rows_affected();
    Ok(inserted(rows, "thread"))
}

async fn begin_run(conn: &mut PgConnection, run: &RunRecord, message: Option<&Message>) -> Applied {
    let rows = sqlx::query(
        "INSERT INTO runs (id, user_id, thread_id, agent, status, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
    )
    .bind(run.id.as_str())
    .bind(run.user_id.as_str())
    .bind(run.thread_id.as_str())
    .bind(&run.agent)
    .bind(run.status.as_str())
    .bind(to_micros(run.created_at))
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if rows == 0 {
        return Ok(inserted(rows, "run"));
    }
    match message {
        Some(message) => insert_message(conn, run.user_id.as_str(), message).await,
        None => ok(rows),
    }
}

async fn finish_run(
    conn: &mut PgConnection,
    user_id: &str,
    run_id: &str,
    outcome: &RunOutcome,
) -> Applied {
    // Only the first end counts: a terminal status never changes again.
    sqlx::query(
        "UPDATE runs SET status = $1, finished_at = $2, error_code = $3, error_message = $4 \
         WHERE id = $5 AND user_id = $6 AND status IN ('queued', 'running')",
    )
    .bind(outcome.status.as_str())
    .bind(to_micros(cordon_core::now()))
    .bind(&outcome.error_code)
    .bind(&outcome.error_message)
    .bind(run_id)
    .bind(user_id)
    .execute(&mut *conn)
    .await?;
    let Some(answer) = &outcome.answer else {
        return ok(1);
    };
    if let Err(refused) = insert_message(&mut *conn, user_id, answer).await? {
        return Ok(Err(refused));
    }
    // A thread's `updated_at` is its last answer: one update per run.
    sqlx::query("UPDATE threads SET updated_at = $1 WHERE id = $2 AND user_id = $3")
        .bind(to_micros(answer.created_at))
        .bind(answer.thread_id.as_str())
        .bind(user_id)
        .execute(conn)
        .await?;
    ok(1)
}

async fn insert_message(conn: &mut PgConnection, user_id: &str, message: &Message) -> Applied {
    let rows = sqlx::query(
        "INSERT INTO messages (id, user_id, thread_id, role, content, run_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
    )
    .bind(message.id.as_str())
    .bind(user_id)
    .bind(message.thread_id.as_str())
    .bind(message.role.as_str())
    .bind(&message.content)
    .bind(message.run_id.as_ref().map(|id| id.as_str()))
    .bind(to_micros(message.created_at))
    .execute(conn)
    .await?
    .rows_affected();
    Ok(inserted(rows, "message"))
}

async fn insert_llm_call(conn: &mut PgConnection, user_id: &str, call: &LlmCallRecord) -> Applied {
    ok(sqlx::query(
        "INSERT INTO llm_calls (user_id, run_id, model, input_tokens, output_tokens, cost_usd, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(user_id)
    .bind(call.run_id.as_str())
    .bind(&call.model)
    .bind(i64::try_from(call.input_tokens).unwrap_or(i64::MAX))
    .bind(i64::try_from(call.output_tokens).unwrap_or(i64::MAX))
    .bind(call.cost_usd)
    .bind(to_micros(cordon_core::now()))
    .execute(conn)
    .await?
    .rows_affected())
}

/// Deletes a prefix of each listed user's log and records how far it went,
/// so `seq` never restarts and an expired cursor is recognised.
async fn prune_events(conn: &mut PgConnection, floors: &[(String, i64)]) -> Applied {
    let mut deleted = 0;
    for (user_id, floor) in floors {
        sqlx::query(
            "INSERT INTO event_log_floor (user_id, pruned_through) VALUES ($1, $2) \
             ON CONFLICT (user_id) DO UPDATE \
             SET pruned_through = GREATEST(event_log_floor.pruned_through, excluded.pruned_through)",
        )
        .bind(user_id)
        .bind(floor)
        .execute(&mut *conn)
        .await?;
        deleted += sqlx::query("DELETE FROM run_events WHERE user_id = $1 AND seq <= $2")
            .bind(user_id)
            .bind(floor)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    }
    ok(deleted)
}

async fn probe_write(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO write_probe (id, at) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET at = excluded.at",
    )
    .bind(to_micros(cordon_core::now()))
    .execute(conn)
    .await
    .map(drop)
}
