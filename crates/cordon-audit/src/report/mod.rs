//! Rendering of an audit result in the four `--format`s.

mod human;
mod json;
mod markdown;
mod sarif;

use crate::audit::AuditOutcome;
use crate::changes::Scope;
use crate::cli::OutputFormat;
use crate::compliance::Metric;
use crate::model::Violation;

/// What a report shows: the outcome, the violations to list, and baseline context.
pub struct View<'a> {
    pub outcome: &'a AuditOutcome,
    /// All violations, or only the new ones when a baseline is in use.
    pub listed: &'a [Violation],
    /// `Some(known)` when a baseline filtered the list.
    pub baselined: Option<usize>,
    pub metrics: Vec<Metric>,
    /// With `--changed-since`: what changed, and the findings left out as context.
    pub scope: Option<&'a Scope>,
}

impl View<'_> {
    /// The heading of the listed violations.
    pub fn listing_title(&self) -> &'static str {
        match (self.scope.is_some(), self.baselined.is_some()) {
            (true, true) => "New violations touching changed files",
            (true, false) => "Violations touching changed files",
            (false, true) => "New violations",
            (false, false) => "Violations",
        }
    }

    /// One line on a `--changed-since` run, if it is one.
    pub fn scope_line(&self) -> Option<String> {
        self.scope.map(|s| {
            format!(
                "Changed since `{}`: {} file(s); {} violation(s) in other files are context, not listed",
                s.rev, s.files_changed, s.elsewhere
            )
        })
    }
}

pub fn render(view: &View, format: OutputFormat) -> String {
    match format {
        OutputFormat::Human => human::render(view),
        OutputFormat::Json => json::render(view),
        OutputFormat::Sarif => sarif::render(view),
        OutputFormat::Markdown => markdown::render(view),
    }
}

pub use markdown::{metrics_table, related_items};

/// Files ranked by weighted violations (ties by name), for "top offenders".
pub fn top_offenders(view: &View, limit: usize) -> Vec<(String, usize, f64)> {
    let weights = &view.outcome.compliance.weights;
    let mut per_file: std::collections::BTreeMap<&str, (usize, f64)> = Default::default();
    for v in &view.outcome.violations {
        let e = per_file.entry(&v.file).or_default();
        e.0 += 1;
        e.1 += weights.get(v.rule.id()).copied().unwrap_or(1.0);
    }
    let mut ranked: Vec<(String, usize, f64)> = per_file
        .into_iter()
        .map(|(f, (n, w))| (f.to_string(), n, w))
        .collect();
    ranked.sort_by(|a, b| b.2.total_cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
    ranked.truncate(limit);
    ranked
}
