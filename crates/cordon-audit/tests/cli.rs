//! The `cordon audit` command line: formats, exit codes, baselines, config errors, .gitignore.

mod common;

use std::path::Path;

use common::{copy_tree, fixture, read, run};
use serde_json::Value;

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn json_of(root: &Path, out: &Path, extra: &[&str]) -> (i32, Value) {
    let mut args = vec![s(root), "--format", "json", "--output", s(out)];
    args.extend_from_slice(extra);
    let code = run(&args);
    (code, serde_json::from_str(&read(out)).expect("valid JSON"))
}

#[test]
fn exit_code_is_1_when_compliance_misses_the_target_and_0_when_met() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("out.txt");
    assert_eq!(run(&[s(&fixture("python")), "--output", s(&out)]), 1);
    assert!(read(&out).contains("Compliance: 72.12% (target >= 90.00%) MISSED"));
    assert_eq!(run(&[s(&fixture("clean")), "--output", s(&out)]), 0);
    assert!(read(&out).contains("Compliance: 100.00% (target >= 90.00%) EXCEEDED"));
}

#[test]
fn usage_and_config_errors_exit_2() {
    let tmp = tempfile::tempdir().expect("tmp");
    assert_eq!(run(&[s(&tmp.path().join("missing"))]), 2);
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "[limits]\nfile = 3\n").expect("write");
    assert_eq!(run(&[s(&fixture("clean")), "--config", s(&bad)]), 2);
    let bad_rule = tmp.path().join("bad_rule.toml");
    std::fs::write(&bad_rule, "[targets.max_violations]\nno-such-rule = 1\n").expect("write");
    assert_eq!(run(&[s(&fixture("clean")), "--config", s(&bad_rule)]), 2);
    let not_json = tmp.path().join("baseline.json");
    std::fs::write(&not_json, "nope").expect("write");
    assert_eq!(run(&[s(&fixture("clean")), "--baseline", s(&not_json)]), 2);
}

#[test]
fn json_reports_compliance_units_weights_and_violations() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (code, doc) = json_of(&fixture("rust"), &tmp.path().join("o.json"), &[]);
    assert_eq!(code, 1);
    assert_eq!(doc["compliance"]["compliance"], 59.7222);
    assert_eq!(doc["compliance"]["units"], 18);
    assert_eq!(doc["compliance"]["files_checked"], 12);
    assert_eq!(doc["compliance"]["weights"]["function-size"], 0.25);
    assert_eq!(doc["compliance"]["counts"]["duplicate-implementation"], 4);
    assert_eq!(doc["violations"].as_array().map(Vec::len), Some(8));
    assert_eq!(doc["metrics"][0]["status"], "MISSED");
}

#[test]
fn sarif_has_the_schema_required_fields() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("o.sarif");
    run(&[
        s(&fixture("typescript")),
        "--format",
        "sarif",
        "--output",
        s(&out),
    ]);
    let doc: Value = serde_json::from_str(&read(&out)).expect("valid JSON");
    assert_eq!(doc["version"], "2.1.0");
    assert!(
        doc["$schema"]
            .as_str()
            .is_some_and(|u| u.contains("sarif-2.1.0"))
    );
    let run0 = &doc["runs"][0];
    assert_eq!(run0["tool"]["driver"]["name"], "cordon-audit");
    let rule_ids: Vec<&str> = run0["tool"]["driver"]["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| r["id"].as_str().expect("rule id"))
        .collect();
    assert_eq!(
        rule_ids,
        [
            "duplicate-implementation",
            "import-fragmentation",
            "file-size",
            "function-size"
        ]
    );
    let results = run0["results"].as_array().expect("results");
    assert_eq!(results.len(), 9);
    for r in results {
        assert!(rule_ids.contains(&r["ruleId"].as_str().expect("ruleId")));
        assert!(["warning", "note"].contains(&r["level"].as_str().expect("level")));
        assert!(r["message"]["text"].as_str().is_some_and(|t| !t.is_empty()));
        let loc = &r["locations"][0]["physicalLocation"];
        assert!(
            loc["artifactLocation"]["uri"]
                .as_str()
                .is_some_and(|u| u.starts_with("src/"))
        );
        assert!(loc["region"]["startLine"].as_u64().is_some_and(|l| l >= 1));
    }
}

