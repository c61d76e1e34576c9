//! Conversions between stored rows and column values and the domain types.

use std::str::FromStr;
use std::sync::Arc;

use cordon_core::{
    Message, MessageId, ModelUsage, Role, RunId, RunRecord, RunStatus, StoreError, StoredEvent,
    Thread, ThreadId, User, UserId,
};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use time::OffsetDateTime;

pub fn to_micros(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
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

pub fn user_of(row: SqliteRow) -> Result<User, StoreError> {
    Ok(User {
        id: id(UserId::parse, row.try_get("id").map_err(backend)?)?,
        username: row.try_get("username").map_err(backend)?,
        password_hash: row.try_get("password_hash").map_err(backend)?,
        created_at: from_micros(row.try_get("created_at").map_err(backend)?)?,
        token_generation: row.try_get("token_generation").map_err(backend)?,
    })
}

pub fn thread_of(row: SqliteRow) -> Result<Thread, StoreError> {
    Ok(Thread {
        id: id(ThreadId::parse, row.try_get("id").map_err(backend)?)?,
        user_id: id(UserId::parse, row.try_get("user_id").map_err(backend)?)?,
        title: row.try_get("title").map_err(backend)?,
        created_at: from_micros(row.try_get("created_at").map_err(backend)?)?,
        updated_at: from_micros(row.try_get("updated_at").map_err(backend)?)?,
    })
}

pub fn message_of(row: SqliteRow) -> Result<Message, StoreError> {
    let role: String = row.try_get("role").map_err(backend)?;
    let run_id: Option<String> = row.try_get("run_id").map_err(backend)?;
    Ok(Message {
        id: id(MessageId::parse, row.try_get("id").map_err(backend)?)?,
        thread_id: id(ThreadId::parse, row.try_get("thread_id").map_err(backend)?)?,
        role: Role::parse(&role)
            .ok_or_else(|| StoreError::Backend(format!("unknown role `{role}`")))?,
        content: row.try_get("content").map_err(backend)?,
        run_id: run_id.map(|value| id(RunId::parse, value)).transpose()?,
        created_at: from_micros(row.try_get("created_at").map_err(backend)?)?,
    })
}

pub fn run_of(row: SqliteRow) -> Result<RunRecord, StoreError> {
    let status: String = row.try_get("status").map_err(backend)?;
    let finished_at: Option<i64> = row.try_get("finished_at").map_err(backend)?;
    Ok(RunRecord {
        id: id(RunId::parse, row.try_get("id").map_err(backend)?)?,
        user_id: id(UserId::parse, row.try_get("user_id").map_err(backend)?)?,
        thread_id: id(ThreadId::parse, row.try_get("thread_id").map_err(backend)?)?,
        agent: row.try_get("agent").map_err(backend)?,
        status: RunStatus::from_str(&status)
            .map_err(|_| StoreError::Backend(format!("unknown run status `{status}`")))?,
        created_at: from_micros(row.try_get("created_at").map_err(backend)?)?,
        finished_at: finished_at.map(from_micros).transpose()?,
        error_code: row.try_get("error_code").map_err(backend)?,
        error_message: row.try_get("error_message").map_err(backend)?,
    })
}

pub fn model_usage_of(row: SqliteRow) -> Result<ModelUsage, StoreError> {
    let count = |name: &str| -> Result<u64, StoreError> {
        let value: i64 = row.try_get(name).map_err(backend)?;
        Ok(u64::try_from(value).unwrap_or(0))
    };
    Ok(ModelUsage {
        model: row.try_get("model").map_err(backend)?,
        calls: count("calls")?,
        input_tokens: count("input_tokens")?,
        output_tokens: count("output_tokens")?,
        cost_usd: row.try_get("cost_usd").map_err(backend)?,
    })
}

pub fn event_of(row: SqliteRow) -> Result<StoredEvent, StoreError> {
    let seq: i64 = row.try_get("seq").map_err(backend)?;
    Ok(StoredEvent {
        seq: u64::try_from(seq).unwrap_or(0),
        run_id: id(RunId::parse, row.try_get("run_id").map_err(backend)?)?,
        event_type: row.try_get("event_type").map_err(backend)?,
        payload: Arc::from(row.try_get::<String, _>("payload").map_err(backend)?),
    })
}
