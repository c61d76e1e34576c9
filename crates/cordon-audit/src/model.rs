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

impl Rule {
    /// What to do about a finding (SARIF rule help, docs/audit.md).
    pub fn help(self) -> &'static str {
        match self {
            Rule::DuplicateImplementation => {
                "Keep one implementation and make the other places use it; if the copies must \
                 differ, name them for what differs. Framework conventions (`Meta`, `Migration` \
                 in `migrations/`, ...) are ignored by default; add more under \
                 `[duplicates] convention_names` in cordon-audit.toml. Near-miss copies \
                 (a few statements edited) are tuned under `[duplicates.near_miss]`."
            }
            Rule::ImportFragmentation => {
                "Import the symbol through one path everywhere (the canonical one named in the \
                 message), or configure the canonical path in cordon-audit.toml."
            }
            Rule::FileSize => {
                "Split the file along the concepts it holds, or raise its limit for this path \
                 under `[file_size]` in cordon-audit.toml."
            }
            Rule::FunctionSize => {
                "Extract the steps of the function into named helpers, or raise \
                 `[function_size] max_lines` in cordon-audit.toml."
            }
        }
    }
}

/// One finding: where, which rule, why, and a line-independent key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    pub rule: Rule,
    /// Path relative to the audited root, `/`-separated.
    pub file: String,
    /// 1-based first line of the region.
    pub line: usize,
    /// 1-based last line of the region (inclusive; `line` for a one-line finding).
    pub end_line: usize,
    pub message: String,
    /// Identifies the finding without line numbers, so baselines survive edits.
    pub key: String,
    /// The finding's other places: every other copy of a duplicate group.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<Related>,
}

/// Another place a finding spans, with its full region.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Related {
    pub file: String,
    pub line: usize,
    pub end_line: usize,
    /// Line-free key of this place (a copy's own name), for baselines.
    pub key: String,
    /// What the place is, e.g. "copy `summarize_orders`".
    pub label: String,
}

impl Violation {
    /// A one-line finding with no related places.
    pub fn new(rule: Rule, file: &str, line: usize, message: String, key: String) -> Self {
        Self {
            rule,
            file: file.to_string(),
            line,
            end_line: line,
            message,
            key,
            related: Vec::new(),
        }
    }

    /// The finding covers `line..=end_line`.
    pub fn spanning(mut self, end_line: usize) -> Self {
        self.end_line = end_line.max(self.line);
        self
    }

    pub fn with_related(mut self, related: Vec<Related>) -> Self {
        self.related = related;
        self
    }

    /// `rule|file|key`: what baselines record.
    pub fn fingerprint(&self) -> String {
        format!("{}|{}|{}", self.rule.id(), self.file, self.key)
    }

    /// `file|key` of every place of the finding: its own and each related one.
    pub fn places(&self) -> impl Iterator<Item = String> + '_ {
        std::iter::once(format!("{}|{}", self.file, self.key))
            .chain(self.related.iter().map(|r| format!("{}|{}", r.file, r.key)))
    }
}

/// A file that could not be checked (unreadable, not UTF-8, syntax errors).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    pub file: String,
    pub message: String,
}
