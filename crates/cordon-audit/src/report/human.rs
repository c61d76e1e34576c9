//! Terminal summary: counts per rule, top offenders, violations, warnings, compliance.

use std::fmt::Write;

use super::{View, top_offenders};
use crate::compliance::trim;
use crate::model::Rule;

pub fn render(view: &View) -> String {
    let c = &view.outcome.compliance;
    let mut s = String::new();
    let _ = writeln!(s, "cordon audit: {}", view.outcome.root.display());
    let _ = writeln!(s, "\nViolations by rule:");
    for rule in Rule::ALL.map(Rule::id) {
        let n = c.counts.get(rule).copied().unwrap_or(0);
        let w = c.weights.get(rule).copied().unwrap_or(1.0);
        let _ = writeln!(s, "  {rule:<26} {n:>5}  (weight {})", trim(w));
    }
    let offenders = top_offenders(view, 5);
    if !offenders.is_empty() {
        let _ = writeln!(s, "\nTop offenders:");
        for (file, n, w) in offenders {
            let _ = writeln!(s, "  {file}  {n} violation(s), weighted {}", trim(w));
        }
    }
    if let Some(known) = view.baselined {
        let _ = writeln!(
            s,
            "\nBaseline: {known} known violation(s) suppressed, {} new",
            view.listed.len()
        );
    }
    if let Some(line) = view.scope_line() {
        let _ = writeln!(s, "\n{line}");
    }
    if !view.listed.is_empty() {
        let _ = writeln!(s, "\n{}:", view.listing_title());
        for v in view.listed {
            let _ = writeln!(
                s,
                "  {}:{}: [{}] {}",
                v.file,
                v.line,
                v.rule.id(),
                v.message
            );
            for r in &v.related {
                let _ = writeln!(
                    s,
                    "      also {}:{}-{}: {}",
                    r.file, r.line, r.end_line, r.label
                );
            }
        }
    }
    if !view.outcome.warnings.is_empty() {
        let _ = writeln!(s, "\nWarnings:");
        for w in &view.outcome.warnings {
            let _ = writeln!(s, "  warning: {}: {}", w.file, w.message);
        }
    }
    let _ = writeln!(s, "\nMetrics:");
    for m in &view.metrics {
        let _ = writeln!(
            s,
            "  {}: {} (target {}) {}",
            m.metric,
            m.achieved,
            m.target,
            m.status.label()
        );
    }
    let _ = writeln!(s, "  {}", c.formula());
    let _ = writeln!(s, "  {}", c.units_line());
    s
}
