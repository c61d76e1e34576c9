//! File discovery: `.gitignore`-aware walk of the root, minus configured excludes.

use std::path::{Path, PathBuf};

use globset::GlobSet;
use ignore::WalkBuilder;

use crate::lang::Lang;
use crate::model::Warning;

/// A source file to audit, with its root-relative `/`-separated path.
#[derive(Clone, Debug)]
pub struct SourceFile {
    pub abs: PathBuf,
    pub rel: String,
    pub lang: Lang,
}

/// Lists auditable files in a stable order (sorted by relative path).
pub fn collect(root: &Path, exclude: &GlobSet, warnings: &mut Vec<Warning>) -> Vec<SourceFile> {
    let root_owned = root.to_path_buf();
    let exclude_dirs = exclude.clone();
    let walker = WalkBuilder::new(root)
        // Honour .gitignore even when the root is not (yet) a git checkout.
        .require_git(false)
        .filter_entry(move |entry| {
            let rel = relative(&root_owned, entry.path());
            rel.is_empty() || !exclude_dirs.is_match(&rel)
        })
        .build();
    let mut files = Vec::new();
    for entry in walker {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                warnings.push(Warning {
                    file: String::new(),
                    message: format!("walk error: {e}"),
                });
                continue;
            }
        };
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        let Some(lang) = Lang::from_path(entry.path()) else {
            continue;
        };
        files.push(SourceFile {
            rel: relative(root, entry.path()),
            abs: entry.into_path(),
            lang,
        });
    }
    files.sort_by(|a, b| a.rel.cmp(&b.rel));
    files
}

/// Root-relative path with `/` separators (stable across platforms for baselines).
pub fn relative(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    parts.join("/")
}
