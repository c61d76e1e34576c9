//! import-fragmentation: one symbol imported from several module paths, or from a deprecated one.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashSet};

use crate::config::{DeprecatedPath, Imports};
use crate::lang::Lang;
use crate::model::{Related, Rule, Violation};
use crate::parse::FileFacts;
use crate::rules::symbols::{Definition, Modules, PublicName, module_of};

/// An importing site, with the module as its import spells it (`pkg.base`,
/// or `tests.pkg.base` from a relative import in `tests/pkg/a.py`).
struct Site<'a> {
    file: &'a str,
    line: usize,
    spelled: String,
}

pub fn fragmentation(files: &[FileFacts], cfg: &Imports) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut flagged: HashSet<(&str, usize, &str)> = HashSet::new();
    for f in files {
        for imp in &f.imports {
            if let Some(dep) = cfg
                .deprecated
                .iter()
                .find(|d| is_deprecated(d, &imp.module, &imp.symbol))
            {
                flagged.insert((&f.rel, imp.line, &imp.symbol));
                out.push(deprecated_violation(
                    &f.rel,
                    imp.line,
                    &imp.module,
                    &imp.symbol,
                    dep,
                ));
            }
        }
    }
    for lang in [Lang::Python, Lang::TypeScript, Lang::Rust] {
        out.extend(resolved_fragmentation(files, lang, cfg, &flagged));
    }
    out
}

/// A definition, the paths its importing sites take to it (a module and
/// the name imported from it, an alias of a re-export included), and the
/// public modules that re-export it. A module is keyed by its full name
/// (`Modules::full_name`), so the spellings of one module file (`pkg.base`
/// with `tests/` as a root, `tests.pkg.base`) are one path.
struct Imported<'a> {
    definition: Definition<'a>,
    /// The full name of the definition's module.
    home: String,
    /// Rust sites inside the defining crate, which are judged apart.
    inside: bool,
    sites_by_path: BTreeMap<PublicName, Vec<Site<'a>>>,
    reexporters: BTreeSet<PublicName>,
    /// Every spelling seen of each full name, to show a path as written.
    spellings: BTreeMap<String, BTreeSet<String>>,
}

impl<'a> Imported<'a> {
    fn new(definition: Definition<'a>, inside: bool, lang: Lang) -> Self {
        let home = module_of(lang, definition.file);
        let spellings =
            BTreeMap::from([(home.clone(), BTreeSet::from([definition.module.clone()]))]);
        Self {
            definition,
            home,
            inside,
            sites_by_path: BTreeMap::new(),
            reexporters: BTreeSet::new(),
            spellings,
        }
    }

    /// The full name of `module`, its spelling remembered.
    fn full_name(&mut self, modules: &Modules, module: &str) -> String {
        let full = modules.full_name(module);
        let seen = self.spellings.entry(full.clone()).or_default();
        seen.insert(module.to_string());
        full
    }

    fn add_site(&mut self, modules: &Modules, via: &str, symbol: &str, file: &'a str, line: usize) {
        let path = PublicName::new(&self.full_name(modules, via), symbol);
        let spelled = via.to_string();
        let site = Site {
            file,
            line,
            spelled,
        };
        self.sites_by_path.entry(path).or_default().push(site);
    }

    /// Records the public re-exports on the way to the definition. A Python
    /// package's `__init__.py` that merely imports a name is the face of its
    /// own modules only: passing on another package's name, without listing
    /// it in `__all__`, is a convenience, not the name's home (`django.forms`
    /// passes on `django.core.exceptions.ValidationError`, which 92 sites
    /// import from where it is defined).
    fn add_reexporters(&mut self, modules: &Modules, by: &[PublicName]) {
        for p in by {
            let full = PublicName::new(&self.full_name(modules, &p.module), &p.name);
            let holds = self
                .home
                .strip_prefix(full.module.as_str())
                .is_some_and(|rest| rest.starts_with(['.', '/', ':']));
            if holds || modules.declares_public(&p.module, &p.name) {
                self.reexporters.insert(full);
            }
        }
    }

