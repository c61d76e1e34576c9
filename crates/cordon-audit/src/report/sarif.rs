//! `--format sarif`: SARIF 2.1.0 for code-scanning upload; a duplicate group is one result whose other copies are related locations.

use serde_json::{Value, json};

use super::View;
use crate::model::{Related, Rule, Violation, Warning};

pub const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

pub fn render(view: &View) -> String {
    let doc = json!({
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "cordon-audit",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": Rule::ALL.iter().map(|r| rule(*r)).collect::<Vec<_>>(),
            }},
            "invocations": [{
                "executionSuccessful": true,
                "toolExecutionNotifications":
                    view.outcome.warnings.iter().map(notification).collect::<Vec<_>>(),
            }],
            "results": view.listed.iter().map(result).collect::<Vec<_>>(),
        }],
    });
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
    s.push('\n');
    s
}

fn rule(rule: Rule) -> Value {
    json!({
        "id": rule.id(),
        "name": rule.id(),
        "shortDescription": { "text": rule.description() },
        "fullDescription": { "text": rule.description() },
        "help": { "text": rule.help(), "markdown": rule.help() },
        "defaultConfiguration": { "level": level(rule) },
    })
}

fn result(v: &Violation) -> Value {
    json!({
        "ruleId": v.rule.id(),
        "ruleIndex": Rule::ALL.iter().position(|r| *r == v.rule).unwrap_or(0),
        "level": level(v.rule),
        "message": { "text": message(v) },
        "locations": [location(&v.file, v.line, v.end_line)],
        "relatedLocations": v.related.iter().enumerate().map(|(at, r)| related(at, r)).collect::<Vec<_>>(),
        // Rule, path and a line-free key: stable when unrelated lines move.
        "partialFingerprints": { "cordonAudit/v1": v.fingerprint() },
    })
}

/// The finding's text, linking each related location by its id (`[path:line](1)`).
fn message(v: &Violation) -> String {
    if v.related.is_empty() {
        return v.message.clone();
    }
    let links: Vec<String> = v
        .related
        .iter()
        .enumerate()
        .map(|(at, r)| format!("[{}:{}]({})", r.file, r.line, at + 1))
        .collect();
    format!("{}; also at {}.", v.message, links.join(", "))
}

fn related(at: usize, r: &Related) -> Value {
    let mut location = location(&r.file, r.line, r.end_line);
    location["id"] = json!(at + 1);
    location["message"] = json!({ "text": r.label });
    location
}

fn location(file: &str, line: usize, end_line: usize) -> Value {
    json!({
        "physicalLocation": {
            "artifactLocation": { "uri": file, "uriBaseId": "%SRCROOT%" },
            "region": { "startLine": line.max(1), "endLine": end_line.max(line).max(1) },
        }
    })
}

/// A file that could not be checked, reported as the run's notification.
fn notification(w: &Warning) -> Value {
    json!({
        "level": "warning",
        "message": { "text": w.message },
        "locations": [{ "physicalLocation": {
            "artifactLocation": { "uri": w.file, "uriBaseId": "%SRCROOT%" },
        }}],
    })
}

/// function-size is weighted lower, so it is a note rather than a warning.
fn level(rule: Rule) -> &'static str {
    match rule {
        Rule::FunctionSize => "note",
        _ => "warning",
    }
}
