//! `--format sarif`: SARIF 2.1.0 for code-scanning upload.

use serde_json::{Value, json};

use super::View;
use crate::model::Rule;

pub const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

pub fn render(view: &View) -> String {
    let rules: Vec<Value> = Rule::ALL
        .iter()
        .map(|r| {
            json!({
                "id": r.id(),
                "name": r.id(),
                "shortDescription": { "text": r.description() },
                "defaultConfiguration": { "level": level(*r) },
            })
        })
        .collect();
    let results: Vec<Value> = view
        .listed
        .iter()
        .map(|v| {
            json!({
                "ruleId": v.rule.id(),
                "ruleIndex": Rule::ALL.iter().position(|r| *r == v.rule).unwrap_or(0),
                "level": level(v.rule),
                "message": { "text": v.message },
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": { "uri": v.file, "uriBaseId": "%SRCROOT%" },
                        "region": { "startLine": v.line.max(1) },
                    }
                }],
                "partialFingerprints": { "cordonAudit/v1": v.fingerprint() },
            })
        })
        .collect();
    let doc = json!({
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "cordon-audit",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "results": results,
        }],
    });
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
    s.push('\n');
    s
}

/// function-size is weighted lower, so it is a note rather than a warning.
fn level(rule: Rule) -> &'static str {
    match rule {
        Rule::FunctionSize => "note",
        _ => "warning",
    }
}
