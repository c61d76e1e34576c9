//! Exact findings and compliance figures for the planted fixture repositories.

mod common;

use std::path::Path;

use common::{CRATE_FIXTURES, audit_at, audit_fixture, found, groups, triples};

fn assert_compliance(
    outcome: &cordon_audit::AuditOutcome,
    units: usize,
    weighted: f64,
    expected: f64,
) {
    let c = &outcome.compliance;
    assert_eq!(c.units, units, "checked units");
    assert!(
        (c.weighted_violations - weighted).abs() < 1e-9,
        "weighted {}",
        c.weighted_violations
    );
    assert!(
        (c.compliance - expected).abs() < 1e-9,
        "compliance {}",
        c.compliance
    );
}

#[test]
fn python_fixture_finds_exactly_the_planted_violations() {
    let outcome = audit_fixture("python");
    let expected = triples(&[
        ("duplicate-implementation", "app/db/clickhouse.py", 4),
        ("duplicate-implementation", "app/reports/invoices.py", 4),
        // `Client` is imported as `app.db` (its re-export) and as `app.db.clickhouse`:
        // one finding, at the definition. c.py imports a *different* `Client`: no finding.
        ("import-fragmentation", "app/db/clickhouse.py", 4),
        ("import-fragmentation", "app/api/b.py", 2),
        ("file-size", "app/big.py", 41),
        ("function-size", "app/api/a.py", 4),
    ]);
    assert_eq!(found(&outcome), expected);
    assert_eq!(
        groups(&outcome),
        [
            (
                ("app/db/clickhouse.py", 4, 9),
                vec![("app/services/clickhouse_client.py", 5, 11)]
            ),
            // The site off the canonical path is the related place.
            (("app/db/clickhouse.py", 4, 9), vec![("app/api/b.py", 1, 1)]),
            (
                ("app/reports/invoices.py", 4, 12),
                vec![("app/reports/orders.py", 4, 11)]
            ),
        ]
    );
    let fragmented = outcome
        .violations
        .iter()
        .find(|v| v.key == "fragment:Client:app.db.clickhouse")
        .expect("the fragmented Client");
    assert!(
        fragmented.message.contains("use `app.db`"),
        "the shortest public re-export is canonical: {}",
        fragmented.message
    );
    assert!(outcome.warnings.is_empty(), "{:?}", outcome.warnings);
    // 15 files + 12 production functions; 5 × 1.0 + 1 × 0.25 (a duplicate group counts once).
    // a.py's `documented` is 14 lines only with its docstring: not a finding.
    assert_compliance(&outcome, 27, 5.25, 80.5556);
}

#[test]
fn typescript_fixture_finds_exactly_the_planted_violations() {
    let outcome = audit_fixture("typescript");
    let expected = triples(&[
        ("duplicate-implementation", "src/db/client.ts", 2),
        ("duplicate-implementation", "src/legacy/money.ts", 2),
        // `DbClient` through its barrel (`src/db`) and its module: one finding, at the
        // definition. c.ts imports a *different* `DbClient`: no finding.
        ("import-fragmentation", "src/db/client.ts", 2),
        ("import-fragmentation", "src/b/y.ts", 2),
        ("file-size", "src/big.ts", 41),
        ("function-size", "src/ui/Panel.tsx", 4),
    ]);
    assert_eq!(found(&outcome), expected);
    assert_eq!(
        groups(&outcome),
        [
            (
                ("src/db/client.ts", 2, 8),
                vec![("src/services/db-client.ts", 2, 8)]
            ),
            (("src/db/client.ts", 2, 8), vec![("src/b/y.ts", 1, 1)]),
            (
                ("src/legacy/money.ts", 2, 8),
                // The same body in a .tsx file: TSX node kinds map to TypeScript's.
                vec![
                    ("src/ui/PriceTag.tsx", 4, 10),
                    ("src/utils/format.ts", 2, 8)
                ]
            ),
        ]
    );
    assert!(outcome.warnings.is_empty(), "{:?}", outcome.warnings);
    let fragmented = outcome
        .violations
        .iter()
        .find(|v| v.key == "fragment:DbClient:src/db/client")
        .expect("the fragmented DbClient");
    assert!(
        fragmented.message.contains("use `src/db`"),
        "{}",
        fragmented.message
    );
    // 12 files + 9 production functions; 5 × 1.0 + 1 × 0.25.
    assert_compliance(&outcome, 21, 5.25, 75.0);
}

