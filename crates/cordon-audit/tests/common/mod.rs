//! Helpers shared by the integration tests: fixture paths, CLI parsing, tree copies.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use cordon_audit::{AuditArgs, AuditOutcome, Config};

pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/audit");

/// This crate's own fixture repositories (the near-miss ones).
pub const CRATE_FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// The vendored SARIF 2.1.0 JSON schema (see its README).
pub fn sarif_schema() -> PathBuf {
    Path::new(FIXTURES).join("../sarif/sarif-2.1.0-rtm.5.json")
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(FIXTURES).join(name)
}

pub fn audit_fixture(name: &str) -> AuditOutcome {
    audit_at(&fixture(name))
}

pub fn audit_at(root: &Path) -> AuditOutcome {
    let config = Config::load(root, None).expect("config loads");
    cordon_audit::audit(root, &config).expect("audit runs")
}

/// (rule id, file, line) triples, the shape the exact-set assertions compare.
pub fn found(outcome: &AuditOutcome) -> Vec<(String, String, usize)> {
    outcome
        .violations
        .iter()
        .map(|v| (v.rule.id().to_string(), v.file.clone(), v.line))
        .collect()
}

/// Each group finding's region and its related places' regions, in order.
pub type Region<'a> = (&'a str, usize, usize);

pub fn groups(outcome: &AuditOutcome) -> Vec<(Region<'_>, Vec<Region<'_>>)> {
    outcome
        .violations
        .iter()
        .filter(|v| !v.related.is_empty())
        .map(|v| {
            let related = v
                .related
                .iter()
                .map(|r| (r.file.as_str(), r.line, r.end_line))
                .collect();
            ((v.file.as_str(), v.line, v.end_line), related)
        })
        .collect()
}

pub fn triples(items: &[(&str, &str, usize)]) -> Vec<(String, String, usize)> {
    let mut v: Vec<_> = items
        .iter()
        .map(|(r, f, l)| (r.to_string(), f.to_string(), *l))
        .collect();
    v.sort_by(|a, b| (&a.1, a.2, &a.0).cmp(&(&b.1, b.2, &b.0)));
    v
}

/// Mirrors how the `cordon` binary embeds `AuditArgs` (`cordon audit ...`).
#[derive(Parser)]
#[command(name = "cordon")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Audit(AuditArgs),
}

pub fn parse(args: &[&str]) -> AuditArgs {
    let mut full = vec!["cordon", "audit"];
    full.extend_from_slice(args);
    match Cli::try_parse_from(full).expect("arguments parse").command {
        Command::Audit(a) => a,
    }
}

/// Runs `cordon audit ARGS` in-process and returns the exit code.
pub fn run(args: &[&str]) -> i32 {
    cordon_audit::run(parse(args))
}

pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).expect("read file")
}
