//! `cordon audit close-report`: Markdown closure report for an issue, and the `gh` commands
//! that post it, drop the label and close the issue (run only with `--execute`).

use std::ffi::OsString;
use std::fmt::Write;
use std::path::{Path, PathBuf};

use crate::cli::{CloseReportArgs, emit};
use crate::error::AuditError;
use crate::evaluation::{EXIT_FAIL, EXIT_OK, Evaluation, evaluate};
use crate::gh::{self, CommandLog, GhRunner};
use crate::health::{self, HealthCheck};
use crate::model::Rule;
use crate::report::{metrics_table, related_items};

/// Follow-up items listed per rule before eliding the rest.
const MAX_ITEMS_PER_RULE: usize = 25;

pub fn run(args: &CloseReportArgs, path_env: Option<OsString>) -> Result<i32, AuditError> {
    let eval = evaluate(&args.path, args.config.as_deref(), args.baseline.as_deref())?;
    let health = args.health_url.as_deref().map(health::check);
    let passed = eval.exit == EXIT_OK && health.as_ref().is_none_or(HealthCheck::ok);
    let report_path = args
        .output
        .clone()
        .unwrap_or_else(|| default_path(args.issue));
    let commands = commands(args, &report_path);
    let mut md = render(args, &eval, health.as_ref(), &commands, passed);
    emit(&md, Some(&report_path))?;
    let mut code = if passed { EXIT_OK } else { EXIT_FAIL };
    if args.execute {
        let runner = GhRunner::new(args.gh.clone().map(PathBuf::into_os_string), path_env);
        let (log, ok) = execute(&runner, &commands, passed);
        md.push_str(&log);
        emit(&md, Some(&report_path))?;
        if !ok {
            code = EXIT_FAIL;
        }
    }
    print!("{md}");
    eprintln!(
        "cordon audit: closure report written to {}",
        report_path.display()
    );
    Ok(code)
}

fn default_path(issue: u64) -> PathBuf {
    std::env::temp_dir().join(format!("cordon-closure-report-{issue}.md"))
}

/// The three `gh` invocations (arguments after `gh`), in order.
pub fn commands(args: &CloseReportArgs, report: &Path) -> Vec<Vec<String>> {
    let n = args.issue.to_string();
    let repo = args.repo.clone();
    let s = |x: &str| x.to_string();
    vec![
        vec![
            s("issue"),
            s("comment"),
            n.clone(),
            s("--repo"),
            repo.clone(),
            s("--body-file"),
            report.display().to_string(),
        ],
        vec![
            s("issue"),
            s("edit"),
            n.clone(),
            s("--repo"),
            repo.clone(),
            s("--remove-label"),
            args.remove_label.clone(),
        ],
        vec![s("issue"), s("close"), n, s("--repo"), repo],
    ]
}

/// Posts the comment always; edits and closes only when the gate passed.
fn execute(runner: &GhRunner, commands: &[Vec<String>], passed: bool) -> (String, bool) {
    let mut log = String::from("\n## Execution log\n\n");
    let mut ok = true;
    for (i, args) in commands.iter().enumerate() {
        if i > 0 && !passed {
            let _ = writeln!(
                log,
                "- `{}`: skipped (targets missed, regression or unhealthy deployment)",
                gh::display(args)
            );
            continue;
        }
        if !ok {
            let _ = writeln!(
                log,
                "- `{}`: skipped (an earlier command failed)",
                gh::display(args)
            );
            continue;
        }
        let entry = runner.run(args);
        ok = entry.succeeded();
        log.push_str(&log_entry(&entry));
    }
    (log, ok)
}

