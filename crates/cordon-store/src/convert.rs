//! Conversions between stored column values and domain types.

use cordon_core::StoreError;
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

/// Rebuilds a validated id from a stored column; a bad one means corruption.
pub fn id<T, E: std::fmt::Display>(
    parse: impl FnOnce(String) -> Result<T, E>,
    value: String,
) -> Result<T, StoreError> {
    parse(value).map_err(|error| StoreError::Backend(format!("stored id is invalid: {error}")))
}
