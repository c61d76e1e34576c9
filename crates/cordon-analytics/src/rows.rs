//! The rows of ClickHouse's two tables, as the engine's analytics records become them (times as `DateTime` seconds, no error as `''`).

use cordon_core::{FinishedRun, ModelCall};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// `cordon_runs`: one finished run.
#[derive(Debug, Clone, PartialEq, clickhouse::Row, Serialize, Deserialize)]
pub(crate) struct RunRow {
    pub finished_at: u32,
    pub started_at: u32,
    pub duration_ms: u64,
    pub user_id: String,
    pub thread_id: String,
    pub run_id: String,
    pub agent: String,
    pub model: String,
    pub status: String,
    pub error_code: String,
}

/// `cordon_model_calls`: one model call.
#[derive(Debug, Clone, PartialEq, clickhouse::Row, Serialize, Deserialize)]
pub(crate) struct CallRow {
    pub started_at: u32,
    pub duration_ms: u64,
    pub user_id: String,
    pub thread_id: String,
    pub run_id: String,
    pub agent: String,
    pub model: String,
    pub error_code: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
}

/// Seconds since the epoch as ClickHouse's `DateTime` (`UInt32`) holds them.
pub(crate) fn seconds(at: OffsetDateTime) -> u32 {
    u32::try_from(at.unix_timestamp()).unwrap_or(0)
}

impl From<FinishedRun> for RunRow {
    fn from(run: FinishedRun) -> Self {
        let duration = run.finished_at - run.started_at;
        Self {
            finished_at: seconds(run.finished_at),
            started_at: seconds(run.started_at),
            duration_ms: u64::try_from(duration.whole_milliseconds()).unwrap_or(0),
            user_id: run.user_id.to_string(),
            thread_id: run.thread_id.to_string(),
            run_id: run.run_id.to_string(),
            agent: run.agent,
            model: run.model,
            status: run.status.as_str().to_owned(),
            error_code: run.error_code.unwrap_or_default(),
        }
    }
}

impl From<ModelCall> for CallRow {
    fn from(call: ModelCall) -> Self {
        Self {
            started_at: seconds(call.started_at),
            duration_ms: call.duration_ms,
            user_id: call.user_id.to_string(),
            thread_id: call.thread_id.to_string(),
            run_id: call.run_id.to_string(),
            agent: call.agent,
            model: call.model,
            error_code: call.error_code.unwrap_or_default(),
            input_tokens: call.input_tokens,
            output_tokens: call.output_tokens,
            cost_usd: call.cost_usd,
        }
    }
}
