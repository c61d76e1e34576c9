//! A batch's common writes as one statement per table: its threads, runs, messages, events and model calls inserted with `UNNEST`, then its queued runs started and finished runs ended the same way.
//!
//! Statement by statement a batch cost one round trip per write (about
//! seven per run), which held PostgreSQL to half of SQLite's runs per
//! second; this way a batch of any size costs a handful. Within one
//! transaction the order of statements is invisible to readers; what must
//! still hold is that rows exist before they are updated (inserts go
//! first), that the first end of a run wins (the first `EndRun` of a run in
//! the batch is the one applied) and that a run ends only with its terminal
//! event stored.

use std::collections::{HashMap, HashSet};

use cordon_core::{Message, RunOutcome, RunRecord, StoreError, Thread};
use sqlx::{PgConnection, PgExecutor};

use crate::convert::to_micros;
use crate::writer::{EventRow, WriteOp};

/// The keys the inserts stored; a key missing here was taken already.
#[derive(Default)]
pub struct Inserted {
    threads: HashSet<String>,
    runs: HashSet<String>,
    messages: HashSet<String>,
    events: HashSet<(String, i64)>,
}

impl Inserted {
    /// The result of a write applied in bulk; `None` for one applied on its own.
    pub fn result_of(&self, op: &WriteOp) -> Option<Result<u64, StoreError>> {
        let found = |set: &HashSet<String>, key: &str, what: &str| {
            if set.contains(key) {
                Ok(1)
            } else {
                Err(StoreError::Backend(format!("the {what} is already stored")))
            }
        };
        Some(match op {
            WriteOp::CreateThread(thread) => found(&self.threads, thread.id.as_str(), "thread"),
            WriteOp::BeginRun(run, message) => {
                found(&self.runs, run.id.as_str(), "run").and_then(|_| {
                    message
                        .as_ref()
                        .map_or(Ok(1), |m| found(&self.messages, m.id.as_str(), "message"))
                })
            }
            WriteOp::EndRun { event, outcome, .. } => self.event(event).and_then(|_| {
                outcome
                    .answer
                    .as_ref()
                    .map_or(Ok(1), |m| found(&self.messages, m.id.as_str(), "message"))
            }),
            WriteOp::Event(row) => self.event(row),
            WriteOp::StartQueuedRun { .. } | WriteOp::LlmCall { .. } => Ok(1),
            _ => return None,
        })
    }

    /// A run's end whose terminal event was stored: only such an end changes
    /// the run or stores its answer.
    fn stored_end<'b>(&self, op: &'b WriteOp) -> Option<(&'b EventRow, &'b RunOutcome)> {
        match op {
            WriteOp::EndRun { event, outcome, .. } if self.event(event).is_ok() => {
                Some((event, outcome))
            }
            _ => None,
        }
    }

    /// Whether `row` was stored (a taken `seq` is refused alone).
    fn event(&self, row: &EventRow) -> Result<u64, StoreError> {
        if self.events.contains(&(row.user_id.clone(), row.seq)) {
            return Ok(1);
        }
        Err(StoreError::Backend(format!(
            "event {} of the user is already stored",
            row.seq
        )))
    }
}

/// Inserts every thread, run, message, event and model call of the batch.
pub async fn insert_all(
    conn: &mut PgConnection,
    batch: &[WriteOp],
) -> Result<Inserted, sqlx::Error> {
    let mut threads = Vec::new();
    let mut runs = Vec::new();
    let mut events = Vec::new();
    let mut calls = Vec::new();
    for op in batch {
        match op {
            WriteOp::CreateThread(thread) => threads.push(thread),
            WriteOp::BeginRun(run, _) => runs.push(run),
            WriteOp::EndRun { event: row, .. } | WriteOp::Event(row) => events.push(row),
            WriteOp::LlmCall { user_id, call } => calls.push((user_id, call)),
            _ => {}
        }
    }
    let mut inserted = Inserted {
        events: insert_events(&mut *conn, &events).await?,
        ..Inserted::default()
    };
    let messages = messages_in_queue_order(batch, &inserted);
    inserted.threads = insert_threads(&mut *conn, &threads).await?;
    inserted.runs = insert_runs(&mut *conn, &runs).await?;
    inserted.messages = insert_messages(&mut *conn, &messages).await?;
    insert_calls(&mut *conn, &calls).await?;
    Ok(inserted)
}

