//! file-size and function-size rules.

use crate::config::FileSize;
use crate::model::{Rule, Violation};
use crate::parse::{FileFacts, UnitKind};

use super::LimitOverride;

/// One violation at most per file; the reported line is the first line past the limit.
pub fn file_size(f: &FileFacts, cfg: &FileSize, overrides: &[LimitOverride]) -> Option<Violation> {
    let total = f.total_lines;
    let (lines, limit, what) =
        if let Some((_, glob, limit)) = overrides.iter().find(|(m, _, _)| m.is_match(&f.rel)) {
            (total, *limit, format!("limit for `{glob}`"))
        } else if f.is_test {
            (total, cfg.max_test_lines, "test-file limit".to_string())
        } else if total - f.test_lines > cfg.max_lines {
            (
                total - f.test_lines,
                cfg.max_lines,
                "production limit".to_string(),
            )
        } else {
            // In-file test modules may grow the file up to the test limit.
            (
                total,
                cfg.max_test_lines,
                "test-file limit (file has test modules)".to_string(),
            )
        };
    (lines > limit).then(|| {
        Violation::new(
            Rule::FileSize,
            &f.rel,
            (limit + 1).min(total).max(1),
            format!("file has {lines} lines, over the {what} of {limit}"),
            "file".to_string(),
        )
        .spanning(total)
    })
}

/// Production functions longer than `max_lines` (inclusive line span of the
/// definition, without a Python docstring: documentation is not what makes a
/// function too long).
pub fn function_size(f: &FileFacts, max_lines: usize) -> Vec<Violation> {
    f.units
        .iter()
        .filter(|u| u.kind == UnitKind::Function && !u.in_test && u.code_lines() > max_lines)
        .map(|u| {
            Violation::new(
                Rule::FunctionSize,
                &f.rel,
                u.start_line,
                format!(
                    "function `{}` has {} lines, over the limit of {max_lines}",
                    u.name,
                    u.code_lines()
                ),
                format!("fn:{}", u.name),
            )
            .spanning(u.end_line)
        })
        .collect()
}
