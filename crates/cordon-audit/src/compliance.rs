//! The compliance figure and the metrics table (target, achieved, status).
//!
//! `compliance = 100 × (1 − weighted violations / checked units)`, capped at 0, where
//! checked units = files checked + production functions checked.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::Config;
use crate::model::{Rule, Violation};

/// Everything needed to recompute the figure by hand.
#[derive(Clone, Debug, Serialize)]
pub struct Compliance {
    pub files_checked: usize,
    pub functions_checked: usize,
    pub units: usize,
    pub weighted_violations: f64,
    /// Percentage rounded to 4 decimals (display uses 2).
    pub compliance: f64,
    pub target: f64,
    pub counts: BTreeMap<String, usize>,
    pub weights: BTreeMap<String, f64>,
}

pub fn compute(
    violations: &[Violation],
    files: usize,
    functions: usize,
    config: &Config,
) -> Compliance {
    let counts: BTreeMap<String, usize> = Rule::ALL
        .iter()
        .map(|r| {
            (
                r.id().to_string(),
                violations.iter().filter(|v| v.rule == *r).count(),
            )
        })
        .collect();
    let weights: BTreeMap<String, f64> = Rule::ALL
        .iter()
        .map(|r| (r.id().to_string(), config.weights.of(*r)))
        .collect();
    let weighted = violations
        .iter()
        .fold(0.0, |acc, v| acc + config.weights.of(v.rule));
    let units = files + functions;
    let raw = if units == 0 {
        100.0
    } else {
        (100.0 * (1.0 - weighted / units as f64)).max(0.0)
    };
    Compliance {
        files_checked: files,
        functions_checked: functions,
        units,
        weighted_violations: weighted,
        compliance: (raw * 10_000.0).round() / 10_000.0,
        target: config.targets.compliance,
        counts,
        weights,
    }
}

impl Compliance {
    /// `100 × (1 − 3.25 / 20) = 83.75%`
    pub fn formula(&self) -> String {
        format!(
            "compliance = 100 × (1 − weighted violations / checked units) = 100 × (1 − {} / {}) = {:.2}%",
            trim(self.weighted_violations),
            self.units,
            self.compliance
        )
    }

    pub fn units_line(&self) -> String {
        let weights: Vec<String> = Rule::ALL
            .map(Rule::id)
            .iter()
            .map(|r| format!("{r} {}", trim(self.weights.get(*r).copied().unwrap_or(1.0))))
            .collect();
        format!(
            "checked units = {} files + {} production functions = {}; weights: {}",
            self.files_checked,
            self.functions_checked,
            self.units,
            weights.join(", ")
        )
    }
}

/// Prints floats without trailing zeros (`1`, `0.25`, `3.5`).
pub fn trim(x: f64) -> String {
    let s = format!("{x:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Exceeded,
    Achieved,
    Missed,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Exceeded => "EXCEEDED",
            Status::Achieved => "ACHIEVED",
            Status::Missed => "MISSED",
        }
    }

    fn at_least(achieved: f64, target: f64) -> Status {
        if (achieved - target).abs() < 1e-9 {
            Status::Achieved
        } else if achieved > target {
            Status::Exceeded
        } else {
            Status::Missed
        }
    }

    fn at_most(achieved: usize, target: usize) -> Status {
        match achieved.cmp(&target) {
            std::cmp::Ordering::Less => Status::Exceeded,
            std::cmp::Ordering::Equal => Status::Achieved,
            std::cmp::Ordering::Greater => Status::Missed,
        }
    }
}

/// One row of the metrics table.
#[derive(Clone, Debug, Serialize)]
pub struct Metric {
    pub metric: String,
    pub target: String,
    pub achieved: String,
    pub status: Status,
}

/// Compliance row, configured per-rule ceilings, and (with a baseline) new violations.
pub fn metrics(c: &Compliance, config: &Config, new_violations: Option<usize>) -> Vec<Metric> {
    let mut rows = vec![Metric {
        metric: "Compliance".to_string(),
        target: format!(">= {:.2}%", c.target),
        achieved: format!("{:.2}%", c.compliance),
        status: Status::at_least(c.compliance, c.target),
    }];
    for (rule, max) in &config.targets.max_violations {
        let achieved = c.counts.get(rule).copied().unwrap_or(0);
        rows.push(Metric {
            metric: format!("{rule} violations"),
            target: format!("<= {max}"),
            achieved: achieved.to_string(),
            status: Status::at_most(achieved, *max),
        });
    }
    if let Some(new) = new_violations {
        rows.push(Metric {
            metric: "New violations vs baseline".to_string(),
            target: "<= 0".to_string(),
            achieved: new.to_string(),
            status: Status::at_most(new, 0),
        });
    }
    rows
}

/// The gate of a `--changed-since` run: no finding touches a changed file.
pub fn changed_files_metric(touching: usize) -> Metric {
    Metric {
        metric: "Violations touching changed files".to_string(),
        target: "<= 0".to_string(),
        achieved: touching.to_string(),
        status: Status::at_most(touching, 0),
    }
}
