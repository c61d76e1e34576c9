//! duplicate-implementation: same-named types in different modules, and near-identical
//! bodies across files. Only production code takes part (test files and test scopes do not).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use globset::GlobSet;

use crate::config::{Duplicates, glob_set};
use crate::lang::Lang;
use crate::model::{Related, Rule, Violation};
use crate::normalize::BodyFingerprint;
use crate::parse::{FileFacts, TypeDef, Unit, UnitKind};
use crate::rules::symbols::{Modules, module_of};

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

/// Same-named types in different modules: one finding per name group whose
/// members share their lineage (bases resolved to their definitions) and
/// their bodies are not plainly apart (`alike`). Types that specialize different bases are
/// parallel hierarchies (Django's form `CharField(Field)` and model
/// `CharField(Field)`, each `Field` its own module's), and types with the
/// same name but other methods are other concepts (Django's migration-graph,
/// template and tree `Node`s), not one concept defined twice.
pub fn by_name(files: &[FileFacts], cfg: &Duplicates) -> Vec<Violation> {
    let allowed: BTreeSet<String> = cfg
        .allowed_names
        .iter()
        .map(|n| normalize_name(n, &cfg.strip_suffixes))
        .collect();
    let conventions = conventions(cfg);
    let modules: HashMap<&str, Modules> = [Lang::Python, Lang::TypeScript, Lang::Rust]
        .into_iter()
        .map(|lang| (lang.family(), Modules::new(files, lang)))
        .collect();
    type Group<'a> = Vec<(&'a str, &'a TypeDef)>;
    let mut groups: BTreeMap<(&str, String, Vec<String>), Group> = BTreeMap::new();
    for f in files.iter().filter(|f| !f.is_test) {
        let considered = |t: &&TypeDef| !(t.in_test || (cfg.ignore_nested && t.nested));
        for t in f.types.iter().filter(considered) {
            let norm = normalize_name(&t.name, &cfg.strip_suffixes);
            if !allowed.contains(&norm) && !is_convention(&conventions, &norm, &f.rel) {
                let family = f.lang.family();
                let lineage = modules.get(family).map(|m| lineage(f, t, m));
                groups
                    .entry((family, norm, lineage.unwrap_or_default()))
                    .or_default()
                    .push((&f.rel, t));
            }
        }
    }
    groups
        .into_iter()
        .flat_map(|((_, norm, _), members)| {
            let concepts = same_concepts(members);
            concepts
                .into_iter()
                .filter_map(move |concept| name_violation(&norm, concept))
        })
        .collect()
}

/// Splits same-named types into concepts: in path order, each joins the
/// first concept whose first type it is `alike`, else starts its own.
fn same_concepts<'a>(mut types: Vec<(&'a str, &'a TypeDef)>) -> Vec<Vec<(&'a str, &'a TypeDef)>> {
    types.sort_by_key(|(file, def)| (*file, def.line));
    let mut concepts: Vec<Vec<(&str, &TypeDef)>> = Vec::new();
    for member in types {
        match concepts.iter_mut().find(|c| alike(c[0].1, member.1)) {
            Some(concept) => concept.push(member),
            None => concepts.push(vec![member]),
        }
    }
    concepts
}

/// Two same-named types are other concepts when each body defines enough
/// names (`DISTINCT_MIN_NAMES`: methods and class attributes) and their own
/// names (`__dunder__` methods aside: every class has an `__init__`) share
/// under a quarter of the smaller set: Django's migration-graph, template and
/// tree `Node`s. With fewer names there is too little to tell a divergent
/// copy (two `Client`s of one service, `fetch` and `query`) from another
/// concept, so name and lineage decide, as they do where a language records
/// no members (Rust).
fn alike(a: &TypeDef, b: &TypeDef) -> bool {
    if a.members.len().min(b.members.len()) < DISTINCT_MIN_NAMES {
        return true;
    }
    let (x, y) = (own_names(a), own_names(b));
    4 * x.intersection(&y).count() >= x.len().min(y.len())
}

