//! Baselines: recorded violation fingerprints (rule + file + key, no line numbers) for ratcheting.

use std::collections::{BTreeMap, BTreeSet};
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
    /// The other places (`file|key`) of a group finding (a duplicate's other copies).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub copies: Vec<String>,
}

fn one() -> usize {
    1
}

impl Baseline {
    pub fn from_violations(violations: &[Violation]) -> Baseline {
        let mut counts: BTreeMap<(Rule, &str, &str), (usize, Vec<String>)> = BTreeMap::new();
        for v in violations {
            let entry = counts.entry((v.rule, &v.file, &v.key)).or_default();
            entry.0 += 1;
            entry.1.extend(v.places().skip(1));
        }
        let entries = counts
            .into_iter()
            .map(|((rule, file, key), (count, copies))| BaselineEntry {
                rule,
                file: file.to_string(),
                key: key.to_string(),
                count,
                copies,
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
    /// What the baseline does not know. A group finding (a duplicate's
    /// copies) is known while every place in it was recorded: a copy removed
    /// keeps it known (an improvement never fails the gate, even when the
    /// first copy, where it is reported, is the one removed), a copy added makes it new.
    pub fn new_violations(&self, current: &[Violation]) -> Vec<Violation> {
        let mut left = self.allowance();
        let places = self.places_by_rule();
        current
            .iter()
            .filter(|v| {
                if !v.related.is_empty() {
                    let known = places.get(&v.rule);
                    return !v.places().all(|p| known.is_some_and(|k| k.contains(&p)));
                }
                match left.get_mut(&v.fingerprint()) {
                    Some(n) if *n > 0 => {
                        *n -= 1;
                        false
                    }
                    _ => true,
                }
            })
            .cloned()
            .collect()
    }

    /// Every recorded `file|key`, copies included, per rule.
    fn places_by_rule(&self) -> BTreeMap<Rule, BTreeSet<String>> {
        let mut out: BTreeMap<Rule, BTreeSet<String>> = BTreeMap::new();
        for e in &self.entries {
            let places = out.entry(e.rule).or_default();
            places.insert(format!("{}|{}", e.file, e.key));
            places.extend(e.copies.iter().cloned());
        }
        out
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
