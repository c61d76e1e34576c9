//! `cordon audit`: single-source-of-truth compliance auditor (issue 4).
//!
//! The pipeline is walk → parse (in parallel: Python by its own tokenizer, TypeScript and Rust by
//! tree-sitter) → rules → compliance → report. The `cordon` binary only calls [`run`] with parsed
//! [`AuditArgs`].

mod audit;
mod baseline;
mod changes;
mod cli;
mod close_report;
mod compliance;
mod config;
mod error;
mod evaluation;
mod gh;
mod health;
mod lang;
mod model;
mod normalize;
mod parse;
mod report;
mod rules;
mod similarity;
mod testpath;
mod walk;

pub use audit::{AuditOutcome, audit};
pub use baseline::Baseline;
pub use cli::{
    AuditArgs, AuditCommand, CloseReportArgs, OutputFormat, ScanArgs, run, run_with_path_env,
};
pub use compliance::{Compliance, Metric, Status};
pub use config::Config;
pub use error::AuditError;
pub use model::{Rule, Violation, Warning};
