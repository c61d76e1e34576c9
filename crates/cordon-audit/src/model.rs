//! Shared vocabulary of the audit: rule ids, violations and warnings.

use serde::{Deserialize, Serialize};

/// The four rule kinds of issue 4; the ids are part of the public contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    DuplicateImplementation,
    ImportFragmentation,
    FileSize,
    FunctionSize,
}

impl Rule {
    pub const ALL: [Rule; 4] = [
        Rule::DuplicateImplementation,
        Rule::ImportFragmentation,
        Rule::FileSize,
        Rule::FunctionSize,
    ];

    /// The stable rule id printed in every format.
    pub fn id(self) -> &'static str {
        match self {
            Rule::DuplicateImplementation => "duplicate-implementation",
            Rule::ImportFragmentation => "import-fragmentation",
            Rule::FileSize => "file-size",
            Rule::FunctionSize => "function-size",
        }
    }

    pub fn from_id(id: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|r| r.id() == id)
    }

    /// One-line description used for SARIF rule metadata and docs.
    pub fn description(self) -> &'static str {
        match self {
            Rule::DuplicateImplementation => {
                "Two or more definitions of the same concept in production code"
            }
            Rule::ImportFragmentation => {
                "A symbol imported from more than one module path, or from a deprecated path"
            }
            Rule::FileSize => "File longer than its configured line limit",
            Rule::FunctionSize => "Function longer than its configured line limit",
        }
    }
}

/// One finding: where, which rule, why, and a line-independent key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    pub rule: Rule,
    /// Path relative to the audited root, `/`-separated.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    pub message: String,
    /// Identifies the finding without line numbers, so baselines survive edits.
    pub key: String,
}

impl Violation {
    /// `rule|file|key`: what baselines record.
    pub fn fingerprint(&self) -> String {
        format!("{}|{}|{}", self.rule.id(), self.file, self.key)
    }
}

/// A file that could not be checked (unreadable, not UTF-8, syntax errors).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    pub file: String,
    pub message: String,
}
