//! One audit run: walk, parse every file once in parallel, evaluate rules, compute compliance.

use std::path::{Path, PathBuf};

use globset::{Glob, GlobSet};
use rayon::prelude::*;

use crate::compliance::{self, Compliance};
use crate::config::{Config, glob_set};
use crate::error::AuditError;
use crate::model::{Violation, Warning};
use crate::parse::{self, FileFacts};
use crate::rules::{self, LimitOverride};
use crate::testpath;
use crate::walk::{self, SourceFile};

/// The result of auditing a tree (before any baseline filtering).
#[derive(Clone, Debug)]
pub struct AuditOutcome {
    pub root: PathBuf,
    /// Sorted by file, line, rule.
    pub violations: Vec<Violation>,
    pub warnings: Vec<Warning>,
    pub compliance: Compliance,
}

/// Audits `root` with `config`; unparsable files become warnings, never errors.
pub fn audit(root: &Path, config: &Config) -> Result<AuditOutcome, AuditError> {
    if !root.is_dir() {
        return Err(AuditError::NotADirectory(root.to_path_buf()));
    }
    let exclude = glob_set(&config.exclude)?;
    let tests = glob_set(&config.test_globs)?;
    let overrides = compile_overrides(config)?;
    let mut warnings = Vec::new();
    let files = walk::collect(root, &exclude, &mut warnings);
    let min_lines = config.duplicates.min_lines;
    let scanned: Vec<Result<FileFacts, Warning>> = files
        .par_iter()
        .map(|f| scan(f, &tests, min_lines))
        .collect();
    let mut facts = Vec::with_capacity(scanned.len());
    for r in scanned {
        match r {
            Ok(f) => facts.push(f),
            Err(w) => warnings.push(w),
        }
    }
    let violations = rules::evaluate(&facts, config, &overrides);
    let functions = rules::functions_checked(&facts);
    let compliance = compliance::compute(&violations, facts.len(), functions, config);
    Ok(AuditOutcome {
        root: root.to_path_buf(),
        violations,
        warnings,
        compliance,
    })
}

fn scan(file: &SourceFile, tests: &GlobSet, min_lines: usize) -> Result<FileFacts, Warning> {
    let warn = |message: String| Warning {
        file: file.rel.clone(),
        message,
    };
    let bytes = std::fs::read(&file.abs).map_err(|e| warn(format!("cannot read: {e}")))?;
    let source =
        String::from_utf8(bytes).map_err(|_| warn("not valid UTF-8; file skipped".into()))?;
    let is_test = testpath::is_test(&file.rel, file.lang, tests);
    parse::extract(&file.rel, file.lang, &source, is_test, min_lines).map_err(warn)
}

fn compile_overrides(config: &Config) -> Result<Vec<LimitOverride>, AuditError> {
    config
        .file_size
        .overrides
        .iter()
        .map(|o| {
            let glob = Glob::new(&o.glob).map_err(|e| AuditError::Glob {
                glob: o.glob.clone(),
                message: e.to_string(),
            })?;
            Ok((glob.compile_matcher(), o.glob.clone(), o.max_lines))
        })
        .collect()
}
