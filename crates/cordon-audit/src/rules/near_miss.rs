//! duplicate-implementation, near-miss copies: production functions in different files
//! whose lines align to at least the configured similarity (a few statements changed,
//! inserted or removed). Equal normalized bodies are the exact check's.
//!
//! Candidates come from an inverted index of runs of three consecutive lines, so the
//! work stays near linear: a copy with a few statements edited keeps most of its
//! runs, while functions that share fewer than three are never aligned. Runs found in
//! many functions (closing braces, common boilerplate) say nothing about copying
//! and are not followed.

use std::collections::HashMap;

use rayon::prelude::*;

use crate::config::Duplicates;
use crate::model::{Related, Rule, Violation};
use crate::normalize::{NormalizedLine, mix};
use crate::parse::{FileFacts, Unit, UnitKind};
use crate::similarity::{similarity, total_tokens};

/// A function taking part.
struct Candidate<'a> {
    family: &'a str,
    file: &'a str,
    unit: &'a Unit,
    tokens: u64,
}

/// Two candidates (by index, `.0 < .1`) and their similarity.
type Pair = (usize, usize, f64);

pub fn near_misses(files: &[FileFacts], cfg: &Duplicates) -> Vec<Violation> {
    let threshold = cfg.near_miss.similarity;
    // Only equal lines score 1.0, and equal bodies are the exact check's.
    if threshold >= 1.0 {
        return Vec::new();
    }
    let mut by_language: HashMap<&str, Vec<Candidate>> = HashMap::new();
    for candidate in candidates(files, cfg) {
        by_language
            .entry(candidate.family)
            .or_default()
            .push(candidate);
    }
    let mut out = Vec::new();
    for candidates in by_language.values() {
        let pairs = similar_pairs(candidates, threshold);
        out.extend(groups(candidates, &pairs));
    }
    out
}

/// Production functions big enough, in path order.
fn candidates<'a>(files: &'a [FileFacts], cfg: &Duplicates) -> Vec<Candidate<'a>> {
    let mut out: Vec<Candidate> = files
        .iter()
        .filter(|f| !f.is_test)
        .flat_map(|f| f.units.iter().map(move |u| (f, u)))
        .filter(|(_, u)| is_comparable(u, cfg))
        .map(|(f, unit)| Candidate {
            family: f.lang.family(),
            file: &f.rel,
            unit,
            tokens: total_tokens(&unit.lines),
        })
        .collect();
    out.sort_by_key(|c| (c.file, c.unit.start_line, c.unit.start_byte));
    out
}

fn is_comparable(u: &Unit, cfg: &Duplicates) -> bool {
    u.kind == UnitKind::Function
        && !u.in_test
        && u.lines() >= cfg.min_lines
        && u.body
            .is_some_and(|fp| fp.tokens as usize >= cfg.near_miss.min_tokens)
}

/// Consecutive lines a candidate pair must share in one run.
const RUN: usize = 3;

/// A run found in more functions than this is boilerplate, not a sign of copying.
const MAX_FUNCTIONS_PER_RUN: usize = 32;

/// Runs a pair must share to be aligned: a copy with a few statements edited keeps
/// several, while unrelated functions built from common statements meet in a run
/// or two by chance far more often than in three.
const MIN_SHARED_RUNS: usize = 3;

/// Every pair in different files at or above `threshold` (equal normalized
/// bodies excepted: those are exact copies).
fn similar_pairs(candidates: &[Candidate], threshold: f64) -> Vec<Pair> {
    let mut shared = RunIndex::new(candidates).shared_runs(candidates);
    shared.par_sort_unstable();
    shared_enough(&shared)
        .into_par_iter()
        .filter_map(|(x, y)| {
            let (a, b) = (&candidates[x], &candidates[y]);
            let s = may_reach(a, b, threshold).then(|| similarity(&a.unit.lines, &b.unit.lines))?;
            (s >= threshold).then_some((x, y, s))
        })
        .collect()
}

/// The pairs (sorted, one entry per shared run) met in `MIN_SHARED_RUNS` runs.
fn shared_enough(sorted: &[(usize, usize)]) -> Vec<(usize, usize)> {
    sorted
        .chunk_by(|a, b| a == b)
        .filter(|runs| runs.len() >= MIN_SHARED_RUNS)
        .map(|runs| runs[0])
        .collect()
}

/// Which candidates hold each run: `(run, candidate)` sorted by run, one
/// allocation for the whole tree.
struct RunIndex {
    entries: Vec<(u64, usize)>,
}

impl RunIndex {
    fn new(candidates: &[Candidate]) -> Self {
        let mut entries: Vec<(u64, usize)> = candidates
            .par_iter()
            .enumerate()
            .flat_map_iter(|(i, c)| runs(&c.unit.lines).into_iter().map(move |key| (key, i)))
            .collect();
        entries.par_sort_unstable();
        RunIndex { entries }
    }

