//! `--changed-since REV`: the files a pull request changed, from git, and the findings that touch them.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use crate::error::AuditError;
use crate::model::Violation;

/// Files changed since the merge base of `rev` and `HEAD`: committed,
/// staged, unstaged and untracked (not ignored), relative to the audited
/// root, `/`-separated like every reported path.
#[derive(Debug, Clone)]
pub struct Changes {
    pub rev: String,
    pub files: BTreeSet<String>,
}

impl Changes {
    pub fn since(root: &Path, rev: &str) -> Result<Changes, AuditError> {
        if rev.starts_with('-') {
            return Err(git_error(rev, "a revision cannot start with `-`"));
        }
        let base = git(root, &["merge-base", rev, "HEAD"], rev)?;
        let base = base.trim();
        let mut files = nul_separated(&git(
            root,
            &[
                "diff",
                "--name-only",
                "--relative",
                "--no-renames",
                "-z",
                base,
                "--",
            ],
            rev,
        )?);
        files.extend(nul_separated(&git(
            root,
            &["ls-files", "--others", "--exclude-standard", "-z"],
            rev,
        )?));
        Ok(Changes {
            rev: rev.to_string(),
            files,
        })
    }

    /// How many files changed (for the report).
    pub fn scope(&self, elsewhere: usize) -> Scope {
        Scope {
            rev: self.rev.clone(),
            files_changed: self.files.len(),
            elsewhere,
        }
    }

    /// Whether the finding is at, or has a related place in, a changed file.
    pub fn touches(&self, v: &Violation) -> bool {
        std::iter::once(&v.file)
            .chain(v.related.iter().map(|r| &r.file))
            .any(|file| self.files.contains(file))
    }
}

/// What a report says about a `--changed-since` run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub rev: String,
    pub files_changed: usize,
    /// Findings (after the baseline) in unchanged files only: context, not listed.
    pub elsewhere: usize,
}

fn git(root: &Path, args: &[&str], rev: &str) -> Result<String, AuditError> {
    let out = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .output()
        .map_err(|source| AuditError::Spawn {
            program: "git".to_string(),
            source,
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(git_error(rev, stderr.trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn git_error(rev: &str, message: &str) -> AuditError {
    AuditError::ChangedSince {
        rev: rev.to_string(),
        message: message.to_string(),
    }
}

fn nul_separated(text: &str) -> BTreeSet<String> {
    text.split('\0')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}