/// Names each of two same-named types must define before their bodies can
/// tell them apart.
const DISTINCT_MIN_NAMES: usize = 3;

/// A type's member names other than `__dunder__` methods.
fn own_names(t: &TypeDef) -> BTreeSet<&str> {
    let names = t.members.iter().map(String::as_str);
    names
        .filter(|n| !(n.starts_with("__") && n.ends_with("__")))
        .collect()
}

/// A type's bases, each named by where it is defined: in the file, at its
/// definition through the file's imports, else as written.
fn lineage(f: &FileFacts, t: &TypeDef, modules: &Modules) -> Vec<String> {
    let here = module_of(f.lang, &f.rel);
    let mut out: Vec<String> = t
        .bases
        .iter()
        .map(|base| {
            let (head, rest) = base.split_once('.').unwrap_or((base, ""));
            let local = rest.is_empty() && f.types.iter().any(|o| !o.nested && o.name == *base);
            if local {
                return format!("{}:{base}", f.rel);
            }
            match f.imports.iter().find(|i| i.local == head) {
                Some(i) if rest.is_empty() => {
                    modules.definition(&here, &i.module, &i.symbol).map_or_else(
                        || format!("{}.{}", i.module, i.symbol),
                        |d| format!("{}:{}", d.file, d.line),
                    )
                }
                Some(i) => format!("{}.{}.{rest}", i.module, i.symbol),
                None => base.clone(),
            }
        })
        .collect();
    out.sort();
    out
}

/// The finding of one concept's same-named types (sorted by path), when they
/// are in more than one file.
fn name_violation(norm: &str, members: Vec<(&str, &TypeDef)>) -> Option<Violation> {
    let files: BTreeSet<&str> = members.iter().map(|m| m.0).collect();
    if files.len() < 2 {
        return None;
    }
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
    Some(
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
    )
}

type Member<'a> = (&'a str, &'a Unit);

/// Whether a class is a framework convention where it is (a Django
/// `Migration` in `migrations/`): generated or boilerplate, its copies are
/// no duplicated implementation either.
fn conventional_class(
    conventions: &[(String, Option<GlobSet>)],
    u: &Unit,
    file: &str,
    cfg: &Duplicates,
) -> bool {
    let short = u.name.rsplit(['.', ':']).next().unwrap_or(&u.name);
    let norm = normalize_name(short, &cfg.strip_suffixes);
    u.kind == UnitKind::Class && is_convention(conventions, &norm, file)
}

