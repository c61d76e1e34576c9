//! Near-miss copies (duplicate-implementation): exact findings, related places,
//! similarity and configuration, on this crate's planted fixture repositories.

mod common;

use std::path::{Path, PathBuf};

use common::{CRATE_FIXTURES, audit_at, found, groups, triples};
use cordon_audit::{AuditOutcome, Baseline, Config, Violation};

fn near_miss_fixture(lang: &str) -> PathBuf {
    Path::new(CRATE_FIXTURES).join("near_miss").join(lang)
}

/// Audits a fixture with `toml` as its config file.
fn audit_with(lang: &str, toml: &str) -> AuditOutcome {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("cordon-audit.toml");
    std::fs::write(&path, toml).expect("write config");
    let root = near_miss_fixture(lang);
    let config = Config::load(&root, Some(&path)).expect("config loads");
    cordon_audit::audit(&root, &config).expect("audit runs")
}

fn by_key<'a>(outcome: &'a AuditOutcome, key: &str) -> &'a Violation {
    outcome
        .violations
        .iter()
        .find(|v| v.key == key)
        .unwrap_or_else(|| panic!("no finding {key}"))
}

/// (related key, label) of each related place.
fn related_labels(v: &Violation) -> Vec<(&str, &str)> {
    v.related
        .iter()
        .map(|r| (r.key.as_str(), r.label.as_str()))
        .collect()
}

#[test]
fn python_near_miss_copies_are_found_with_their_similarity() {
    let outcome = audit_at(&near_miss_fixture("python"));
    // Not reported: mean.py/spread.py (same shape, other logic), clamp.py/bound.py
    // (below the minimum size) and the copy in tests/.
    let expected = triples(&[
        // credit_note.py is an exact copy of invoice.py with its names changed: the
        // body check's finding. A near-miss copy keeps its names, so receipt.py
        // (one statement changed) is invoice.py's, and credit_note.py is in no
        // near-miss group.
        ("duplicate-implementation", "app/billing/credit_note.py", 4),
        ("duplicate-implementation", "app/billing/invoice.py", 4),
        ("duplicate-implementation", "app/ingest/csv_rows.py", 4),
    ]);
    assert_eq!(found(&outcome), expected);
    assert_eq!(
        groups(&outcome),
        [
            (
                ("app/billing/credit_note.py", 4, 16),
                vec![("app/billing/invoice.py", 4, 16)]
            ),
            (
                ("app/billing/invoice.py", 4, 16),
                vec![("app/shop/receipt.py", 4, 16)]
            ),
            (
                ("app/ingest/csv_rows.py", 4, 18),
                vec![("app/ingest/tsv_rows.py", 4, 19)]
            ),
        ]
    );
    // One statement changed (the shipping line) in a body of 110 tokens.
    let changed = by_key(&outcome, "near:summarize_invoice");
    assert_eq!(
        changed.message,
        "function `summarize_invoice`: 2 near-miss copies of one body \
         (88% similar, 110 normalized tokens)"
    );
    assert_eq!(
        related_labels(changed),
        [(
            "near:summarize_receipt",
            "near-miss copy `summarize_receipt` (88% similar)"
        )]
    );
    // One statement inserted.
    let inserted = by_key(&outcome, "near:parse_rows");
    assert_eq!(
        inserted.message,
        "function `parse_rows`: 2 near-miss copies of one body (95% similar, 111 normalized tokens)"
    );
    assert_eq!(
        related_labels(inserted),
        [(
            "near:parse_tsv_rows",
            "near-miss copy `parse_tsv_rows` (95% similar)"
        )]
    );
    assert!(outcome.warnings.is_empty(), "{:?}", outcome.warnings);
}

