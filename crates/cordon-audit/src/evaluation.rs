//! An audit plus its verdict: baseline filtering, metrics and the exit code.

use std::path::Path;

use crate::audit::{AuditOutcome, audit};
use crate::baseline::Baseline;
use crate::compliance::{self, Metric, Status};
use crate::config::Config;
use crate::error::AuditError;
use crate::model::Violation;

/// Exit codes documented in docs/audit.md.
pub const EXIT_OK: i32 = 0;
pub const EXIT_FAIL: i32 = 1;
pub const EXIT_USAGE: i32 = 2;

pub struct Evaluation {
    pub outcome: AuditOutcome,
    pub baseline: Option<Baseline>,
    /// All violations, or only those not in the baseline.
    pub listed: Vec<Violation>,
    pub metrics: Vec<Metric>,
    pub exit: i32,
}

pub fn evaluate(
    root: &Path,
    config: Option<&Path>,
    baseline: Option<&Path>,
) -> Result<Evaluation, AuditError> {
    let config = Config::load(root, config)?;
    let outcome = audit(root, &config)?;
    let baseline = baseline.map(Baseline::load).transpose()?;
    let listed = match &baseline {
        Some(b) => b.new_violations(&outcome.violations),
        None => outcome.violations.clone(),
    };
    let metrics = compliance::metrics(
        &outcome.compliance,
        &config,
        baseline.as_ref().map(|_| listed.len()),
    );
    // With a baseline only regressions fail (ratchet); without one, any missed target fails.
    let failed = if baseline.is_some() {
        !listed.is_empty()
    } else {
        metrics.iter().any(|m| m.status == Status::Missed)
    };
    Ok(Evaluation {
        outcome,
        baseline,
        listed,
        metrics,
        exit: if failed { EXIT_FAIL } else { EXIT_OK },
    })
}

impl Evaluation {
    /// Violations the baseline already knew about.
    pub fn known(&self) -> Option<usize> {
        self.baseline
            .as_ref()
            .map(|_| self.outcome.violations.len() - self.listed.len())
    }
}
