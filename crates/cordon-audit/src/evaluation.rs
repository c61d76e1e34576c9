//! An audit plus its verdict: baseline filtering, metrics and the exit code.

use std::path::Path;

use crate::audit::{AuditOutcome, audit};
use crate::baseline::Baseline;
use crate::changes::{Changes, Scope};
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
    /// Set by [`Evaluation::only_touching`].
    pub scope: Option<Scope>,
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
        scope: None,
    })
}

impl Evaluation {
    /// A pull request's view: lists only the findings that touch a changed
    /// file (the rest are counted as context), and fails only on those.
    pub fn only_touching(mut self, changes: &Changes) -> Evaluation {
        let (touching, elsewhere): (Vec<Violation>, Vec<Violation>) =
            self.listed.into_iter().partition(|v| changes.touches(v));
        self.listed = touching;
        self.scope = Some(changes.scope(elsewhere.len()));
        let metric = compliance::changed_files_metric(self.listed.len());
        self.exit = if metric.status == Status::Missed {
            EXIT_FAIL
        } else {
            EXIT_OK
        };
        self.metrics.push(metric);
        self
    }

    /// Violations the baseline already knew about.
    pub fn known(&self) -> Option<usize> {
        self.baseline
            .as_ref()
            .map(|_| self.outcome.violations.len() - self.listed.len())
    }
}