#[test]
fn rust_fixture_finds_exactly_the_planted_violations() {
    let outcome = audit_fixture("rust");
    let expected = triples(&[
        ("duplicate-implementation", "src/cache.rs", 2),
        ("duplicate-implementation", "src/math.rs", 3),
        // Inside the crate `Store` is taken through `crate` (lib.rs
        // re-exports it) and through `crate::store`, its module; c.rs's
        // `crate::cache::Store` is another definition of the name.
        ("import-fragmentation", "src/store.rs", 2),
        ("import-fragmentation", "src/b.rs", 1),
        ("file-size", "src/big.rs", 41),
        ("function-size", "src/b.rs", 4),
    ]);
    assert_eq!(found(&outcome), expected);
    assert_eq!(
        groups(&outcome),
        [
            (("src/cache.rs", 2, 4), vec![("src/store.rs", 2, 4)]),
            (("src/math.rs", 3, 11), vec![("src/stats.rs", 3, 11)]),
            (("src/store.rs", 2, 4), vec![("src/a.rs", 1, 1)]),
        ]
    );
    let fragmented = outcome
        .violations
        .iter()
        .find(|v| v.key == "fragment:Store:crate::store:inside")
        .expect("the fragmented Store");
    // Inside its crate an item is taken from the module that defines it.
    assert!(
        fragmented.message.contains("inside its crate")
            && fragmented.message.contains("use `crate::store`"),
        "{}",
        fragmented.message
    );
    let sites: Vec<_> = fragmented
        .related
        .iter()
        .map(|r| (r.file.as_str(), r.line))
        .collect();
    assert_eq!(
        sites,
        [("src/a.rs", 1)],
        "only the site off the canonical path"
    );
    assert!(outcome.warnings.is_empty(), "{:?}", outcome.warnings);
    // 12 files + 6 production functions.
    assert_compliance(&outcome, 18, 5.25, 70.8333);
}

#[test]
fn violation_keys_name_the_concept_not_the_line() {
    let outcome = audit_fixture("python");
    let keys: Vec<&str> = outcome.violations.iter().map(|v| v.key.as_str()).collect();
    for key in [
        "name:client",
        // The body group is keyed by its first copy (orders.py is a related place).
        "body:summarize_invoices",
        "fragment:Client:app.db.clickhouse",
        "deprecated:save:app.legacy.store",
        "file",
        "fn:handler",
    ] {
        assert!(keys.contains(&key), "missing {key} in {keys:?}");
    }
}

#[test]
fn clean_fixture_has_no_violations() {
    let outcome = audit_fixture("clean");
    assert_eq!(found(&outcome), Vec::new());
    assert!(outcome.warnings.is_empty(), "{:?}", outcome.warnings);
    // 6 files + 4 functions (total, totalOf, View, balance).
    assert_compliance(&outcome, 10, 0.0, 100.0);
}

#[test]
fn unparsable_files_are_warnings_with_their_paths() {
    let outcome = audit_fixture("parse_error");
    let warned: Vec<&str> = outcome.warnings.iter().map(|w| w.file.as_str()).collect();
    assert_eq!(warned, ["broken.py", "broken.rs", "broken.ts", "latin1.py"]);
    assert!(outcome.warnings[0].message.contains("does not parse"));
    assert_eq!(found(&outcome), Vec::new());
    // Only good.py and its one function are checked.
    assert_compliance(&outcome, 2, 0.0, 100.0);
}

