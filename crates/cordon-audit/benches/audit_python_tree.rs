//! Benchmark: audit a generated 5,000-file Python tree (benches/gen_python_tree.py at the
//! repo root), check the findings are exactly the planted ones, print files/s and jscpd's
//! time on the same tree (benches/audit_vs_jscpd.sh adds peak memory and a real tree).
//!
//! Run: `cargo bench -p cordon-audit --bench audit_python_tree`
//! Env: AUDIT_BENCH_FILES (5000), AUDIT_BENCH_RUNS (5), JSCPD (path to a jscpd binary).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cordon_audit::{AuditOutcome, Config, Rule};

const GENERATOR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../benches/gen_python_tree.py"
);
const JSCPD_VERSION: &str = "5.3.3";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn generate(dir: &Path, files: usize) -> serde_json::Value {
    let out = Command::new("python3")
        .arg(GENERATOR)
        .arg(dir)
        .args(["--files", &files.to_string()])
        .output()
        .expect("python3 runs the generator");
    assert!(
        out.status.success(),
        "generator failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("generator prints planted counts as JSON")
}

fn count(outcome: &AuditOutcome, rule: Rule, key_prefix: &str) -> u64 {
    outcome
        .violations
        .iter()
        .filter(|v| v.rule == rule && v.key.starts_with(key_prefix))
        .count() as u64
}

/// Checks the audit found exactly the planted findings; returns false on any mismatch.
fn verify(outcome: &AuditOutcome, planted: &serde_json::Value) -> bool {
    let checks = [
        (
            "duplicate bodies",
            count(outcome, Rule::DuplicateImplementation, "body:"),
            "duplicate_bodies",
        ),
        (
            "near-miss copies",
            count(outcome, Rule::DuplicateImplementation, "near:"),
            "near_miss_copies",
        ),
        (
            "duplicate names",
            count(outcome, Rule::DuplicateImplementation, "name:"),
            "duplicate_names",
        ),
        (
            "fragmented imports",
            count(outcome, Rule::ImportFragmentation, "fragment:"),
            "fragmented_imports",
        ),
        (
            "oversized files",
            count(outcome, Rule::FileSize, ""),
            "oversized_files",
        ),
    ];
    // No finding beyond the planted ones (the traps included).
    let mut ok = outcome.violations.len() as u64 == checks.iter().map(|c| c.1).sum::<u64>();
    let sites: u64 = outcome
        .violations
        .iter()
        .filter(|v| v.rule == Rule::ImportFragmentation)
        .map(|v| v.related.len() as u64)
        .sum();
    let checks = checks
        .into_iter()
        .chain([("fragmented sites", sites, "fragmented_sites")]);
    for (label, found, key) in checks {
        let want = planted[key].as_u64().unwrap_or(u64::MAX);
        println!("  {label:<20} found {found:>4}, planted {want:>4}");
        ok &= found == want;
    }
    ok
}

/// A jscpd binary: $JSCPD, `jscpd` on PATH, or jscpd@5.3.3 installed once with npm.
fn find_jscpd() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("JSCPD") {
        return Some(PathBuf::from(p));
    }
    if Command::new("jscpd")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        return Some(PathBuf::from("jscpd"));
    }
    let prefix = std::env::temp_dir().join("cordon-jscpd");
    let bin = prefix.join("node_modules/.bin/jscpd");
    if !bin.exists() {
        println!(
            "installing jscpd@{JSCPD_VERSION} with npm into {} ...",
            prefix.display()
        );
        let status = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--silent", "--prefix"])
            .arg(&prefix)
            .arg(format!("jscpd@{JSCPD_VERSION}"))
            .status();
        if !status.is_ok_and(|s| s.success()) {
            return None;
        }
    }
    bin.exists().then_some(bin)
}

fn time_jscpd(bin: &Path, tree: &Path, runs: usize, extra: &[&str]) -> Option<Duration> {
    let report = tempfile::tempdir().ok()?;
    let mut times = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let status = Command::new(bin)
            .args([
                "--min-tokens",
                "50",
                "--format",
                "python",
                "--silent",
                "--reporters",
                "json",
                "--output",
            ])
            .arg(report.path())
            .args(extra)
            .arg(tree)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()?;
        if !status.success() {
            return None;
        }
        times.push(started.elapsed());
    }
    Some(median(times))
}

fn main() {
    let files = env_usize("AUDIT_BENCH_FILES", 5000);
    let runs = env_usize("AUDIT_BENCH_RUNS", 5).max(1);
    let dir = tempfile::tempdir().expect("temp dir");
    let planted = generate(dir.path(), files);
    let config = Config::default();
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..runs {
        let started = Instant::now();
        let outcome = cordon_audit::audit(dir.path(), &config).expect("audit runs");
        times.push(started.elapsed());
        last = Some(outcome);
    }
    let outcome = last.expect("at least one run");
    let audit_time = median(times);
    let rate = outcome.compliance.files_checked as f64 / audit_time.as_secs_f64();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("cordon audit: {files} Python files, {threads} threads, median of {runs} runs");
    let lines = &planted["lines"];
    println!(
        "  tree: {} lines, median {} per file, max {}, {} files over 1,000 lines",
        lines["total"], lines["median"], lines["max"], lines["over_1000"]
    );
    let ok = verify(&outcome, &planted);
    println!(
        "  full audit           {:.3} s  = {rate:.0} files/s (target >= 2000: {})",
        audit_time.as_secs_f64(),
        if rate >= 2000.0 { "MET" } else { "MISSED" }
    );
    // jscpd's default mode only finds exact token clones; `--ignore-identifiers
    // --ignore-literals` is the mode equivalent to cordon's normalization.
    let modes: [(&str, &[&str], usize); 2] = [
        ("exact tokens", &[], runs.min(3)),
        (
            "renamed (ids+literals)",
            &["--ignore-identifiers", "--ignore-literals"],
            1,
        ),
    ];
    match find_jscpd() {
        None => println!(
            "  jscpd: skipped (not found and `npm install jscpd@{JSCPD_VERSION}` unavailable)"
        ),
        Some(bin) => {
            for (label, extra, n) in modes {
                match time_jscpd(&bin, dir.path(), n, extra) {
                    Some(t) => println!(
                        "  jscpd {JSCPD_VERSION} {label:<23} {:.3} s  = {:.0} files/s (cordon full audit is {:.1}x faster)",
                        t.as_secs_f64(),
                        files as f64 / t.as_secs_f64(),
                        t.as_secs_f64() / audit_time.as_secs_f64()
                    ),
                    None => println!("  jscpd {label}: failed to run, skipped"),
                }
            }
        }
    }
    if !ok {
        eprintln!("planted findings mismatch");
        std::process::exit(1);
    }
}
