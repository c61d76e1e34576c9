//! The single writer: a dedicated thread that applies queued writes in group-committed transactions, in order.
//!
//! It owns its own SQLite connection (rusqlite) and runs every statement of a
//! batch on its own thread with cached prepared statements: no per-statement
//! hop to another thread, which was the writer's cost through sqlx.

use std::sync::Arc;

use cordon_core::{
    EventSink, LlmCallRecord, Message, RunOutcome, RunRecord, StoreError, Thread, User,
};
use rusqlite::{Connection, ErrorCode, params};
use tokio::sync::{mpsc, oneshot};

use crate::checkpoint::WalBound;
use crate::convert::{rusqlite_backend as backend, to_micros};
use crate::health::WriteHealth;
use crate::visibility::{Ticketed, Visible};

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
    /// A queued run's turn came: `queued` becomes `running`.
    StartQueuedRun {
        user_id: String,
        run_id: String,
    },
    FinishRun {
        user_id: String,
        run_id: String,
        outcome: RunOutcome,
        ack: Ack,
    },
    /// Published to the row's subscriber once committed.
    Event(EventRow),
    /// A crashed process's run: its terminal event and outcome, in one transaction.
    EndAbandonedRun {
        event: EventRow,
        outcome: RunOutcome,
        ack: Ack,
    },
    /// Deletes each listed user's events up to the given `seq`; answers how many.
    PruneEvents(Vec<(String, i64)>, oneshot::Sender<Result<u64, StoreError>>),
    /// One model call's usage; not acknowledged, like events.
    LlmCall {
        user_id: String,
        call: LlmCallRecord,
    },
    /// Acknowledged once everything queued before it is committed.
    Barrier(Ack),
    /// A small real write, tried while writes are failing: once it commits,
    /// the store takes writes again.
    Probe(Ack),
}

impl WriteOp {
    /// Whose write it is: that user's reads wait for it (`visibility`).
    pub fn user_id(&self) -> Option<&str> {
        match self {
            WriteOp::CreateUser(user, _) => Some(user.id.as_str()),
            WriteOp::RevokeTokens(user_id, _)
            | WriteOp::StartQueuedRun { user_id, .. }
            | WriteOp::FinishRun { user_id, .. }
            | WriteOp::LlmCall { user_id, .. } => Some(user_id),
            WriteOp::CreateThread(thread) => Some(thread.user_id.as_str()),
            WriteOp::BeginRun(run, _) => Some(run.user_id.as_str()),
            WriteOp::Event(row) | WriteOp::EndAbandonedRun { event: row, .. } => Some(&row.user_id),
            // Pruning removes what nobody reads any more; barriers and
            // probes belong to nobody.
            WriteOp::PruneEvents(..) | WriteOp::Barrier(_) | WriteOp::Probe(_) => None,
        }
    }
}

pub struct EventRow {
    pub user_id: String,
    pub seq: i64,
    pub run_id: String,
    pub event_type: &'static str,
    pub ts: i64,
    pub payload: Arc<str>,
    /// Who hears of the event once it is committed (none for recovery's events).
    pub subscriber: Option<Arc<dyn EventSink>>,
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

/// Drains the queue until every sender is gone, committing one batch at a
/// time; runs on its own thread (it blocks).
pub fn run(
    mut conn: Connection,
    mut queue: mpsc::UnboundedReceiver<Ticketed>,
    health: Arc<WriteHealth>,
    visible: Visible,
    mut wal: WalBound,
) {
    let Some(publisher) = Publisher::start() else {
        tracing::error!("could not start the event publisher; the store takes no writes");
        return;
    };
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = queue.blocking_recv() {
        let mut last_ticket = first.ticket;
        batch.push(first.op);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(next) => {
                    last_ticket = next.ticket;
                    batch.push(next.op);
                }
                Err(_) => break,
            }
        }
        let count = batch.len();
        let probed = batch.iter().any(|op| matches!(op, WriteOp::Probe(_)));
        let mut settled = Settled::default();
        if health.is_failing() {
            probe_then_refuse(&mut conn, &mut batch, &health, &mut settled);
        }
        if !batch.is_empty() {
            commit_batch(&mut conn, &mut batch, &health, &mut settled);
        }
        // Readable now: reads need the commit, not the publishing.
        visible.through(last_ticket);
        publisher.hand_over(settled);
        wal.after_batch(&conn);
        if probed {
            health.probe_done();
        }
        health.drained(count);
    }
}

