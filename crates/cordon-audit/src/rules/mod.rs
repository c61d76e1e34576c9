//! The four rules of issue 4, evaluated over the facts of every parsed file.

mod duplicates;
mod imports;
mod near_miss;
mod size;
mod symbols;

use globset::GlobMatcher;

use crate::config::Config;
use crate::model::Violation;
use crate::parse::FileFacts;

/// A per-glob file-size limit, compiled.
pub type LimitOverride = (GlobMatcher, String, usize);

/// Runs every rule and returns violations sorted by file, line, rule, key.
pub fn evaluate(
    files: &[FileFacts],
    config: &Config,
    overrides: &[LimitOverride],
) -> Vec<Violation> {
    let mut out = Vec::new();
    out.extend(duplicates::by_name(files, &config.duplicates));
    out.extend(duplicates::by_body(files, &config.duplicates));
    out.extend(near_miss::near_misses(files, &config.duplicates));
    out.extend(imports::fragmentation(files, &config.imports));
    for file in files {
        out.extend(size::file_size(file, &config.file_size, overrides));
        out.extend(size::function_size(file, config.function_size.max_lines));
    }
    out.sort_by(|a, b| (&a.file, a.line, a.rule, &a.key).cmp(&(&b.file, b.line, b.rule, &b.key)));
    out
}

/// Functions that count as checked units: production functions (tests excluded).
pub fn functions_checked(files: &[FileFacts]) -> usize {
    files
        .iter()
        .flat_map(|f| &f.units)
        .filter(|u| u.kind == crate::parse::UnitKind::Function && !u.in_test)
        .count()
}