    /// `(x, y)` with `x < y` in different files, once for every run both
    /// hold; a run held by many functions is boilerplate and pairs none. One
    /// pass over the sorted index: no lookup per run.
    fn shared_runs(&self, candidates: &[Candidate]) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let holders = self.entries.chunk_by(|a, b| a.0 == b.0);
        for holders in holders.filter(|h| (2..=MAX_FUNCTIONS_PER_RUN).contains(&h.len())) {
            for (i, &(_, x)) in holders.iter().enumerate() {
                let others = holders[i + 1..].iter().map(|e| e.1);
                let apart = others.filter(|&y| candidates[y].file != candidates[x].file);
                out.extend(apart.map(|y| (x, y)));
            }
        }
        out
    }
}

/// The distinct runs of `RUN` consecutive lines of a body.
fn runs(lines: &[NormalizedLine]) -> Vec<u64> {
    let mut keys: Vec<u64> = lines
        .windows(RUN)
        .map(|run| run.iter().fold(0, |hash, line| mix(hash, line.hash)))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// Cheap bounds before the alignment: not exact copies, and sizes within
/// reach of each other (aligned tokens are at most the smaller body's).
fn may_reach(a: &Candidate, b: &Candidate, t: f64) -> bool {
    let (small, large) = (a.tokens.min(b.tokens), a.tokens.max(b.tokens));
    a.unit.body != b.unit.body && small as f64 >= t / (2.0 - t) * large as f64
}

/// One finding per group: the first candidate by path with every not yet
/// grouped candidate similar to it. A function nested in a grouped one is
/// part of that finding already and starts or joins no other.
fn groups(candidates: &[Candidate], pairs: &[Pair]) -> Vec<Violation> {
    let mut similar: Vec<Vec<(usize, f64)>> = vec![Vec::new(); candidates.len()];
    for &(x, y, s) in pairs {
        similar[x].push((y, s));
        similar[y].push((x, s));
    }
    let mut grouped = Grouped::default();
    let mut out = Vec::new();
    // Candidates are in path order, so the first of a group is its first by path.
    for (first, partners) in similar.iter().enumerate() {
        if partners.is_empty() || grouped.holds(&candidates[first]) {
            continue;
        }
        let mut members: Vec<(usize, f64)> = partners
            .iter()
            .copied()
            .filter(|&(i, _)| !grouped.holds(&candidates[i]))
            .collect();
        if members.is_empty() {
            continue;
        }
        members.sort_by_key(|m| m.0);
        grouped.add(&candidates[first]);
        for &(i, _) in &members {
            grouped.add(&candidates[i]);
        }
        out.push(violation(candidates, first, &members));
    }
    out
}

/// The byte spans of grouped candidates, per file.
#[derive(Default)]
struct Grouped<'a> {
    spans: HashMap<&'a str, Vec<(usize, usize)>>,
}

impl<'a> Grouped<'a> {
    fn add(&mut self, c: &Candidate<'a>) {
        self.spans
            .entry(c.file)
            .or_default()
            .push((c.unit.start_byte, c.unit.end_byte));
    }

    /// Grouped itself, or nested in a grouped function.
    fn holds(&self, c: &Candidate) -> bool {
        self.spans.get(c.file).is_some_and(|spans| {
            spans
                .iter()
                .any(|&(start, end)| start <= c.unit.start_byte && c.unit.end_byte <= end)
        })
    }
}

fn violation(candidates: &[Candidate], first: usize, members: &[(usize, f64)]) -> Violation {
    let c = &candidates[first];
    let related = members
        .iter()
        .map(|&(i, s)| {
            let other = candidates[i].unit;
            Related {
                file: candidates[i].file.to_string(),
                line: other.start_line,
                end_line: other.end_line,
                key: format!("near:{}", other.name),
                label: format!("near-miss copy `{}` ({}% similar)", other.name, percent(s)),
            }
        })
        .collect();
    let lowest = members.iter().map(|m| percent(m.1)).min().unwrap_or(0);
    let highest = members.iter().map(|m| percent(m.1)).max().unwrap_or(0);
    let range = if lowest == highest {
        format!("{lowest}%")
    } else {
        format!("{lowest}-{highest}%")
    };
    Violation::new(
        Rule::DuplicateImplementation,
        c.file,
        c.unit.start_line,
        format!(
            "{} `{}`: {} near-miss copies of one body ({range} similar, {} normalized tokens)",
            c.unit.kind.label(),
            c.unit.name,
            members.len() + 1,
            c.tokens
        ),
        format!("near:{}", c.unit.name),
    )
    .spanning(c.unit.end_line)
    .with_related(related)
}

/// Whole percent, rounded down so a finding never looks more similar than it is.
fn percent(similarity: f64) -> u32 {
    (similarity * 100.0).floor() as u32
}