/// What the publisher does with a batch, in queue order.
enum Settle {
    /// A committed (or failed) event, for its subscriber.
    Event(EventRow, Result<u64, StoreError>),
    /// A barrier, answered once every event before it is published: after a
    /// `sync`, the events it waited for have reached their subscribers (so
    /// shutdown closes sockets only after their last events are queued).
    Barrier(Ack, Result<(), StoreError>),
}

type Settled = Vec<Settle>;

/// Publishes committed events on a thread of its own, batch after batch in
/// commit order, so the writer starts its next transaction instead of
/// fanning the last one out to sockets (that wait is every event's latency).
struct Publisher {
    batches: std::sync::mpsc::Sender<Settled>,
}

impl Publisher {
    /// Ends when the writer drops it.
    fn start() -> Option<Self> {
        let (batches, settled) = std::sync::mpsc::channel::<Settled>();
        std::thread::Builder::new()
            .name("cordon-store-publisher".into())
            .spawn(move || {
                for batch in settled {
                    for item in batch {
                        match item {
                            Settle::Event(row, result) => publish(row, result),
                            Settle::Barrier(ack, result) => {
                                let _ = ack.send(result);
                            }
                        }
                    }
                }
            })
            .ok()?;
        Some(Self { batches })
    }

    fn hand_over(&self, settled: Settled) {
        if !settled.is_empty() {
            let _ = self.batches.send(settled);
        }
    }
}

/// While writes fail, a batch's probe is tried first, alone; if it commits
/// the batch goes on as usual, otherwise every write of it is refused.
fn probe_then_refuse(
    conn: &mut Connection,
    batch: &mut Vec<WriteOp>,
    health: &WriteHealth,
    settled: &mut Settled,
) {
    if let Some(at) = batch.iter().position(|op| matches!(op, WriteOp::Probe(_))) {
        let probe = batch.remove(at);
        let result = room_on_disk(conn)
            .and_then(|()| in_transaction(conn, |tx| probe_write(tx)).map_err(backend));
        if result.is_ok() {
            health.recover();
        }
        acknowledge(probe, result.map(|()| 1), settled);
    }
    if let Err(refusal) = health.check_failing() {
        for op in batch.drain(..) {
            let result = refused(&op, &refusal);
            acknowledge(op, result, settled);
        }
    }
}

/// What a write that was not applied is told. A barrier is answered `Ok`:
/// the writes before it are settled (they failed) and reads may go on;
/// `Store::sync` checks the failure itself.
fn refused(op: &WriteOp, error: &StoreError) -> Result<u64, StoreError> {
    match op {
        WriteOp::Barrier(_) => Ok(0),
        _ => Err(error.clone()),
    }
}

fn in_transaction(
    conn: &mut Connection,
    body: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<()>,
) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    body(&tx)?;
    tx.commit()
}

