//! Conversions between stored rows and column values and the domain types.

use std::str::FromStr;
use std::sync::Arc;

use cordon_core::{
    Message, MessageId, ModelUsage, Role, RunId, RunPause, RunRecord, RunStatus, StoreError,
    StoredEvent, Thread, ThreadId, User, UserId,
};
use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use time::OffsetDateTime;

/// A result row of either database, read by column name into the few
/// column types cordon stores (text, 64-bit integers, doubles).
pub trait StoredRow {
    fn text(&self, column: &str) -> Result<String, StoreError>;
    fn maybe_text(&self, column: &str) -> Result<Option<String>, StoreError>;
    fn int(&self, column: &str) -> Result<i64, StoreError>;
    fn maybe_int(&self, column: &str) -> Result<Option<i64>, StoreError>;
    fn real(&self, column: &str) -> Result<f64, StoreError>;
    fn maybe_real(&self, column: &str) -> Result<Option<f64>, StoreError>;
}

macro_rules! stored_row {
    ($row:ty) => {
        impl StoredRow for $row {
            fn text(&self, column: &str) -> Result<String, StoreError> {
                self.try_get(column).map_err(backend)
            }
            fn maybe_text(&self, column: &str) -> Result<Option<String>, StoreError> {
                self.try_get(column).map_err(backend)
            }
            fn int(&self, column: &str) -> Result<i64, StoreError> {
                self.try_get(column).map_err(backend)
            }
            fn maybe_int(&self, column: &str) -> Result<Option<i64>, StoreError> {
                self.try_get(column).map_err(backend)
            }
            fn real(&self, column: &str) -> Result<f64, StoreError> {
                self.try_get(column).map_err(backend)
            }
            fn maybe_real(&self, column: &str) -> Result<Option<f64>, StoreError> {
                self.try_get(column).map_err(backend)
            }
        }
    };
}

stored_row!(SqliteRow);
stored_row!(PgRow);

pub fn to_micros(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

/// A `seq` as stored (a signed 64-bit column).
pub fn seq_param(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

pub fn from_micros(micros: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
        .map_err(|error| StoreError::Backend(format!("stored timestamp out of range: {error}")))
}

pub fn backend(error: sqlx::Error) -> StoreError {
    StoreError::Backend(error.to_string())
}

/// The same for the threads that speak rusqlite (writer, checkpointer, indexer).
pub fn rusqlite_backend(error: rusqlite::Error) -> StoreError {
    StoreError::Backend(error.to_string())
}

/// Rebuilds a validated id from a stored column; a bad one means corruption.
pub fn id<T, E: std::fmt::Display>(
    parse: impl FnOnce(String) -> Result<T, E>,
    value: String,
) -> Result<T, StoreError> {
    parse(value).map_err(|error| StoreError::Backend(format!("stored id is invalid: {error}")))
}

pub fn user_of(row: impl StoredRow) -> Result<User, StoreError> {
    Ok(User {
        id: id(UserId::parse, row.text("id")?)?,
        username: row.text("username")?,
        password_hash: row.text("password_hash")?,
        created_at: from_micros(row.int("created_at")?)?,
        token_generation: u32::try_from(row.int("token_generation")?).unwrap_or(u32::MAX),
        admin: row.int("admin")? != 0,
    })
}

pub fn budget_limits_of(row: impl StoredRow) -> Result<cordon_core::BudgetLimits, StoreError> {
    let tokens = |column| -> Result<Option<u64>, StoreError> {
        Ok(row
            .maybe_int(column)?
            .map(|value| u64::try_from(value).unwrap_or(0)))
    };
    Ok(cordon_core::BudgetLimits {
        daily_usd: row.maybe_real("daily_usd")?,
        monthly_usd: row.maybe_real("monthly_usd")?,
        daily_tokens: tokens("daily_tokens")?,
        monthly_tokens: tokens("monthly_tokens")?,
    })
}

pub fn spend_of(row: impl StoredRow) -> Result<cordon_core::Spend, StoreError> {
    Ok(cordon_core::Spend {
        tokens: u64::try_from(row.int("tokens")?).unwrap_or(0),
        cost_usd: row.real("cost_usd")?,
    })
}

pub fn thread_of(row: impl StoredRow) -> Result<Thread, StoreError> {
    Ok(Thread {
        id: id(ThreadId::parse, row.text("id")?)?,
        user_id: id(UserId::parse, row.text("user_id")?)?,
        title: row.text("title")?,
        created_at: from_micros(row.int("created_at")?)?,
        updated_at: from_micros(row.int("updated_at")?)?,
    })
}

pub fn message_of(row: impl StoredRow) -> Result<Message, StoreError> {
    let role = row.text("role")?;
    let run_id = row.maybe_text("run_id")?;
    Ok(Message {
        id: id(MessageId::parse, row.text("id")?)?,
        thread_id: id(ThreadId::parse, row.text("thread_id")?)?,
        role: Role::parse(&role)
            .ok_or_else(|| StoreError::Backend(format!("unknown role `{role}`")))?,
        content: row.text("content")?,
        run_id: run_id.map(|value| id(RunId::parse, value)).transpose()?,
        created_at: from_micros(row.int("created_at")?)?,
    })
}

pub fn run_of(row: impl StoredRow) -> Result<RunRecord, StoreError> {
    let status = row.text("status")?;
    let finished_at = row.maybe_int("finished_at")?;
    Ok(RunRecord {
        id: id(RunId::parse, row.text("id")?)?,
        user_id: id(UserId::parse, row.text("user_id")?)?,
        thread_id: id(ThreadId::parse, row.text("thread_id")?)?,
        agent: row.text("agent")?,
        status: RunStatus::from_str(&status)
            .map_err(|_| StoreError::Backend(format!("unknown run status `{status}`")))?,
        created_at: from_micros(row.int("created_at")?)?,
        finished_at: finished_at.map(from_micros).transpose()?,
        error_code: row.maybe_text("error_code")?,
        error_message: row.maybe_text("error_message")?,
    })
}

pub fn pause_of(row: impl StoredRow) -> Result<RunPause, StoreError> {
    let state = row.text("state")?;
    Ok(RunPause {
        run_id: id(RunId::parse, row.text("run_id")?)?,
        thread_id: id(ThreadId::parse, row.text("thread_id")?)?,
        state: serde_json::from_str(&state)
            .map_err(|error| StoreError::Backend(format!("stored pause is invalid: {error}")))?,
        expires_at: from_micros(row.int("expires_at")?)?,
    })
}

pub fn model_usage_of(row: impl StoredRow) -> Result<ModelUsage, StoreError> {
    let count = |name: &str| -> Result<u64, StoreError> {
        let value = row.int(name)?;
        Ok(u64::try_from(value).unwrap_or(0))
    };
    Ok(ModelUsage {
        model: row.text("model")?,
        calls: count("calls")?,
        input_tokens: count("input_tokens")?,
        output_tokens: count("output_tokens")?,
        cost_usd: row.real("cost_usd")?,
    })
}

pub fn event_of(row: impl StoredRow) -> Result<StoredEvent, StoreError> {
    let seq = row.int("seq")?;
    Ok(StoredEvent {
        seq: u64::try_from(seq).unwrap_or(0),
        run_id: id(RunId::parse, row.text("run_id")?)?,
        event_type: row.text("event_type")?,
        payload: Arc::from(row.text("payload")?),
    })
}
