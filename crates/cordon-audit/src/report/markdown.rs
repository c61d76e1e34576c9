//! `--format markdown`: metrics table (metric, target, achieved, status) plus details.

use std::fmt::Write;

use super::View;
use crate::compliance::{Metric, trim};
use crate::model::Rule;

/// `| Metric | Target | Achieved | Status |` table, reused by the closure report.
pub fn metrics_table(metrics: &[Metric]) -> String {
    let mut s = String::from("| Metric | Target | Achieved | Status |\n|---|---|---|---|\n");
    for m in metrics {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            m.metric,
            m.target,
            m.achieved,
            m.status.label()
        );
    }
    s
}

pub fn render(view: &View) -> String {
    let c = &view.outcome.compliance;
    let mut s = String::from("## cordon audit\n\n");
    s.push_str(&metrics_table(&view.metrics));
    let _ = writeln!(s, "\n`{}`\n\n{}\n", c.formula(), c.units_line());
    s.push_str("| Rule | Violations | Weight |\n|---|---|---|\n");
    for rule in Rule::ALL.map(Rule::id) {
        let n = c.counts.get(rule).copied().unwrap_or(0);
        let w = c.weights.get(rule).copied().unwrap_or(1.0);
        let _ = writeln!(s, "| {rule} | {n} | {} |", trim(w));
    }
    if let Some(line) = view.scope_line() {
        let _ = writeln!(s, "\n{line}.");
    }
    if !view.listed.is_empty() {
        let _ = writeln!(s, "\n### {}\n", view.listing_title());
        for v in view.listed {
            let _ = writeln!(
                s,
                "- `{}:{}` **{}**: {}",
                v.file,
                v.line,
                v.rule.id(),
                v.message
            );
            s.push_str(&related_items(v));
        }
    }
    if !view.outcome.warnings.is_empty() {
        s.push_str("\n### Warnings\n\n");
        for w in &view.outcome.warnings {
            let _ = writeln!(s, "- `{}`: {}", w.file, w.message);
        }
    }
    s
}

/// A group finding's other places, as nested list items (one line each).
pub fn related_items(v: &crate::model::Violation) -> String {
    v.related
        .iter()
        .map(|r| {
            format!(
                "  - also `{}:{}-{}`: {}\n",
                r.file, r.line, r.end_line, r.label
            )
        })
        .collect()
}