/// Applies a batch in one transaction. A write refused on its own (a taken
/// username) is answered alone; any other error aborts the whole batch:
/// after a full disk or an I/O error SQLite may have rolled back already,
/// and later statements must not run outside the transaction.
fn commit_batch(
    conn: &mut Connection,
    batch: &mut Vec<WriteOp>,
    health: &WriteHealth,
    settled: &mut Settled,
) {
    let mut results = Vec::with_capacity(batch.len());
    let committed = in_transaction(conn, |tx| {
        for op in batch.iter() {
            results.push(apply(tx, op)?);
        }
        Ok(())
    });
    if let Err(error) = &committed {
        tracing::error!(%error, writes = batch.len(), "a write batch failed to commit");
        health.fail(error.to_string());
    }
    for (op, result) in batch
        .drain(..)
        .zip(results.into_iter().chain(std::iter::repeat_with(|| Ok(0))))
    {
        let result = match &committed {
            Ok(()) => result,
            Err(error) => refused(&op, &StoreError::Backend(error.to_string())),
        };
        acknowledge(op, result, settled);
    }
}

/// Tells each write's caller how it went; an event is set aside for the
/// publisher, which hands it to its subscriber in queue (so `seq`) order.
fn acknowledge(op: WriteOp, result: Result<u64, StoreError>, settled: &mut Settled) {
    let ack = match op {
        WriteOp::CreateUser(_, ack)
        | WriteOp::RevokeTokens(_, ack)
        | WriteOp::FinishRun { ack, .. }
        | WriteOp::EndAbandonedRun { ack, .. }
        | WriteOp::Probe(ack) => ack,
        WriteOp::Barrier(ack) => return settled.push(Settle::Barrier(ack, result.map(drop))),
        WriteOp::PruneEvents(_, ack) => {
            let _ = ack.send(result);
            return;
        }
        WriteOp::Event(row) => return settled.push(Settle::Event(row, result)),
        WriteOp::LlmCall { call, .. } => {
            return log_failure(result, "model call's usage", call.run_id.as_str());
        }
        WriteOp::CreateThread(thread) => return log_failure(result, "thread", thread.id.as_str()),
        WriteOp::BeginRun(run, _) => return log_failure(result, "run", run.id.as_str()),
        WriteOp::StartQueuedRun { run_id, .. } => return log_failure(result, "run start", &run_id),
    };
    let _ = ack.send(result.map(drop));
}

/// Hands a committed event to its subscriber; one that failed is never published.
fn publish(row: EventRow, result: Result<u64, StoreError>) {
    match (result, &row.subscriber) {
        (Ok(_), Some(subscriber)) => {
            subscriber.publish(u64::try_from(row.seq).unwrap_or(0), &row.payload)
        }
        (Ok(_), None) => {}
        (Err(error), _) => {
            tracing::error!(%error, run_id = %row.run_id, seq = row.seq, "could not store a run event");
        }
    }
}

/// Unacknowledged writes have nobody to tell: a failure goes to the log.
fn log_failure(result: Result<u64, StoreError>, what: &str, id: &str) {
    if let Err(error) = result {
        tracing::error!(%error, id, "could not store a {what}");
    }
}

/// Applies one write inside the batch's transaction. The outer `Err` aborts
/// the batch; the inner one answers this write alone (rows changed or why not).
fn apply(conn: &Connection, op: &WriteOp) -> rusqlite::Result<Result<u64, StoreError>> {
    let applied = match op {
        WriteOp::CreateUser(user, _) => return insert_user(conn, user).map(|r| r.map(|()| 1)),
        WriteOp::RevokeTokens(user_id, _) => revoke_tokens(conn, user_id),
        WriteOp::CreateThread(thread) => insert_thread(conn, thread),
        WriteOp::BeginRun(run, message) => begin_run(conn, run, message.as_ref()),
        WriteOp::FinishRun {
            user_id,
            run_id,
            outcome,
            ..
        } => finish_run(conn, user_id, run_id, outcome),
        WriteOp::StartQueuedRun { user_id, run_id } => start_queued_run(conn, user_id, run_id),
        WriteOp::Event(row) => insert_event(conn, row),
        WriteOp::EndAbandonedRun { event, outcome, .. } => insert_event(conn, event)
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
        to_micros(cordon_core::now())
    ])
    .map(drop)
}
