//! cordon-analytics: every finished run and model call, written to ClickHouse outside the serving database, and the usage report read back.
//!
//! `ClickHouseAnalytics` is the engine's `AnalyticsSink`: rows go into a
//! bounded buffer that never blocks a run (past the bound new rows are
//! dropped and counted) and a flusher task writes them in batches, retrying
//! with backoff while ClickHouse is away. `Warehouse` is the one module
//! that speaks to ClickHouse: the schema, the inserts and the report's
//! queries.

mod buffer;
mod config;
mod report;
mod rows;
mod warehouse;

pub use buffer::ClickHouseAnalytics;
pub use config::{ClickHouseConfig, DEFAULT_BUFFER_ROWS};
pub use report::{Durations, ErrorCount, UsageByModel, UsageByUser, UsageRange, UsageReport};
pub use warehouse::Warehouse;

/// Why ClickHouse could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    #[error("invalid ClickHouse URL: {0}")]
    InvalidUrl(String),
    #[error("ClickHouse: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),
}
