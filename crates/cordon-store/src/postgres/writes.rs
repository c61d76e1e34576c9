//! The PostgreSQL side of the writer: one connection of its own, every batch in one transaction, its common writes in bulk.
//!
//! The writer's loop is synchronous (it runs on its own thread for SQLite);
//! here that thread drives a small runtime of its own and blocks on each
//! batch. A batch that fails drops the connection: the next batch (or the
//! probe, while writes are failing) opens a new one, so a restarted
//! database is picked up again by itself.

use cordon_core::{StoreError, User};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};

use crate::convert::{backend, to_micros};
use crate::postgres::bulk;
use crate::writer::{PauseRow, WriteBackend, WriteOp};

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

/// The batch's common writes in a few bulk statements ([`bulk`]), the rest
/// one by one in queue order.
async fn apply_batch(
    conn: &mut PgConnection,
    batch: &[WriteOp],
) -> Result<Vec<Result<u64, StoreError>>, sqlx::Error> {
    let inserted = bulk::insert_all(&mut *conn, batch).await?;
    let mut results = Vec::with_capacity(batch.len());
    for op in batch {
        results.push(match inserted.result_of(op) {
            Some(result) => result,
            None => apply_alone(&mut *conn, op).await?,
        });
    }
    bulk::update_all(conn, batch, &inserted).await?;
    Ok(results)
}

/// A write that is not applied in bulk: the outer `Err` aborts the batch,
/// the inner one refuses this write alone.
async fn apply_alone(conn: &mut PgConnection, op: &WriteOp) -> Applied {
    match op {
        WriteOp::CreateUser(user, _) => insert_user(conn, user).await,
        WriteOp::RevokeTokens(user_id, _) => ok(sqlx::query(
            "UPDATE users SET token_generation = token_generation + 1 WHERE id = $1",
        )
        .bind(user_id)
        .execute(conn)
        .await?
        .rows_affected()),
        WriteOp::PutSecret {
            user_id,
            name,
            sealed,
            ..
        } => ok(sqlx::query(
            "INSERT INTO user_secrets (user_id, name, sealed, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (user_id, name) DO UPDATE SET sealed = excluded.sealed, \
             updated_at = excluded.updated_at",
        )
        .bind(user_id)
        .bind(name)
        .bind(sealed)
        .bind(crate::convert::to_micros(cordon_core::now()))
        .execute(conn)
        .await?
        .rows_affected()),
        WriteOp::DeleteSecret { user_id, name, .. } => ok(sqlx::query(
            "DELETE FROM user_secrets WHERE user_id = $1 AND name = $2",
        )
        .bind(user_id)
        .bind(name)
        .execute(conn)
        .await?
        .rows_affected()),
        WriteOp::SetAdmin { user_id, admin, .. } => {
            ok(sqlx::query("UPDATE users SET admin = $2 WHERE id = $1")
                .bind(user_id)
                .bind(i64::from(*admin))
                .execute(conn)
                .await?
                .rows_affected())
        }
        WriteOp::PutBudget {
            user_id, limits, ..
        } => put_budget(conn, user_id, limits.as_ref()).await,
        WriteOp::PutPause { user_id, pause, .. } => put_pause(conn, user_id, pause).await,
        WriteOp::TakePause {
            user_id, run_id, ..
        } => take_pause(conn, user_id, run_id).await,
        WriteOp::PruneEvents(floors, _) => prune_events(conn, floors).await,
        WriteOp::Probe(_) => probe_write(conn).await.map(|()| Ok(1)),
        // Applied in bulk, or nothing to apply.
        _ => ok(0),
    }
}

async fn put_pause(conn: &mut PgConnection, user_id: &str, pause: &PauseRow) -> Applied {
    sqlx::query(
        "INSERT INTO run_pauses (user_id, run_id, thread_id, state, expires_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id, run_id) DO UPDATE SET \
         state = excluded.state, expires_at = excluded.expires_at",
    )
    .bind(user_id)
    .bind(&pause.run_id)
    .bind(&pause.thread_id)
    .bind(&pause.state)
    .bind(pause.expires_at)
    .execute(&mut *conn)
    .await?;
    ok(sqlx::query(
        "UPDATE runs SET status = 'waiting_approval' WHERE id = $1 AND user_id = $2 \
         AND status IN ('running', 'waiting_approval')",
    )
    .bind(&pause.run_id)
    .bind(user_id)
    .execute(conn)
    .await?
    .rows_affected())
}

async fn take_pause(conn: &mut PgConnection, user_id: &str, run_id: &str) -> Applied {
    sqlx::query("DELETE FROM run_pauses WHERE user_id = $1 AND run_id = $2")
        .bind(user_id)
        .bind(run_id)
        .execute(&mut *conn)
        .await?;
    ok(sqlx::query(
        "UPDATE runs SET status = 'running' WHERE id = $1 AND user_id = $2 \
         AND status = 'waiting_approval'",
    )
    .bind(run_id)
    .bind(user_id)
    .execute(conn)
    .await?
    .rows_affected())
}

fn ok(rows: u64) -> Applied {
    Ok(Ok(rows))
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

async fn put_budget(
    conn: &mut PgConnection,
    user_id: &str,
    limits: Option<&cordon_core::BudgetLimits>,
) -> Applied {
    let Some(limits) = limits else {
        return ok(sqlx::query("DELETE FROM user_budgets WHERE user_id = $1")
            .bind(user_id)
            .execute(conn)
            .await?
            .rows_affected());
    };
    let tokens = |limit: Option<u64>| limit.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
    ok(sqlx::query(
        "INSERT INTO user_budgets (user_id, daily_usd, monthly_usd, daily_tokens, monthly_tokens, \
         updated_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (user_id) DO UPDATE SET \
         daily_usd = excluded.daily_usd, monthly_usd = excluded.monthly_usd, \
         daily_tokens = excluded.daily_tokens, monthly_tokens = excluded.monthly_tokens, \
         updated_at = excluded.updated_at",
    )
    .bind(user_id)
    .bind(limits.daily_usd)
    .bind(limits.monthly_usd)
    .bind(tokens(limits.daily_tokens))
    .bind(tokens(limits.monthly_tokens))
    .bind(to_micros(cordon_core::now()))
    .execute(conn)
    .await?
    .rows_affected())
}
