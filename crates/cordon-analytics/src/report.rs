//! The usage report `cordon analytics` prints and `GET /api/admin/usage` answers: runs, tokens and cost per user and per model over a time range, runs' errors by code and their p50/p99 durations.

use clickhouse::Row;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageRange {
    pub from: OffsetDateTime,
    pub to: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct UsageByUser {
    pub user_id: String,
    pub runs: u64,
    /// Runs that did not complete.
    pub failed_runs: u64,
    pub model_calls: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
}

#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct UsageByModel {
    pub model: String,
    pub calls: u64,
    pub failed_calls: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Runs that ended with `code`, and their share of all runs in the range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorCount {
    pub code: String,
    pub runs: u64,
    pub rate: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Row, Serialize, Deserialize)]
pub struct Durations {
    pub runs: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageReport {
    #[serde(with = "time::serde::rfc3339")]
    pub from: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub to: OffsetDateTime,
    /// All runs: how many, and their p50/p99 durations.
    pub runs: Durations,
    /// Most expensive first.
    pub by_user: Vec<UsageByUser>,
    pub by_model: Vec<UsageByModel>,
    pub errors: Vec<ErrorCount>,
}

impl UsageReport {
    pub(crate) fn new(
        range: UsageRange,
        mut by_user: Vec<UsageByUser>,
        by_model: Vec<UsageByModel>,
        mut errors: Vec<ErrorCount>,
        runs: Durations,
    ) -> Self {
        by_user.sort_by(|a, b| {
            b.cost_usd
                .total_cmp(&a.cost_usd)
                .then(b.runs.cmp(&a.runs))
                .then_with(|| a.user_id.cmp(&b.user_id))
        });
        for error in &mut errors {
            error.rate = error.runs as f64 / runs.runs.max(1) as f64;
        }
        // ClickHouse's quantile of no rows is NaN, which JSON cannot carry.
        let finite = |ms: f64| if ms.is_finite() { ms } else { 0.0 };
        let runs = Durations {
            p50_ms: finite(runs.p50_ms),
            p99_ms: finite(runs.p99_ms),
            ..runs
        };
        Self {
            from: range.from,
            to: range.to,
            runs,
            by_user,
            by_model,
            errors,
        }
    }
}

impl UsageReport {
    /// The report as plain-text tables, for a terminal.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let format = time::format_description::well_known::Rfc3339;
        let (from, to) = (
            self.from.format(&format).unwrap_or_default(),
            self.to.format(&format).unwrap_or_default(),
        );
        let _ = writeln!(out, "cordon usage from {from} to {to}");
        let _ = writeln!(
            out,
            "runs: {}   p50 {:.0} ms   p99 {:.0} ms\n",
            self.runs.runs, self.runs.p50_ms, self.runs.p99_ms
        );
        let _ = writeln!(
            out,
            "{:<38} {:>6} {:>6} {:>7} {:>10} {:>10} {:>10}",
            "user", "runs", "failed", "calls", "in tok", "out tok", "cost $"
        );
        for u in &self.by_user {
            let _ = writeln!(
                out,
                "{:<38} {:>6} {:>6} {:>7} {:>10} {:>10} {:>10.4}",
                u.user_id,
                u.runs,
                u.failed_runs,
                u.model_calls,
                u.input_tokens,
                u.output_tokens,
                u.cost_usd
            );
        }
        let _ = writeln!(
            out,
            "\n{:<28} {:>7} {:>6} {:>10} {:>10} {:>10} {:>8} {:>8}",
            "model", "calls", "failed", "in tok", "out tok", "cost $", "p50 ms", "p99 ms"
        );
        for m in &self.by_model {
            let _ = writeln!(
                out,
                "{:<28} {:>7} {:>6} {:>10} {:>10} {:>10.4} {:>8.0} {:>8.0}",
                m.model,
                m.calls,
                m.failed_calls,
                m.input_tokens,
                m.output_tokens,
                m.cost_usd,
                m.p50_ms,
                m.p99_ms
            );
        }
        let _ = writeln!(out, "\n{:<28} {:>7} {:>7}", "error", "runs", "rate");
        for e in &self.errors {
            let _ = writeln!(out, "{:<28} {:>7} {:>6.1}%", e.code, e.runs, e.rate * 100.0);
        }
        out
    }
}
