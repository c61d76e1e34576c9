//! The `cordon audit` command line: formats, exit codes, baselines, config errors, .gitignore.

mod common;

use std::path::{Path, PathBuf};

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

/// The `file` of every listed violation of a JSON report.
fn listed_files(doc: &Value) -> Vec<&str> {
    doc["violations"]
        .as_array()
        .expect("violations")
        .iter()
        .map(|v| v["file"].as_str().expect("file"))
        .collect()
}

#[test]
fn exit_code_is_1_when_compliance_misses_the_target_and_0_when_met() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("out.txt");
    assert_eq!(run(&[s(&fixture("python")), "--output", s(&out)]), 1);
    assert!(read(&out).contains("Compliance: 80.56% (target >= 90.00%) MISSED"));
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
    let bad_glob = tmp.path().join("bad_glob.toml");
    std::fs::write(
        &bad_glob,
        "[duplicates]\nconvention_names = [{ name = \"Migration\", paths = [\"migrations/[\"] }]\n",
    )
    .expect("write");
    assert_eq!(run(&[s(&fixture("clean")), "--config", s(&bad_glob)]), 2);
    let not_json = tmp.path().join("baseline.json");
    std::fs::write(&not_json, "nope").expect("write");
    assert_eq!(run(&[s(&fixture("clean")), "--baseline", s(&not_json)]), 2);
}

#[test]
fn json_reports_compliance_units_weights_and_violations() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (code, doc) = json_of(&fixture("rust"), &tmp.path().join("o.json"), &[]);
    assert_eq!(code, 1);
    assert_eq!(doc["compliance"]["compliance"], 70.8333);
    assert_eq!(doc["compliance"]["units"], 18);
    assert_eq!(doc["compliance"]["files_checked"], 12);
    assert_eq!(doc["compliance"]["weights"]["function-size"], 0.25);
    // Two duplicate groups of two copies each: one finding per group.
    assert_eq!(doc["compliance"]["counts"]["duplicate-implementation"], 2);
    assert_eq!(doc["violations"].as_array().map(Vec::len), Some(6));
    assert_eq!(doc["metrics"][0]["status"], "MISSED");
}

/// One result per duplicate group (of two copies and of three) and four others.
const RESULTS_IN_THE_TYPESCRIPT_FIXTURE: usize = 6;

fn sarif_of(fixture_name: &str, tmp: &Path) -> Value {
    let out = tmp.join("o.sarif");
    run(&[
        s(&fixture(fixture_name)),
        "--format",
        "sarif",
        "--output",
        s(&out),
    ]);
    serde_json::from_str(&read(&out)).expect("valid JSON")
}

#[test]
fn sarif_validates_against_the_sarif_2_1_0_schema() {
    let schema: Value = serde_json::from_str(&read(&common::sarif_schema())).expect("schema");
    let validator = jsonschema::draft4::new(&schema).expect("the schema compiles");
    let tmp = tempfile::tempdir().expect("tmp");
    for name in ["python", "typescript", "rust", "clean", "parse_error"] {
        let doc = sarif_of(name, tmp.path());
        let errors: Vec<String> = validator
            .iter_errors(&doc)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{name}: {errors:#?}");
    }
}

#[test]
fn a_duplicate_group_is_one_sarif_result_linking_every_other_copy() {
    let tmp = tempfile::tempdir().expect("tmp");
    let doc = sarif_of("typescript", tmp.path());
    let results = doc["runs"][0]["results"].as_array().expect("results");
    let group = results
        .iter()
        .find(|r| {
            r["relatedLocations"]
                .as_array()
                .is_some_and(|l| l.len() == 2)
        })
        .expect("the three-copy body group");
    let text = group["message"]["text"].as_str().expect("text");
    let related = group["relatedLocations"].as_array().expect("related");
    for (at, location) in related.iter().enumerate() {
        assert_eq!(location["id"], at + 1);
        let uri = location["physicalLocation"]["artifactLocation"]["uri"]
            .as_str()
            .expect("uri");
        assert!(
            text.contains(&format!("({})", at + 1)),
            "{text} links {uri}"
        );
        let region = &location["physicalLocation"]["region"];
        assert!(region["endLine"].as_u64() >= region["startLine"].as_u64());
    }
    let primary = &group["locations"][0]["physicalLocation"];
    let region = &primary["region"];
    assert!(
        region["endLine"].as_u64() > region["startLine"].as_u64(),
        "{region}"
    );
    assert!(group["partialFingerprints"]["cordonAudit/v1"].is_string());
    let driver = &doc["runs"][0]["tool"]["driver"];
    assert!(driver["rules"][0]["help"]["text"].is_string());
    assert_eq!(
        doc["runs"][0]["invocations"][0]["executionSuccessful"],
        true
    );
}

#[test]
fn sarif_has_the_schema_required_fields() {
    let tmp = tempfile::tempdir().expect("tmp");
    let doc = sarif_of("typescript", tmp.path());
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
    assert_eq!(results.len(), RESULTS_IN_THE_TYPESCRIPT_FIXTURE);
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
    // Defaults replace the fixture's config: `Settings` is no longer allow-listed (+1
    // group), the bodies are under 50 tokens, sizes under 750/75 lines, no deprecated
    // paths: 3 / 27.
    assert!(
        md.contains("| Compliance | >= 50.00% | 88.89% | EXCEEDED |"),
        "{md}"
    );
    assert!(
        md.contains("| file-size violations | <= 2 | 0 | EXCEEDED |"),
        "{md}"
    );
    assert_eq!(code, 0);
}

/// A copy of a fixture under `tmp/repo` with its baseline written (exit 0):
/// the copy, the baseline file and a report path.
fn baselined_copy(name: &str, tmp: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let root = tmp.join("repo");
    copy_tree(&fixture(name), &root);
    let baseline = tmp.join("audit-baseline.json");
    let out = tmp.join("o.json");
    let args = [
        s(&root),
        "--write-baseline",
        s(&baseline),
        "--output",
        s(&out),
    ];
    assert_eq!(run(&args), 0);
    (root, baseline, out)
}

#[test]
fn baseline_ratchets_only_new_violations() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (root, baseline, out) = baselined_copy("python", tmp.path());
    let recorded: Value = serde_json::from_str(&read(&baseline)).expect("baseline JSON");
    // 6 findings, the two duplicate groups with their other copy each.
    assert_eq!(recorded["entries"].as_array().map(Vec::len), Some(6));
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

    // A new copy of a duplicate class is a regression: its group is new (reported at
    // its first member by path, the new file), nothing else is.
    std::fs::write(root.join("app/api/client.py"), "class Client:\n    pass\n").expect("write");
    let (code, doc) = json_of(&root, &out, &["--baseline", s(&baseline)]);
    assert_eq!(code, 1);
    let new = listed_files(&doc);
    assert_eq!(new, ["app/api/client.py"]);
    // The other 5 findings; the Client group's old shape is the new one's.
    assert_eq!(doc["baseline"]["known"], 5);

    // Fixing it (and an old violation) passes again.
    std::fs::remove_file(root.join("app/api/client.py")).expect("rm");
    std::fs::remove_file(root.join("app/big.py")).expect("rm");
    assert_eq!(json_of(&root, &out, &["--baseline", s(&baseline)]).0, 0);
}

