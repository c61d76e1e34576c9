//! Library error type: everything that maps to exit code 2 (usage/config error).

use std::path::PathBuf;

/// An error that stops the audit before any verdict (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid config {path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("invalid glob `{glob}`: {message}")]
    Glob { glob: String, message: String },
    #[error("invalid baseline {path}: {message}")]
    Baseline { path: PathBuf, message: String },
    #[error("{0} is not a directory")]
    NotADirectory(PathBuf),
    #[error("--changed-since {rev}: {message}")]
    ChangedSince { rev: String, message: String },
    #[error("cannot run `{program}`: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
}
