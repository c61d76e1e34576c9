//! `--format json`: the full result as one JSON document.

use serde_json::json;

use super::View;

pub fn render(view: &View) -> String {
    let o = view.outcome;
    let doc = json!({
        "tool": "cordon-audit",
        "version": env!("CARGO_PKG_VERSION"),
        "root": o.root.display().to_string(),
        "compliance": &o.compliance,
        "formula": o.compliance.formula(),
        "metrics": &view.metrics,
        "baseline": view.baselined.map(|known| json!({"known": known, "new": view.listed.len()})),
        "changed_since": view.scope.map(|s| json!({
            "rev": s.rev,
            "files_changed": s.files_changed,
            "violations_touching": view.listed.len(),
            "violations_elsewhere": s.elsewhere,
        })),
        "violations": view.listed.iter().map(|v| json!({
            "rule": v.rule.id(),
            "file": v.file,
            "line": v.line,
            "end_line": v.end_line,
            "message": v.message,
            "related": &v.related,
            "fingerprint": v.fingerprint(),
        })).collect::<Vec<_>>(),
        "warnings": &o.warnings,
    });
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
    s.push('\n');
    s
}