#[test]
fn removing_the_reported_copy_of_a_group_passes_the_baseline() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (root, baseline, out) = baselined_copy("typescript", tmp.path());
    // Three copies of one body; the group is reported at its first by path.
    let (_, doc) = json_of(&root, &out, &[]);
    let group = doc["violations"]
        .as_array()
        .expect("violations")
        .iter()
        .find(|v| v["related"].as_array().is_some_and(|r| r.len() == 2))
        .expect("the three-copy group")
        .clone();
    assert_eq!(group["file"], "src/legacy/money.ts");

    // That copy goes: the group (now reported elsewhere) is smaller, not new.
    std::fs::remove_file(root.join("src/legacy/money.ts")).expect("rm");
    let (code, doc) = json_of(&root, &out, &["--baseline", s(&baseline)]);
    assert_eq!((code, doc["baseline"]["new"].clone()), (0, Value::from(0)));
    let (_, doc) = json_of(&root, &out, &[]);
    assert!(
        doc["violations"]
            .as_array()
            .expect("violations")
            .iter()
            .any(|v| v["file"] == "src/ui/PriceTag.tsx"
                && v["related"][0]["file"] == "src/utils/format.ts")
    );
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
    let files = listed_files(&doc);
    assert_eq!(files, ["a/w.py"]);
    assert_eq!(doc["violations"][0]["related"][0]["file"], "b/w.py");
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

/// Runs git in `dir`, failing the test if it fails.
fn git(dir: &Path, args: &[&str]) {
    let status = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
        .args(args)
        .status()
        .expect("git runs");
    assert!(status.success(), "git {args:?}");
}

#[test]
fn changed_since_lists_only_findings_touching_changed_files() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().join("repo");
    copy_tree(&fixture("python"), &root);
    git(&root, &["init", "-q", "-b", "main"]);
    git(&root, &["add", "."]);
    git(&root, &["commit", "-q", "-m", "fixture"]);
    let out = tmp.path().join("o.json");

    // Nothing changed: the old debt is context, and the gate passes.
    let (code, doc) = json_of(&root, &out, &["--changed-since", "main"]);
    assert_eq!(code, 0);
    assert_eq!(doc["violations"].as_array().map(Vec::len), Some(0));
    assert_eq!(doc["changed_since"]["violations_elsewhere"], 6);

    // A branch edits one copy of a duplicated body and adds an untracked file:
    // the body group touches a changed file (through its related copy), the
    // rest stays context.
    git(&root, &["checkout", "-q", "-b", "feature"]);
    let orders = root.join("app/reports/orders.py");
    std::fs::write(&orders, format!("{}\n# touched\n", read(&orders))).expect("edit");
    git(&root, &["commit", "-q", "-am", "touch orders"]);
    std::fs::write(root.join("app/notes.py"), "NOTE = 1\n").expect("untracked");
    let (code, doc) = json_of(&root, &out, &["--changed-since", "main"]);
    assert_eq!(code, 1);
    let listed = listed_files(&doc);
    assert_eq!(listed, ["app/reports/invoices.py"]);
    assert_eq!(doc["changed_since"]["files_changed"], 2);
    assert_eq!(doc["changed_since"]["violations_elsewhere"], 5);
    assert!(
        doc["metrics"]
            .as_array()
            .expect("metrics")
            .iter()
            .any(|m| m["metric"] == "Violations touching changed files" && m["status"] == "MISSED")
    );

    // An unknown revision is a usage error, said plainly.
    assert_eq!(run(&[s(&root), "--changed-since", "no-such-rev"]), 2);
}