/// Each run's question and answer, in queue order (their order in a
/// thread); an answer only with its run's terminal event stored.
fn messages_in_queue_order<'b>(
    batch: &'b [WriteOp],
    inserted: &Inserted,
) -> Vec<(&'b str, &'b Message)> {
    let mut messages = Vec::new();
    for op in batch {
        if let WriteOp::BeginRun(run, message) = op {
            messages.extend(message.iter().map(|m| (run.user_id.as_str(), m)));
        } else if let Some((event, outcome)) = inserted.stored_end(op) {
            messages.extend(outcome.answer.iter().map(|m| (event.user_id.as_str(), m)));
        }
    }
    messages
}

async fn insert_threads(
    conn: &mut PgConnection,
    threads: &[&Thread],
) -> Result<HashSet<String>, sqlx::Error> {
    if threads.is_empty() {
        return Ok(HashSet::new());
    }
    let stored: Vec<String> = sqlx::query_scalar(
        "INSERT INTO threads (id, user_id, title, created_at, updated_at) \
             SELECT id, user_id, title, created_at, updated_at FROM UNNEST($1::text[], $2::text[], \
                 $3::text[], $4::bigint[], $5::bigint[]) WITH ORDINALITY \
                 AS u(id, user_id, title, created_at, updated_at, n) ORDER BY n \
             ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(threads.iter().map(|t| t.id.to_string()).collect::<Vec<_>>())
    .bind(
        threads
            .iter()
            .map(|t| t.user_id.to_string())
            .collect::<Vec<_>>(),
    )
    .bind(threads.iter().map(|t| t.title.clone()).collect::<Vec<_>>())
    .bind(
        threads
            .iter()
            .map(|t| to_micros(t.created_at))
            .collect::<Vec<_>>(),
    )
    .bind(
        threads
            .iter()
            .map(|t| to_micros(t.updated_at))
            .collect::<Vec<_>>(),
    )
    .fetch_all(conn)
    .await?;
    Ok(stored.into_iter().collect())
}

async fn insert_runs(
    conn: &mut PgConnection,
    runs: &[&RunRecord],
) -> Result<HashSet<String>, sqlx::Error> {
    if runs.is_empty() {
        return Ok(HashSet::new());
    }
    let stored: Vec<String> = sqlx::query_scalar(
        "INSERT INTO runs (id, user_id, thread_id, agent, status, created_at) \
             SELECT id, user_id, thread_id, agent, status, created_at FROM UNNEST($1::text[], \
                 $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[]) WITH ORDINALITY \
                 AS u(id, user_id, thread_id, agent, status, created_at, n) ORDER BY n \
             ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(runs.iter().map(|r| r.id.to_string()).collect::<Vec<_>>())
    .bind(
        runs.iter()
            .map(|r| r.user_id.to_string())
            .collect::<Vec<_>>(),
    )
    .bind(
        runs.iter()
            .map(|r| r.thread_id.to_string())
            .collect::<Vec<_>>(),
    )
    .bind(runs.iter().map(|r| r.agent.clone()).collect::<Vec<_>>())
    .bind(runs.iter().map(|r| r.status.as_str()).collect::<Vec<_>>())
    .bind(
        runs.iter()
            .map(|r| to_micros(r.created_at))
            .collect::<Vec<_>>(),
    )
    .fetch_all(conn)
    .await?;
    Ok(stored.into_iter().collect())
}

/// Messages in queue order (`position` is their order in a thread).
async fn insert_messages(
    conn: &mut PgConnection,
    messages: &[(&str, &Message)],
) -> Result<HashSet<String>, sqlx::Error> {
    if messages.is_empty() {
        return Ok(HashSet::new());
    }
    let stored: Vec<String> = sqlx::query_scalar(
        "INSERT INTO messages (id, user_id, thread_id, role, content, run_id, created_at) \
         SELECT id, user_id, thread_id, role, content, run_id, created_at FROM UNNEST($1::text[], \
             $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[]) WITH ORDINALITY \
             AS u(id, user_id, thread_id, role, content, run_id, created_at, n) ORDER BY n \
         ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(messages.iter().map(|(_, m)| m.id.to_string()).collect::<Vec<_>>())
    .bind(messages.iter().map(|(user, _)| (*user).to_owned()).collect::<Vec<_>>())
    .bind(messages.iter().map(|(_, m)| m.thread_id.to_string()).collect::<Vec<_>>())
    .bind(messages.iter().map(|(_, m)| m.role.as_str()).collect::<Vec<_>>())
    .bind(messages.iter().map(|(_, m)| m.content.clone()).collect::<Vec<_>>())
    .bind(
        messages
            .iter()
            .map(|(_, m)| m.run_id.as_ref().map(ToString::to_string))
            .collect::<Vec<_>>(),
    )
    .bind(messages.iter().map(|(_, m)| to_micros(m.created_at)).collect::<Vec<_>>())
    .fetch_all(conn)
    .await?;
    Ok(stored.into_iter().collect())
}

async fn insert_calls(
    conn: &mut PgConnection,
    calls: &[(&String, &cordon_core::LlmCallRecord)],
) -> Result<(), sqlx::Error> {
    if calls.is_empty() {
        return Ok(());
    }
    let tokens = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    sqlx::query(
        "INSERT INTO llm_calls (user_id, run_id, model, input_tokens, output_tokens, cost_usd, created_at) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], \
             $6::float8[], $7::bigint[])",
    )
    .bind(calls.iter().map(|(user, _)| (*user).clone()).collect::<Vec<_>>())
    .bind(calls.iter().map(|(_, c)| c.run_id.to_string()).collect::<Vec<_>>())
    .bind(calls.iter().map(|(_, c)| c.model.clone()).collect::<Vec<_>>())
    .bind(calls.iter().map(|(_, c)| tokens(c.input_tokens)).collect::<Vec<_>>())
    .bind(calls.iter().map(|(_, c)| tokens(c.output_tokens)).collect::<Vec<_>>())
    .bind(calls.iter().map(|(_, c)| c.cost_usd).collect::<Vec<_>>())
    .bind(calls.iter().map(|(_, c)| to_micros(c.at)).collect::<Vec<_>>())
    .execute(conn)
    .await
    .map(drop)
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
    let stored: Vec<(String, i64)> = sqlx::query_as(
        "INSERT INTO run_events (user_id, seq, run_id, event_type, ts, payload) \
         SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::text[], $5::bigint[], $6::text[]) \
         ON CONFLICT DO NOTHING RETURNING user_id, seq",
    )
    .bind(events.iter().map(|row| row.user_id.clone()).collect::<Vec<_>>())
    .bind(events.iter().map(|row| row.seq).collect::<Vec<_>>())
    .bind(events.iter().map(|row| row.run_id.clone()).collect::<Vec<_>>())
    .bind(events.iter().map(|row| row.event_type).collect::<Vec<_>>())
    .bind(events.iter().map(|row| row.ts).collect::<Vec<_>>())
    .bind(events.iter().map(|row| row.payload.to_string()).collect::<Vec<_>>())
    .fetch_all(conn)
    .await?;
    Ok(stored.into_iter().collect())
}

/// Starts the batch's queued runs, then ends its finished ones (those whose
/// terminal event was stored) and moves their threads' `updated_at` to the
/// answer.
pub async fn update_all(
    conn: &mut PgConnection,
    batch: &[WriteOp],
    inserted: &Inserted,
) -> Result<(), sqlx::Error> {
    let started: Vec<(&String, &String)> = batch
        .iter()
        .filter_map(|op| match op {
            WriteOp::StartQueuedRun { user_id, run_id } => Some((run_id, user_id)),
            _ => None,
        })
        .collect();
    if !started.is_empty() {
        sqlx::query(
            "UPDATE runs r SET status = 'running' FROM UNNEST($1::text[], $2::text[]) AS u(id, user_id) \
             WHERE r.id = u.id AND r.user_id = u.user_id AND r.status = 'queued'",
        )
        .bind(started.iter().map(|(run, _)| (*run).clone()).collect::<Vec<_>>())
        .bind(started.iter().map(|(_, user)| (*user).clone()).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
    }
    let stored_ends: Vec<(&EventRow, &RunOutcome)> = batch
        .iter()
        .filter_map(|op| inserted.stored_end(op))
        .collect();
    let mut ends: Vec<(&String, &String, &RunOutcome)> = Vec::new();
    let mut seen = HashSet::new();
    for (event, outcome) in &stored_ends {
        if seen.insert(&event.run_id) {
            ends.push((&event.run_id, &event.user_id, outcome));
        }
    }
    end_runs(conn, &ends).await?;
    let answers: Vec<(&String, &Message)> = stored_ends
        .iter()
        .filter_map(|(event, outcome)| {
            outcome
                .answer
                .as_ref()
                .map(|answer| (&event.user_id, answer))
        })
        .collect();
    touch_threads(conn, &answers).await
}

/// Only the first end of a run counts: a terminal status never changes again.
async fn end_runs(
    conn: &mut PgConnection,
    ends: &[(&String, &String, &RunOutcome)],
) -> Result<(), sqlx::Error> {
    if ends.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE runs r SET status = u.status, finished_at = $6, error_code = u.code, error_message = u.message \
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS u(id, user_id, status, code, message) \
         WHERE r.id = u.id AND r.user_id = u.user_id AND r.status IN ('queued', 'running')",
    )
    .bind(ends.iter().map(|(run, _, _)| (*run).clone()).collect::<Vec<_>>())
    .bind(ends.iter().map(|(_, user, _)| (*user).clone()).collect::<Vec<_>>())
    .bind(ends.iter().map(|(_, _, o)| o.status.as_str()).collect::<Vec<_>>())
    .bind(ends.iter().map(|(_, _, o)| o.error_code.clone()).collect::<Vec<_>>())
    .bind(ends.iter().map(|(_, _, o)| o.error_message.clone()).collect::<Vec<_>>())
    .bind(to_micros(cordon_core::now()))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A thread's `updated_at` is its last answer.
async fn touch_threads(
    conn: &mut PgConnection,
    answers: &[(&String, &Message)],
) -> Result<(), sqlx::Error> {
    let mut touched: HashMap<(&str, &str), i64> = HashMap::new();
    for (user, answer) in answers {
        let at = touched
            .entry((answer.thread_id.as_str(), user.as_str()))
            .or_insert(i64::MIN);
        *at = (*at).max(to_micros(answer.created_at));
    }
    if touched.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE threads t SET updated_at = u.at FROM UNNEST($1::text[], $2::text[], $3::bigint[]) AS u(id, user_id, at) \
         WHERE t.id = u.id AND t.user_id = u.user_id",
    )
    .bind(touched.keys().map(|(thread, _)| (*thread).to_owned()).collect::<Vec<_>>())
    .bind(touched.keys().map(|(_, user)| (*user).to_owned()).collect::<Vec<_>>())
    .bind(touched.values().copied().collect::<Vec<_>>())
    .execute(conn)
    .await
    .map(drop)
}
