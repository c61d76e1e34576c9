//! Which files are tests: built-in conventions per language plus configured globs.

use globset::GlobSet;

use crate::lang::Lang;

/// Test directories (`tests/`, `test/`, `__tests__/`) and test file names
/// (`test_*.py`, `*_test.py`, `conftest.py`, `*.test.ts(x)`, `*.spec.ts(x)`, `*_test.rs`).
pub fn is_test(rel: &str, lang: Lang, extra: &GlobSet) -> bool {
    if extra.is_match(rel) {
        return true;
    }
    let mut parts: Vec<&str> = rel.split('/').collect();
    let name = parts.pop().unwrap_or("");
    if parts
        .iter()
        .any(|d| matches!(*d, "tests" | "test" | "__tests__"))
    {
        return true;
    }
    match lang {
        Lang::Python => {
            name.starts_with("test_") || name.ends_with("_test.py") || name == "conftest.py"
        }
        Lang::TypeScript | Lang::Tsx => [".test.", ".spec."].iter().any(|m| name.contains(m)),
        Lang::Rust => name.ends_with("_test.rs") || name == "tests.rs",
    }
}