fn log_entry(e: &CommandLog) -> String {
    let code = e
        .exit_code
        .map_or("none (not started or killed)".to_string(), |c| {
            c.to_string()
        });
    let out = e.output.trim_end();
    format!(
        "- `{}`: exit code {code}\n\n  ```\n{}\n  ```\n\n",
        e.command,
        indent(if out.is_empty() { "(no output)" } else { out })
    )
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn render(
    args: &CloseReportArgs,
    eval: &Evaluation,
    health: Option<&HealthCheck>,
    commands: &[Vec<String>],
    passed: bool,
) -> String {
    let c = &eval.outcome.compliance;
    let mut s = format!("# Closure report: {}#{}\n\n", args.repo, args.issue);
    let verdict = if passed {
        "ready to close"
    } else {
        "NOT ready to close"
    };
    let _ = writeln!(
        s,
        "Audit of `{}`: **{verdict}**.\n",
        eval.outcome.root.display()
    );
    s.push_str("## Compliance metrics\n\n");
    s.push_str(&metrics_table(&eval.metrics));
    let _ = writeln!(s, "\n`{}`\n\n{}\n", c.formula(), c.units_line());
    s.push_str(&before_after(eval));
    s.push_str(&debt(eval));
    s.push_str(&deployment(health));
    s.push_str("## Commands\n\n```sh\n");
    for cmd in commands {
        let _ = writeln!(s, "{}", gh::display(cmd));
    }
    s.push_str("```\n");
    if !args.execute {
        s.push_str("\nNot executed (run with `--execute` to post, unlabel and close).\n");
    }
    s
}

fn before_after(eval: &Evaluation) -> String {
    let mut s = String::from(
        "## Violations before and after\n\n| Rule | Before (baseline) | After |\n|---|---|---|\n",
    );
    let before = eval.baseline.as_ref().map(|b| b.counts_by_rule());
    let cell = |r: Rule| {
        before.as_ref().map_or("n/a".to_string(), |b| {
            b.get(&r).copied().unwrap_or(0).to_string()
        })
    };
    for r in Rule::ALL {
        let after = eval
            .outcome
            .compliance
            .counts
            .get(r.id())
            .copied()
            .unwrap_or(0);
        let _ = writeln!(s, "| {} | {} | {after} |", r.id(), cell(r));
    }
    let total_before = eval
        .baseline
        .as_ref()
        .map_or("n/a".to_string(), |b| b.total().to_string());
    let _ = writeln!(
        s,
        "| **total** | {total_before} | {} |\n",
        eval.outcome.violations.len()
    );
    if let (Some(b), Some(known)) = (&eval.baseline, eval.known()) {
        let _ = writeln!(
            s,
            "New since baseline: {}. Fixed since baseline: {}.\n",
            eval.listed.len(),
            b.total().saturating_sub(known)
        );
    } else {
        s.push_str("No baseline given, so \"before\" is not known.\n\n");
    }
    s
}

fn debt(eval: &Evaluation) -> String {
    let mut s = String::from("## Remaining debt (follow-up items)\n\n");
    if eval.outcome.violations.is_empty() {
        s.push_str("No remaining debt.\n\n");
    }
    for r in Rule::ALL {
        let items: Vec<_> = eval
            .outcome
            .violations
            .iter()
            .filter(|v| v.rule == r)
            .collect();
        if items.is_empty() {
            continue;
        }
        let _ = writeln!(s, "### {} ({})\n", r.id(), items.len());
        for v in items.iter().take(MAX_ITEMS_PER_RULE) {
            let _ = writeln!(s, "- [ ] `{}:{}` {}", v.file, v.line, v.message);
            s.push_str(&related_items(v));
        }
        if items.len() > MAX_ITEMS_PER_RULE {
            let _ = writeln!(s, "- … and {} more", items.len() - MAX_ITEMS_PER_RULE);
        }
        s.push('\n');
    }
    if !eval.outcome.warnings.is_empty() {
        let _ = writeln!(
            s,
            "Files not checked (parse warnings): {}\n",
            eval.outcome.warnings.len()
        );
    }
    s
}

fn deployment(health: Option<&HealthCheck>) -> String {
    let mut s = String::from("## Deployment validation\n\n");
    match health {
        None => s.push_str("Not requested (no `--health-url`).\n\n"),
        Some(h) => {
            let status = h
                .status
                .map_or("no response".to_string(), |c| c.to_string());
            let verdict = if h.ok() { "OK" } else { "FAILED" };
            let _ = writeln!(
                s,
                "- GET {}: status {status}, latency {} ms: **{verdict}**",
                h.url, h.latency_ms
            );
            if let Some(e) = &h.error {
                let _ = writeln!(s, "- error: {e}");
            }
            s.push('\n');
        }
    }
    s
}
