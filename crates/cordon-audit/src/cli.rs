//! Command-line surface of `cordon audit` (clap args) and the `run` entry point.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};

use crate::baseline::Baseline;
use crate::changes::Changes;
use crate::close_report;
use crate::error::AuditError;
use crate::evaluation::{EXIT_OK, EXIT_USAGE, evaluate};
use crate::report::{self, View};

/// `cordon audit [PATH] [options]` or `cordon audit close-report ...`.
#[derive(Args, Debug, Clone)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: Option<AuditCommand>,
    #[command(flatten)]
    pub scan: ScanArgs,
}

#[derive(Subcommand, Debug, Clone)]
pub enum AuditCommand {
    /// Write a Markdown closure report for an issue (and optionally close it via `gh`).
    CloseReport(CloseReportArgs),
}

/// Options of a plain audit run.
#[derive(Args, Debug, Clone)]
pub struct ScanArgs {
    /// Repository root to audit.
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// Config file (default: PATH/cordon-audit.toml if present).
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub format: OutputFormat,
    /// Report only violations not recorded in this baseline; exit 1 if any.
    #[arg(long, conflicts_with = "write_baseline")]
    pub baseline: Option<PathBuf>,
    /// Record the current violations in this file and exit 0.
    #[arg(long)]
    pub write_baseline: Option<PathBuf>,
    /// List (and fail on) only violations touching files changed since the merge base of
    /// this git revision and HEAD, working tree included; the rest are counted as context.
    #[arg(long, value_name = "REV", conflicts_with = "write_baseline")]
    pub changed_since: Option<String>,
    /// Write the report to this file instead of stdout.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Human,
    Json,
    Sarif,
    Markdown,
}

/// Options of `cordon audit close-report`.
#[derive(Args, Debug, Clone)]
pub struct CloseReportArgs {
    #[arg(long)]
    pub issue: u64,
    /// OWNER/NAME of the GitHub repository.
    #[arg(long, value_parser = parse_repo)]
    pub repo: String,
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// Deployment health endpoint to GET (status and latency go into the report).
    #[arg(long)]
    pub health_url: Option<String>,
    /// Run the `gh` commands and append an execution log to the report.
    #[arg(long)]
    pub execute: bool,
    /// `gh` program to run (default: `gh` found on PATH).
    #[arg(long)]
    pub gh: Option<PathBuf>,
    /// Label removed from the issue.
    #[arg(long, default_value = "in-progress")]
    pub remove_label: String,
    /// Report file (default: cordon-closure-report-N.md in the temp dir).
    #[arg(long)]
    pub output: Option<PathBuf>,
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Repository root to audit.
    #[arg(default_value = ".")]
    pub path: PathBuf,
}

fn parse_repo(s: &str) -> Result<String, String> {
    match s.split_once('/') {
        Some((o, n)) if !o.is_empty() && !n.is_empty() && !n.contains('/') => Ok(s.to_string()),
        _ => Err(format!("expected OWNER/NAME, got `{s}`")),
    }
}

/// Runs `cordon audit` and returns the exit code (0 ok, 1 fail/regression, 2 usage/config error).
pub fn run(args: AuditArgs) -> i32 {
    run_with_path_env(args, None)
}

/// Like [`run`], but `gh` (for `close-report --execute`) is looked up in and run
/// with `path_env` instead of the inherited PATH.
pub fn run_with_path_env(args: AuditArgs, path_env: Option<OsString>) -> i32 {
    let result = match &args.command {
        Some(AuditCommand::CloseReport(a)) => close_report::run(a, path_env),
        None => run_scan(&args.scan),
    };
    result.unwrap_or_else(|e| {
        eprintln!("cordon audit: error: {e}");
        EXIT_USAGE
    })
}

fn run_scan(a: &ScanArgs) -> Result<i32, AuditError> {
    let mut eval = evaluate(&a.path, a.config.as_deref(), a.baseline.as_deref())?;
    if let Some(rev) = &a.changed_since {
        eval = eval.only_touching(&Changes::since(&a.path, rev)?);
    }
    if a.format != OutputFormat::Human {
        // Machine formats own stdout; unparsable files are still surfaced.
        for w in &eval.outcome.warnings {
            eprintln!("warning: {}: {}", w.file, w.message);
        }
    }
    let view = View {
        outcome: &eval.outcome,
        listed: &eval.listed,
        baselined: eval.known(),
        metrics: eval.metrics.clone(),
        scope: eval.scope.as_ref(),
    };
    emit(&report::render(&view, a.format), a.output.as_deref())?;
    if let Some(path) = &a.write_baseline {
        Baseline::from_violations(&eval.outcome.violations).save(path)?;
        eprintln!(
            "cordon audit: wrote {} violation(s) to baseline {}",
            eval.outcome.violations.len(),
            path.display()
        );
        return Ok(EXIT_OK);
    }
    Ok(eval.exit)
}

pub(crate) fn emit(text: &str, output: Option<&Path>) -> Result<(), AuditError> {
    match output {
        Some(path) => std::fs::write(path, text).map_err(|source| AuditError::Write {
            path: path.to_path_buf(),
            source,
        }),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}
