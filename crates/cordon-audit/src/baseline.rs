//! Baselines: recorded violation fingerprints (rule + file + key, no line numbers) for ratcheting.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::AuditError;
use crate::model::{Rule, Violation};

/// The `--write-baseline` file format (JSON).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    pub version: u32,
    pub entries: Vec<BaselineEntry>,
}

/// One fingerprint and how many violations share it (e.g. two equal imports in a file).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaselineEntry {
    pub rule: Rule,
    pub file: String,
    pub key: String,
    #[serde(default = "one")]
    pub count: usize,
}

fn one() -> usize {
    1
}

impl Baseline {
    pub fn from_violations(violations: &[Violation]) -> Baseline {
        let mut counts: BTreeMap<(Rule, &str, &str), usize> = BTreeMap::new();
        for v in violations {
            *counts.entry((v.rule, &v.file, &v.key)).or_default() += 1;
        }
        let entries = counts
            .into_iter()
            .map(|((rule, file, key), count)| BaselineEntry {
                rule,
                file: file.to_string(),
                key: key.to_string(),
                count,
            })
            .collect();
        Baseline {
            version: 1,
            entries,
        }
    }

    pub fn load(path: &Path) -> Result<Baseline, AuditError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuditError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| AuditError::Baseline {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    pub fn save(&self, path: &Path) -> Result<(), AuditError> {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        std::fs::write(path, text).map_err(|source| AuditError::Write {
            path: path.to_path_buf(),
            source,
        })
    }

    fn allowance(&self) -> BTreeMap<String, usize> {
        self.entries
            .iter()
            .map(|e| (format!("{}|{}|{}", e.rule.id(), e.file, e.key), e.count))
            .collect()
    }

    /// Violations beyond what the baseline records (multiset difference).
    pub fn new_violations(&self, current: &[Violation]) -> Vec<Violation> {
        let mut left = self.allowance();
        current
            .iter()
            .filter(|v| match left.get_mut(&v.fingerprint()) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    false
                }
                _ => true,
            })
            .cloned()
            .collect()
    }

    pub fn counts_by_rule(&self) -> BTreeMap<Rule, usize> {
        let mut out: BTreeMap<Rule, usize> = Rule::ALL.iter().map(|r| (*r, 0)).collect();
        for e in &self.entries {
            *out.entry(e.rule).or_default() += e.count;
        }
        out
    }

    pub fn total(&self) -> usize {
        self.entries.iter().map(|e| e.count).sum()
    }
}