#[test]
fn framework_conventions_and_nested_classes_are_not_duplicates() {
    // Nested `Meta` and `Media` in two models, and `Migration` in two
    // `migrations/` packages, are conventions; a second top-level `Product`
    // and `Migration` outside `migrations/` are real duplicate names.
    let outcome = audit_fixture("python_conventions");
    let expected = triples(&[
        ("duplicate-implementation", "blog/models.py", 14),
        ("duplicate-implementation", "tools/migrate.py", 4),
    ]);
    assert_eq!(found(&outcome), expected);
    assert_eq!(
        groups(&outcome),
        [
            (("blog/models.py", 14, 17), vec![("shop/models.py", 4, 11)]),
            (("tools/migrate.py", 4, 5), vec![("tools/upgrade.py", 4, 5)]),
        ]
    );
}

/// An alias fixture (this crate's `tests/fixtures/aliases`), audited without warnings.
fn aliased(lang: &str) -> cordon_audit::AuditOutcome {
    let outcome = audit_at(&Path::new(CRATE_FIXTURES).join("aliases").join(lang));
    assert!(outcome.warnings.is_empty(), "{:?}", outcome.warnings);
    outcome
}

fn messages(outcome: &cordon_audit::AuditOutcome) -> Vec<&str> {
    outcome
        .violations
        .iter()
        .map(|v| v.message.as_str())
        .collect()
}

#[test]
fn python_aliased_reexports_lead_to_the_definition_they_stand_for() {
    // `app.models` passes `User` on as `Account`, `app` that on as `Member`;
    // `Account` from `app.auth` is another class (c.py: no site of `User`).
    // app/models/audit.py, inside the package, rightly takes `User` from its
    // module: no site of this finding, and alone inside, no finding of its own.
    let outcome = aliased("python");
    assert_eq!(
        found(&outcome),
        triples(&[("import-fragmentation", "app/models/user.py", 4)])
    );
    assert_eq!(
        groups(&outcome),
        [(
            ("app/models/user.py", 4, 6),
            vec![
                ("views/a.py", 1, 1),
                ("views/b.py", 1, 1),
                ("views/e.py", 2, 2)
            ]
        )]
    );
    assert_eq!(
        messages(&outcome),
        [
            "`User` (defined in `app.models.user`) is imported through 3 paths: \
             `Member` from `app` (1 site(s)), `Account` from `app.models` (1 site(s)), \
             `app.models.user` (2 site(s)); use `Member` from `app`"
        ]
    );
}

#[test]
fn typescript_aliased_reexports_lead_to_the_definition_they_stand_for() {
    // The barrel's `export { User as Account }`; `Account` from `src/auth` is
    // another class, and `User as Person` (d.ts) imports `User` from its module.
    let outcome = aliased("typescript");
    assert_eq!(
        groups(&outcome),
        [(
            ("src/models/user.ts", 2, 4),
            vec![("src/views/b.ts", 1, 1), ("src/views/d.ts", 2, 2)]
        )]
    );
    assert_eq!(
        messages(&outcome),
        [
            "`User` (defined in `src/models/user`) is imported through 2 paths: \
             `Account` from `src/models` (1 site(s)), `src/models/user` (2 site(s)); \
             use `Account` from `src/models`"
        ]
    );
}

#[test]
fn rust_aliased_pub_use_leads_to_the_item_it_stands_for() {
    // `pub use user::User as Account` in crate `k`; `k::auth::Account` is
    // another struct. Other crates are judged by the public path (`Account`
    // from `k`), `k` itself by the defining module.
    let outcome = aliased("rust");
    assert_eq!(
        groups(&outcome),
        [
            (
                ("crates/k/src/user.rs", 2, 4),
                vec![("crates/app/src/b.rs", 2, 2)]
            ),
            (
                ("crates/k/src/user.rs", 2, 4),
                vec![("crates/k/src/session.rs", 2, 2)]
            ),
        ]
    );
    assert_eq!(
        messages(&outcome),
        [
            "`User` (defined in `k::user`) is imported through 2 paths: \
             `Account` from `k` (1 site(s)), `k::user` (1 site(s)); use `Account` from `k`",
            "`User` (defined in `k::user`) is imported inside its crate through 2 paths: \
             `Account` from `k` (1 site(s)), `k::user` (1 site(s)); use `k::user`"
        ]
    );
}
