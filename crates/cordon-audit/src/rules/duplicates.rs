//! duplicate-implementation: same-named types in different modules, and near-identical
//! bodies across files. Only production code takes part (test files and test scopes do not).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use globset::GlobSet;

use crate::config::{Duplicates, glob_set};
use crate::model::{Related, Rule, Violation};
use crate::normalize::BodyFingerprint;
use crate::parse::{FileFacts, TypeDef, Unit};

/// Lowercase, drop `_`/`-`, then strip the first matching configured suffix (e.g. `impl`).
pub fn normalize_name(name: &str, suffixes: &[String]) -> String {
    let squash = |s: &str| -> String {
        s.chars()
            .filter(|c| *c != '_' && *c != '-')
            .flat_map(char::to_lowercase)
            .collect()
    };
    let norm = squash(name);
    for suffix in suffixes.iter().map(|s| squash(s)) {
        if norm.len() > suffix.len() && norm.ends_with(&suffix) {
            return norm[..norm.len() - suffix.len()].to_string();
        }
    }
    norm
}

/// Conventional names and where each is allowed (`None`: everywhere). The
/// globs were checked when the config loaded; one that still fails to
/// compile (a default) allows nothing, so it shows up as findings.
fn conventions(cfg: &Duplicates) -> Vec<(String, Option<GlobSet>)> {
    cfg.convention_names
        .iter()
        .map(|c| {
            let paths = if c.paths.is_empty() {
                None
            } else {
                Some(glob_set(&c.paths).unwrap_or_else(|_| GlobSet::empty()))
            };
            (normalize_name(&c.name, &cfg.strip_suffixes), paths)
        })
        .collect()
}

fn is_convention(conventions: &[(String, Option<GlobSet>)], norm: &str, file: &str) -> bool {
    conventions.iter().any(|(name, paths)| {
        name == norm && paths.as_ref().is_none_or(|paths| paths.is_match(file))
    })
}

pub fn by_name(files: &[FileFacts], cfg: &Duplicates) -> Vec<Violation> {
    let allowed: BTreeSet<String> = cfg
        .allowed_names
        .iter()
        .map(|n| normalize_name(n, &cfg.strip_suffixes))
        .collect();
    let conventions = conventions(cfg);
    let mut groups: BTreeMap<(&str, String), Vec<(&str, &TypeDef)>> = BTreeMap::new();
    for f in files.iter().filter(|f| !f.is_test) {
        let considered = |t: &&TypeDef| !(t.in_test || (cfg.ignore_nested && t.nested));
        for t in f.types.iter().filter(considered) {
            let norm = normalize_name(&t.name, &cfg.strip_suffixes);
            if !allowed.contains(&norm) && !is_convention(&conventions, &norm, &f.rel) {
                groups
                    .entry((f.lang.family(), norm))
                    .or_default()
                    .push((&f.rel, t));
            }
        }
    }
    let mut out = Vec::new();
    for ((_, norm), mut members) in groups {
        let files: BTreeSet<&str> = members.iter().map(|m| m.0).collect();
        if files.len() < 2 {
            continue;
        }
        members.sort_by_key(|(file, def)| (*file, def.line));
        let (file, def) = members[0];
        let related = members[1..]
            .iter()
            .map(|(file, other)| Related {
                file: file.to_string(),
                line: other.line,
                end_line: other.end_line,
                key: format!("name:{norm}"),
                label: format!("{} `{}`", other.kind, other.name),
            })
            .collect();
        out.push(
            Violation::new(
                Rule::DuplicateImplementation,
                file,
                def.line,
                format!(
                    "{} `{}` (normalized `{norm}`) is defined in {} places",
                    def.kind,
                    def.name,
                    members.len()
                ),
                format!("name:{norm}"),
            )
            .spanning(def.end_line)
            .with_related(related),
        );
    }
    out
}

type Member<'a> = (&'a str, &'a Unit);

pub fn by_body(files: &[FileFacts], cfg: &Duplicates) -> Vec<Violation> {
    // Hash buckets keep this linear in the number of units (no pairwise comparison).
    let mut buckets: HashMap<(&str, BodyFingerprint), Vec<Member>> = HashMap::new();
    for f in files.iter().filter(|f| !f.is_test) {
        for u in &f.units {
            let Some(fp) = u.body.filter(|fp| fp.tokens as usize >= cfg.min_tokens) else {
                continue;
            };
            if !u.in_test && u.lines() >= cfg.min_lines {
                buckets
                    .entry((f.lang.family(), fp))
                    .or_default()
                    .push((&f.rel, u));
            }
        }
    }
    let mut groups: Vec<(u32, Vec<Member>)> = buckets
        .into_iter()
        .filter(|(_, m)| distinct_files(m) > 1)
        .map(|((_, fp), mut m)| {
            m.sort_by_key(|(f, u)| (*f, u.start_line));
            (fp.tokens, m)
        })
        .collect();
    // Largest bodies first, so a duplicated class hides its (also duplicated) methods.
    groups.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| key(&a.1).cmp(&key(&b.1))));
    let mut reported: HashMap<&str, Vec<(usize, usize)>> = HashMap::new();
    let mut out = Vec::new();
    for (tokens, members) in groups {
        let fresh: Vec<Member> = members
            .into_iter()
            .filter(|(f, u)| !inside_reported(&reported, f, u))
            .collect();
        if distinct_files(&fresh) < 2 {
            continue;
        }
        for &(file, unit) in &fresh {
            reported
                .entry(file)
                .or_default()
                .push((unit.start_byte, unit.end_byte));
        }
        out.push(body_violation(&fresh, tokens));
    }
    out
}

fn key<'a>(members: &[Member<'a>]) -> Option<(&'a str, usize)> {
    members.first().map(|(f, u)| (*f, u.start_line))
}

fn distinct_files(members: &[Member]) -> usize {
    members.iter().map(|m| m.0).collect::<BTreeSet<_>>().len()
}

fn inside_reported(reported: &HashMap<&str, Vec<(usize, usize)>>, file: &str, u: &Unit) -> bool {
    reported.get(file).is_some_and(|spans| {
        spans
            .iter()
            .any(|&(s, e)| s <= u.start_byte && u.end_byte <= e)
    })
}

/// One finding per group: the first copy by path, the others related.
fn body_violation(group: &[Member], tokens: u32) -> Violation {
    let (file, unit) = group[0];
    let related = group[1..]
        .iter()
        .map(|(file, other)| Related {
            file: file.to_string(),
            line: other.start_line,
            end_line: other.end_line,
            key: format!("body:{}", other.name),
            label: format!("copy `{}`", other.name),
        })
        .collect();
    Violation::new(
        Rule::DuplicateImplementation,
        file,
        unit.start_line,
        format!(
            "{} `{}`: {} near-identical copies of one body ({tokens} normalized tokens)",
            unit.kind.label(),
            unit.name,
            group.len()
        ),
        format!("body:{}", unit.name),
    )
    .spanning(unit.end_line)
    .with_related(related)
}

#[cfg(test)]
mod tests {
    use super::normalize_name;

    #[test]
    fn names_normalize_case_separators_and_suffixes() {
        let suffixes = vec!["Impl".to_string()];
        assert_eq!(
            normalize_name("ClickHouse_Client", &suffixes),
            "clickhouseclient"
        );
        assert_eq!(
            normalize_name("ClickhouseClientImpl", &suffixes),
            "clickhouseclient"
        );
        assert_eq!(normalize_name("Impl", &suffixes), "impl");
    }
}