#[test]
fn rust_near_miss_copies_are_found_with_their_similarity() {
    let outcome = audit_at(&near_miss_fixture("rust"));
    // Not reported: shapes.rs's count_words (another loop), double/half (below the
    // minimum size) and the copy in a #[cfg(test)] module.
    let expected = triples(&[
        ("duplicate-implementation", "src/export.rs", 3),
        ("duplicate-implementation", "src/load.rs", 3),
    ]);
    assert_eq!(found(&outcome), expected);
    assert_eq!(
        groups(&outcome),
        [
            (("src/export.rs", 3, 15), vec![("src/report.rs", 3, 15)]),
            (("src/load.rs", 3, 17), vec![("src/parse.rs", 3, 16)]),
        ]
    );
    let changed = by_key(&outcome, "near:export_totals");
    assert!(
        changed
            .message
            .contains("(90% similar, 123 normalized tokens)"),
        "{}",
        changed.message
    );
    assert_eq!(
        related_labels(changed),
        [(
            "near:render_totals",
            "near-miss copy `render_totals` (90% similar)"
        )]
    );
    let inserted = by_key(&outcome, "near:load_settings");
    assert!(
        inserted
            .message
            .contains("(96% similar, 152 normalized tokens)"),
        "{}",
        inserted.message
    );
    assert_eq!(
        related_labels(inserted),
        [(
            "near:parse_settings",
            "near-miss copy `parse_settings` (96% similar)"
        )]
    );
}

#[test]
fn the_threshold_and_minimum_size_come_from_the_config() {
    let near = |outcome: &AuditOutcome| -> Vec<String> {
        let mut keys: Vec<String> = outcome
            .violations
            .iter()
            .filter(|v| v.key.starts_with("near:"))
            .map(|v| v.key.clone())
            .collect();
        keys.sort();
        keys
    };
    // 88% no longer reaches 90%; 95% does.
    let stricter = audit_with("python", "[duplicates.near_miss]\nsimilarity = 0.9\n");
    assert_eq!(near(&stricter), ["near:parse_rows"]);
    // 1.0 leaves equal bodies to the exact check: no near-miss finding.
    let off = audit_with("python", "[duplicates.near_miss]\nsimilarity = 1.0\n");
    assert_eq!(near(&off), Vec::<String>::new());
    assert!(off.violations.iter().any(|v| v.key.starts_with("body:")));
    // Both planted bodies have fewer than 112 tokens.
    let bigger = audit_with("python", "[duplicates.near_miss]\nmin_tokens = 112\n");
    assert_eq!(near(&bigger), Vec::<String>::new());
    // Looser: the same-shaped trap still differs too much to be found at 60%.
    let looser = audit_with("python", "[duplicates.near_miss]\nsimilarity = 0.6\n");
    assert_eq!(near(&looser), ["near:parse_rows", "near:summarize_invoice"]);
}

#[test]
fn a_similarity_outside_one_half_to_one_is_a_config_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("cordon-audit.toml");
    for bad in ["0.4", "1.5"] {
        std::fs::write(
            &path,
            format!("[duplicates.near_miss]\nsimilarity = {bad}\n"),
        )
        .expect("write config");
        let error = Config::load(dir.path(), Some(&path)).expect_err("rejected");
        assert!(
            error
                .to_string()
                .contains("duplicates.near_miss.similarity"),
            "{error}"
        );
    }
}

#[test]
fn a_baselined_near_miss_group_stays_known_until_a_copy_is_added() {
    let outcome = audit_at(&near_miss_fixture("rust"));
    let baseline = Baseline::from_violations(&outcome.violations);
    assert_eq!(baseline.new_violations(&outcome.violations), Vec::new());
    let mut grown = outcome.violations.clone();
    let group = grown
        .iter_mut()
        .find(|v| v.key == "near:load_settings")
        .expect("the inserted-statement group");
    let mut extra = group.related[0].clone();
    extra.file = "src/config.rs".to_string();
    group.related.push(extra);
    let new = baseline.new_violations(&grown);
    assert_eq!(new.len(), 1);
    assert_eq!(new[0].key, "near:load_settings");
}