    /// A module's full name as shown: the spelling most of the sites on it
    /// use, a tie (or a module no site takes) the shortest, then the first
    /// in alphabetical order.
    fn spelling<'s>(&'s self, module: &'s str) -> &'s str {
        let sites = |spelled: &str| {
            let on = self
                .sites_by_path
                .iter()
                .filter(|(p, _)| p.module == module);
            on.flat_map(|(_, sites)| sites)
                .filter(|s| s.spelled == spelled)
                .count()
        };
        let seen = self.spellings.get(module).into_iter().flatten();
        seen.max_by_key(|s| (sites(s), Reverse(segments(s)), Reverse(s.as_str())))
            .map_or(module, String::as_str)
    }

    /// Whether `spelled` is a spelling of the full name `module`.
    fn spells(&self, module: &str, spelled: &str) -> bool {
        module == spelled
            || self
                .spellings
                .get(module)
                .is_some_and(|s| s.contains(spelled))
    }
}

/// One finding per *definition* imported through more than one path, at
/// the definition, its importing sites off the canonical path as related
/// places. Names are resolved through re-exports first, so two classes that
/// only share a name are never fragmentation, and a re-export (an
/// `__init__.py`'s import, `export … from`) is not an importing site.
fn resolved_fragmentation(
    files: &[FileFacts],
    lang: Lang,
    cfg: &Imports,
    flagged: &HashSet<(&str, usize, &str)>,
) -> Vec<Violation> {
    let modules = Modules::new(files, lang);
    let mut imported: BTreeMap<(&str, usize, bool), Imported> = BTreeMap::new();
    let family = files.iter().filter(|f| f.lang.family() == lang.family());
    for f in family.clone() {
        let here = module_of(lang, &f.rel);
        for imp in f.imports.iter().filter(|i| !i.reexport) {
            if flagged.contains(&(f.rel.as_str(), imp.line, imp.symbol.as_str()))
                || !comparable(&imp.module, &imp.symbol, cfg)
            {
                continue;
            }
            let Some(definition) = modules.definition(&here, &imp.module, &imp.symbol) else {
                continue;
            };
            let inside = lang == Lang::Rust && same_crate(&here, &definition.module);
            let entry = imported
                .entry((definition.file, definition.line, inside))
                .or_insert_with(|| Imported::new(definition.clone(), inside, lang));
            if !inside {
                entry.add_reexporters(&modules, &definition.reexported_by);
            }
            entry.add_site(&modules, &definition.via, &imp.symbol, &f.rel, imp.line);
        }
    }
    // Re-exports no site goes through still name a public path.
    for f in family {
        let module = module_of(lang, &f.rel);
        for imp in f.imports.iter().filter(|i| i.reexport) {
            if let Some(d) = modules.definition(&module, &module, &imp.local)
                && let Some(entry) = imported.get_mut(&(d.file, d.line, false))
            {
                entry.add_reexporters(&modules, &d.reexported_by);
            }
        }
    }
    imported
        .into_values()
        .flat_map(|i| match lang {
            Lang::Rust => vec![i],
            _ => split_inside_package(i, lang, cfg),
        })
        .filter(|i| i.sites_by_path.len() > 1)
        .map(|i| fragmented_definition(&i, cfg))
        .collect()
}

/// Python and TypeScript sites inside the package whose re-export is
/// canonical are judged apart, as Rust's inside a crate are: an
/// `__init__.py` or a barrel is the package's face to other code, and its
/// own modules import from where a name is defined (through the package
/// they risk an import cycle: Django's `django/apps/registry.py` takes
/// `AppConfig` from `django.apps.config`, as it must).
fn split_inside_package<'a>(mut i: Imported<'a>, lang: Lang, cfg: &Imports) -> Vec<Imported<'a>> {
    let package = canonical(&i, cfg).module;
    if package == i.home {
        return vec![i];
    }
    let sep = if lang == Lang::Python { "." } else { "/" };
    let is_inside = |file: &str| {
        let module = module_of(lang, file);
        module
            .strip_prefix(package.as_str())
            .is_some_and(|rest| rest.starts_with(sep))
    };
    let mut inside = Imported {
        definition: i.definition.clone(),
        home: i.home.clone(),
        inside: true,
        sites_by_path: BTreeMap::new(),
        reexporters: BTreeSet::new(),
        spellings: i.spellings.clone(),
    };
    for (path, sites) in &mut i.sites_by_path {
        let (mine, theirs): (Vec<Site>, Vec<Site>) =
            sites.drain(..).partition(|s| is_inside(s.file));
        *sites = theirs;
        if !mine.is_empty() {
            inside.sites_by_path.insert(path.clone(), mine);
        }
    }
    i.sites_by_path.retain(|_, sites| !sites.is_empty());
    vec![i, inside]
}