#[test]
fn markdown_has_the_metrics_table() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("o.md");
    let cfg = tmp.path().join("c.toml");
    std::fs::write(
        &cfg,
        "[targets]\ncompliance = 50\n[targets.max_violations]\nfile-size = 2\n",
    )
    .expect("w");
    let code = run(&[
        s(&fixture("python")),
        "--config",
        s(&cfg),
        "--format",
        "markdown",
        "--output",
        s(&out),
    ]);
    let md = read(&out);
    assert!(
        md.contains("| Metric | Target | Achieved | Status |"),
        "{md}"
    );
    // Defaults replace the fixture's config: `Settings` is no longer allow-listed (+2), the
    // bodies are under 50 tokens, sizes under 750/75 lines, no deprecated paths: 5 / 26.
    assert!(
        md.contains("| Compliance | >= 50.00% | 80.77% | EXCEEDED |"),
        "{md}"
    );
    assert!(
        md.contains("| file-size violations | <= 2 | 0 | EXCEEDED |"),
        "{md}"
    );
    assert_eq!(code, 0);
}

#[test]
fn baseline_ratchets_only_new_violations() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().join("repo");
    copy_tree(&fixture("python"), &root);
    let baseline = tmp.path().join("audit-baseline.json");
    let out = tmp.path().join("o.json");
    assert_eq!(
        run(&[
            s(&root),
            "--write-baseline",
            s(&baseline),
            "--output",
            s(&out)
        ]),
        0
    );
    let recorded: Value = serde_json::from_str(&read(&baseline)).expect("baseline JSON");
    assert_eq!(recorded["entries"].as_array().map(Vec::len), Some(8));
    assert!(
        !read(&baseline).contains("\"line\""),
        "baselines must not record lines"
    );

    // Unchanged tree, and an unrelated edit that shifts every line: no regression.
    let (code, doc) = json_of(&root, &out, &["--baseline", s(&baseline)]);
    assert_eq!((code, doc["baseline"]["new"].clone()), (0, Value::from(0)));
    let a = root.join("app/api/a.py");
    std::fs::write(&a, format!("# moved down\n\n{}", read(&a))).expect("edit");
    assert_eq!(json_of(&root, &out, &["--baseline", s(&baseline)]).0, 0);

    // A new duplicate class is a regression, reported alone.
    std::fs::write(root.join("app/api/client.py"), "class Client:\n    pass\n").expect("write");
    let (code, doc) = json_of(&root, &out, &["--baseline", s(&baseline)]);
    assert_eq!(code, 1);
    let new: Vec<&str> = doc["violations"]
        .as_array()
        .expect("violations")
        .iter()
        .map(|v| v["file"].as_str().expect("file"))
        .collect();
    assert_eq!(new, ["app/api/client.py"]);
    assert_eq!(doc["baseline"]["known"], 8);

    // Fixing it (and an old violation) passes again.
    std::fs::remove_file(root.join("app/api/client.py")).expect("rm");
    std::fs::remove_file(root.join("app/big.py")).expect("rm");
    assert_eq!(json_of(&root, &out, &["--baseline", s(&baseline)]).0, 0);
}

#[test]
fn gitignored_and_excluded_files_are_not_scanned() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path();
    let body = "class Widget:\n    pass\n";
    for dir in ["a", "b", "generated", "vendor/x"] {
        std::fs::create_dir_all(root.join(dir)).expect("mkdir");
        std::fs::write(root.join(dir).join("w.py"), body).expect("write");
    }
    std::fs::write(root.join(".gitignore"), "generated/\n").expect("write");
    std::fs::write(
        root.join("cordon-audit.toml"),
        "exclude = [\"vendor/**\"]\n",
    )
    .expect("write");
    let (_, doc) = json_of(root, &root.join("o.json"), &[]);
    let files: Vec<&str> = doc["violations"]
        .as_array()
        .expect("violations")
        .iter()
        .map(|v| v["file"].as_str().expect("file"))
        .collect();
    assert_eq!(files, ["a/w.py", "b/w.py"]);
    assert_eq!(doc["compliance"]["files_checked"], 2);
}

#[test]
fn both_command_shapes_parse() {
    let scan = common::parse(&["some/dir", "--format", "sarif"]);
    assert!(scan.command.is_none());
    assert_eq!(scan.scan.path, Path::new("some/dir"));
    let close = common::parse(&["close-report", "--issue", "4", "--repo", "o/n"]);
    assert!(
        matches!(close.command, Some(cordon_audit::AuditCommand::CloseReport(ref a)) if a.issue == 4 && a.repo == "o/n")
    );
}