pub fn by_body(files: &[FileFacts], cfg: &Duplicates) -> Vec<Violation> {
    // Hash buckets keep this linear in the number of units (no pairwise comparison).
    let mut buckets: HashMap<(&str, BodyFingerprint), Vec<Member>> = HashMap::new();
    let conventions = conventions(cfg);
    for f in files.iter().filter(|f| !f.is_test) {
        for u in &f.units {
            let Some(fp) = u.body.filter(|fp| fp.tokens as usize >= cfg.min_tokens) else {
                continue;
            };
            let conventional = conventional_class(&conventions, u, &f.rel, cfg);
            if !u.in_test && u.lines() >= cfg.min_lines && !conventional {
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
    use super::*;
    use crate::parse::extract;

    fn python(files: &[(&str, &str)]) -> Vec<FileFacts> {
        files
            .iter()
            .map(|(rel, src)| extract(rel, Lang::Python, src, false, 1).expect("parses"))
            .collect()
    }

    /// (primary file, related files) of each finding.
    fn places(found: &[Violation]) -> Vec<(&str, Vec<&str>)> {
        found
            .iter()
            .map(|v| {
                let related = v.related.iter().map(|r| r.file.as_str()).collect();
                (v.file.as_str(), related)
            })
            .collect()
    }

    #[test]
    fn same_named_types_of_different_lineages_are_parallel_hierarchies() {
        let files = python(&[
            (
                "forms/fields.py",
                "class Field:\n    pass\n\nclass CharField(Field):\n    pass\n",
            ),
            (
                "models/fields.py",
                "class Field:\n    pass\n\nclass CharField(Field):\n    pass\n",
            ),
            ("base.py", "class BaseWrapper:\n    pass\n"),
            (
                "x/wrap.py",
                "from base import BaseWrapper\n\nclass Wrapper(BaseWrapper):\n    pass\n",
            ),
            (
                "y/wrap.py",
                "from base import BaseWrapper\n\nclass Wrapper(BaseWrapper):\n    pass\n",
            ),
        ]);
        // Each `CharField` specializes its own module's `Field`: not reported.
        // Both `Wrapper`s specialize the one `BaseWrapper`: one concept twice.
        let found = by_name(&files, &Duplicates::default());
        assert_eq!(
            places(&found),
            [
                ("forms/fields.py", vec!["models/fields.py"]),
                ("x/wrap.py", vec!["y/wrap.py"]),
            ]
        );
    }

    #[test]
    fn same_named_types_whose_bodies_define_other_names_are_other_concepts() {
        let graph = "class Node:\n    def __init__(self, key):\n        self.key = key\n\n    \
                     def add_child(self, c):\n        pass\n\n    def add_parent(self, p):\n        pass\n";
        let template = "class Node:\n    token = None\n\n    def render(self, context):\n        \
                        pass\n\n    def get_nodes_by_type(self, t):\n        pass\n";
        let tree = "class Node:\n    default = 'AND'\n\n    def add(self, data):\n        pass\n\n    \
                    def negate(self):\n        pass\n";
        let files = python(&[
            ("graph.py", graph),
            ("template.py", template),
            ("tree.py", tree),
            // One service's client twice, its query method named apart: too
            // few names to tell them apart, so still one concept.
            (
                "db/clickhouse.py",
                "class Client:\n    def query(self, sql):\n        pass\n",
            ),
            (
                "svc/clickhouse.py",
                "class Client:\n    def fetch(self, sql):\n        pass\n",
            ),
        ]);
        let found = by_name(&files, &Duplicates::default());
        assert_eq!(
            places(&found),
            [("db/clickhouse.py", vec!["svc/clickhouse.py"])]
        );
        let members = &files[1].types[0].members;
        assert_eq!(members, &["token", "render", "get_nodes_by_type"]);
    }

    #[test]
    fn framework_plugin_names_and_migration_bodies_are_conventions() {
        let migration = "class Migration:\n    dependencies = [('app', '0001')]\n    \
                         operations = [\n        alter('user', 'email', 254),\n        \
                         alter('user', 'name', 150),\n    ]\n";
        let files = python(&[
            (
                "app/management/commands/load.py",
                "class Command:\n    pass\n",
            ),
            (
                "app/management/commands/dump.py",
                "class Command:\n    pass\n",
            ),
            (
                "app/backends/mysql/base.py",
                "class DatabaseWrapper:\n    pass\n",
            ),
            (
                "app/backends/sqlite/base.py",
                "class DatabaseWrapper:\n    pass\n",
            ),
            ("app/migrations/0002_a.py", migration),
            ("app/migrations/0003_b.py", migration),
        ]);
        let cfg = Duplicates {
            min_tokens: 10,
            ..Duplicates::default()
        };
        assert_eq!(places(&by_name(&files, &cfg)), []);
        assert_eq!(places(&by_body(&files, &cfg)), []);
        // Outside its convention's paths a copied class is a copy.
        let copied = python(&[("tools/a.py", migration), ("tools/b.py", migration)]);
        assert_eq!(
            places(&by_body(&copied, &cfg)),
            [("tools/a.py", vec!["tools/b.py"])]
        );
    }

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