/// Rust sites inside the item's own crate are judged apart from the other
/// crates' sites (Python's and TypeScript's inside a package likewise): a crate's re-exports are its face to other crates, and
/// inside it the canonical path is the module that defines the item
/// (`crate::model::User` in cordon-core, `cordon_core::User` elsewhere).
fn same_crate(here: &str, module: &str) -> bool {
    let crate_of = |module: &str| module.split("::").next().unwrap_or("").to_string();
    crate_of(here) == crate_of(module)
}

/// The canonical path is the configured one (`imports.canonical`) when it
/// reaches the definition, else the shortest public re-export (under the
/// name it passes the definition on as; see `add_reexporters`), else (and
/// always for Rust sites inside the defining crate) the definition's module.
/// Modules by full name.
fn canonical(i: &Imported, cfg: &Imports) -> PublicName {
    let d = &i.definition;
    let home = PublicName::new(&i.home, &d.name);
    let configured = cfg.canonical.get(&d.name).filter(|_| !i.inside);
    let reaching = configured.and_then(|path| {
        std::iter::once(&home)
            .chain(&i.reexporters)
            .chain(i.sites_by_path.keys())
            .find(|p| i.spells(&p.module, path))
    });
    let shortest = || {
        i.reexporters.iter().min_by_key(|p| {
            let m = &p.module;
            (segments(m), m.len(), m.as_str())
        })
    };
    reaching.or_else(shortest).cloned().unwrap_or(home)
}

fn fragmented_definition(i: &Imported, cfg: &Imports) -> Violation {
    let d = &i.definition;
    let canonical = canonical(i, cfg);
    // A path is its module, and the name too where it is an alias.
    let show = |p: &PublicName| {
        let module = i.spelling(&p.module);
        if p.name == d.name {
            format!("`{module}`")
        } else {
            format!("`{}` from `{module}`", p.name)
        }
    };
    let (scope, key_suffix) = match (i.inside, d.module.contains("::")) {
        (true, true) => (" inside its crate", ":inside"),
        (true, false) => (" inside its package", ":inside"),
        (false, _) => ("", ""),
    };
    let paths: Vec<String> = i
        .sites_by_path
        .iter()
        .map(|(path, sites)| format!("{} ({} site(s))", show(path), sites.len()))
        .collect();
    let related = i
        .sites_by_path
        .iter()
        .filter(|(path, _)| **path != canonical)
        .flat_map(|(path, sites)| {
            sites.iter().map(move |s| Related {
                file: s.file.to_string(),
                line: s.line,
                end_line: s.line,
                key: format!("import:{}:{}", path.name, s.spelled),
                label: format!("imports `{}` from `{}`", path.name, s.spelled),
            })
        })
        .collect();
    Violation::new(
        Rule::ImportFragmentation,
        d.file,
        d.line,
        format!(
            "`{}` (defined in `{}`) is imported{scope} through {} paths: {}; use {}",
            d.name,
            i.spelling(&i.home),
            paths.len(),
            paths.join(", "),
            show(&canonical)
        ),
        format!("fragment:{}:{}{key_suffix}", d.name, d.module),
    )
    .spanning(d.end_line)
    .with_related(related)
}

/// The parts of a module name: 2 for `app.db`, `src/db` and `k::db` alike.
fn segments(module: &str) -> usize {
    module
        .split(['.', '/', ':'])
        .filter(|part| !part.is_empty())
        .count()
}

fn comparable(module: &str, symbol: &str, cfg: &Imports) -> bool {
    !module.is_empty()
        && !cfg.allowed_symbols.iter().any(|s| s == symbol)
        && !cfg
            .ignore_modules
            .iter()
            .any(|p| module.starts_with(p.as_str()))
}

/// A deprecated path matches the module itself, a sub-module, or the imported item.
fn is_deprecated(dep: &DeprecatedPath, module: &str, symbol: &str) -> bool {
    let p = dep.path.as_str();
    if module.is_empty() {
        return symbol == p;
    }
    let candidates = [
        module.to_string(),
        format!("{module}.{symbol}"),
        format!("{module}::{symbol}"),
        format!("{module}/{symbol}"),
    ];
    candidates.iter().any(|c| {
        c == p
            || c.strip_prefix(p).is_some_and(|rest| {
                rest.starts_with('.') || rest.starts_with("::") || rest.starts_with('/')
            })
    })
}

fn deprecated_violation(
    file: &str,
    line: usize,
    module: &str,
    symbol: &str,
    dep: &DeprecatedPath,
) -> Violation {
    let hint = dep
        .replacement
        .as_ref()
        .map_or(String::new(), |r| format!("; use `{r}` instead"));
    Violation::new(
        Rule::ImportFragmentation,
        file,
        line,
        format!(
            "`{symbol}` imported from deprecated path `{module}` (deprecated: `{}`){hint}",
            dep.path
        ),
        format!("deprecated:{symbol}:{module}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::extract;

    fn rust(files: &[(&str, &str)]) -> Vec<FileFacts> {
        files
            .iter()
            .map(|(rel, src)| extract(rel, Lang::Rust, src, false, 1).expect("parses"))
            .collect()
    }

    #[test]
    fn other_crates_are_judged_by_the_public_path_and_the_own_crate_by_the_defining_module() {
        let files = rust(&[
            (
                "crates/core/src/lib.rs",
                "pub mod ids;\npub use ids::RunId;\n",
            ),
            ("crates/core/src/ids.rs", "pub struct RunId;\n"),
            ("crates/core/src/run.rs", "use crate::ids::RunId;\n"),
            ("crates/app/src/a.rs", "use core::RunId;\n"),
            ("crates/app/src/b.rs", "use core::ids::RunId;\n"),
            ("crates/app/tests/it.rs", "use core::RunId;\n"),
        ]);
        let found = fragmentation(&files, &Imports::default());
        assert_eq!(found.len(), 1, "{found:?}");
        let finding = &found[0];
        assert_eq!(
            (finding.file.as_str(), finding.line),
            ("crates/core/src/ids.rs", 1)
        );
        assert!(
            finding.message.contains("use `core`"),
            "{}",
            finding.message
        );
        let related: Vec<_> = finding.related.iter().map(|r| r.file.as_str()).collect();
        assert_eq!(related, ["crates/app/src/b.rs"]);
    }

    fn python(files: &[(&str, &str)]) -> Vec<FileFacts> {
        files
            .iter()
            .map(|(rel, src)| extract(rel, Lang::Python, src, false, 1).expect("parses"))
            .collect()
    }

    fn client_tree() -> Vec<FileFacts> {
        python(&[
            ("app/db/client.py", "class Client:\n    pass\n"),
            (
                "app/db/api.py",
                "from app.db.client import Client\n\n__all__ = [\"Client\"]\n",
            ),
            ("app/x.py", "from app.db.api import Client\n"),
            ("app/y.py", "from app.db.client import Client\n"),
        ])
    }

    fn sites(finding: &Violation) -> Vec<&str> {
        finding.related.iter().map(|r| r.file.as_str()).collect()
    }

    #[test]
    fn a_name_in_all_is_a_public_reexport_and_no_importing_site() {
        let found = fragmentation(&client_tree(), &Imports::default());
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].message.contains("2 paths"), "{}", found[0].message);
        assert!(
            found[0].message.contains("use `app.db.api`"),
            "{}",
            found[0].message
        );
        assert_eq!(sites(&found[0]), ["app/y.py"]);
    }

    #[test]
    fn sites_inside_the_reexporting_package_take_the_defining_module() {
        let tree = |outside: &[(&'static str, &'static str)]| {
            let mut files = vec![
                (
                    "pkg/__init__.py",
                    "from .core import Thing\nfrom . import registry\n",
                ),
                ("pkg/core.py", "class Thing:\n    pass\n"),
                ("pkg/registry.py", "from pkg.core import Thing\n"),
            ];
            files.extend_from_slice(outside);
            python(&files)
        };
        // Inside `pkg` the module is the path (through `pkg` is a cycle), so
        // one outside site through the package is no second path.
        let found = fragmentation(
            &tree(&[("app/a.py", "from pkg import Thing\n")]),
            &Imports::default(),
        );
        assert_eq!(found.len(), 0, "{found:?}");
        // Outside, the package's face and the module are two paths.
        let files = tree(&[
            ("app/a.py", "from pkg import Thing\n"),
            ("app/b.py", "from pkg.core import Thing\n"),
        ]);
        let found = fragmentation(&files, &Imports::default());
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(sites(&found[0]), ["app/b.py"]);
        assert_eq!(
            found[0].message,
            "`Thing` (defined in `pkg.core`) is imported through 2 paths: \
             `pkg` (1 site(s)), `pkg.core` (1 site(s)); use `pkg`"
        );
    }

    /// A test-suite run with `tests/` on `sys.path` (Django's): `pkg.base`
    /// and, from a relative import, `tests.pkg.base` are one module file.
    fn rooted_tree(more: &[(&'static str, &'static str)]) -> Vec<FileFacts> {
        let mut files = vec![
            ("tests/pkg/base.py", "class X:\n    pass\n"),
            ("tests/pkg/a.py", "from .base import X\n"),
            ("tests/pkg/b.py", "from pkg.base import X\n"),
        ];
        files.extend_from_slice(more);
        python(&files)
    }

    #[test]
    fn two_spellings_of_one_module_file_are_one_path() {
        let found = fragmentation(&rooted_tree(&[]), &Imports::default());
        assert_eq!(found.len(), 0, "{found:?}");
    }

    #[test]
    fn a_package_spelled_from_a_root_still_splits_its_inside_sites_off() {
        let files = rooted_tree(&[
            ("tests/pkg/__init__.py", "from .base import X\n"),
            ("tests/other/c.py", "from pkg import X\n"),
            ("tests/other/d.py", "from pkg.base import X\n"),
            ("tests/other/e.py", "from pkg.base import X\n"),
        ]);
        let found = fragmentation(&files, &Imports::default());
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(sites(&found[0]), ["tests/other/d.py", "tests/other/e.py"]);
        assert_eq!(
            found[0].message,
            "`X` (defined in `pkg.base`) is imported through 2 paths: \
             `pkg` (1 site(s)), `pkg.base` (2 site(s)); use `pkg`"
        );
        let keys: Vec<_> = found[0].related.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["import:X:pkg.base", "import:X:pkg.base"]);
    }

    #[test]
    fn a_package_passing_on_another_packages_name_is_no_canonical_path() {
        let files = python(&[
            (
                "core/exceptions.py",
                "class ValidationError(Exception):\n    pass\n",
            ),
            (
                "forms/__init__.py",
                "from core.exceptions import ValidationError\n",
            ),
            ("a.py", "from core.exceptions import ValidationError\n"),
            ("b.py", "from core.exceptions import ValidationError\n"),
            ("c.py", "from forms import ValidationError\n"),
        ]);
        let found = fragmentation(&files, &Imports::default());
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].message.ends_with("use `core.exceptions`"),
            "{}",
            found[0].message
        );
        assert_eq!(sites(&found[0]), ["c.py"]);
    }

    #[test]
    fn a_configured_canonical_path_wins_when_it_reaches_the_definition() {
        let mut cfg = Imports::default();
        cfg.canonical
            .insert("Client".into(), "app.db.client".into());
        let found = fragmentation(&client_tree(), &cfg);
        assert!(
            found[0].message.contains("use `app.db.client`"),
            "{}",
            found[0].message
        );
        assert_eq!(sites(&found[0]), ["app/x.py"]);
        // A path that does not lead to this definition is not taken.
        cfg.canonical.insert("Client".into(), "elsewhere".into());
        let found = fragmentation(&client_tree(), &cfg);
        assert!(
            found[0].message.contains("use `app.db.api`"),
            "{}",
            found[0].message
        );
    }
}
