//! Import resolution (Python, TypeScript, Rust): which definition an imported name is, following re-exports to the module that defines it.

use std::collections::HashMap;

use crate::lang::Lang;
use crate::parse::{FileFacts, Import, UnitKind};

/// Re-export chains longer than this are given up on (a cycle, or a maze).
const MAX_HOPS: usize = 16;

/// Every module of one language of the tree, by name: dotted for Python
/// (`app.db`), the path without extension or `/index` for TypeScript
/// (`src/db`, as the parser resolves relative specifiers), the module path
/// for Rust (`cordon_core::ids`).
pub struct Modules<'a> {
    lang: Lang,
    by_name: HashMap<String, &'a FileFacts>,
    /// Python: every dotted tail of every module name (`pkg.mod` of
    /// `src.pkg.mod`), to its file, or `None` when two modules share it.
    by_tail: HashMap<String, Option<&'a FileFacts>>,
}

/// A name a module offers: `B` in `app` for `from .x import A as B` in
/// `app/__init__.py`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PublicName {
    pub module: String,
    pub name: String,
}

impl PublicName {
    pub fn new(module: &str, name: &str) -> Self {
        Self {
            module: module.to_string(),
            name: name.to_string(),
        }
    }
}

/// Where an imported name is defined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition<'a> {
    /// The module the import named, as an absolute name (a Rust path
    /// relative to the importing module made absolute).
    pub via: String,
    pub module: String,
    /// The name it is defined under (`A`, when imported as an alias `B`).
    pub name: String,
    pub file: &'a str,
    pub line: usize,
    pub end_line: usize,
    /// The public modules that re-export it on the way, outermost first,
    /// with the name each passes it on as.
    pub reexported_by: Vec<PublicName>,
}

impl<'a> Modules<'a> {
    /// The modules of `lang`'s family (`.ts` and `.tsx` are one).
    pub fn new(files: &'a [FileFacts], lang: Lang) -> Self {
        let by_name: HashMap<String, &FileFacts> = files
            .iter()
            .filter(|f| f.lang.family() == lang.family())
            .map(|f| (module_of(lang, &f.rel), f))
            .collect();
        let mut by_tail: HashMap<String, Option<&FileFacts>> = HashMap::new();
        if lang == Lang::Python {
            for (name, file) in &by_name {
                let tails = name.match_indices('.').map(|(at, _)| &name[at + 1..]);
                for tail in tails {
                    by_tail
                        .entry(tail.to_string())
                        .and_modify(|seen| *seen = None)
                        .or_insert(Some(file));
                }
            }
        }
        Self {
            lang,
            by_name,
            by_tail,
        }
    }

    /// The module's file: an exact name, else the one module whose name ends
    /// with it (a `src/` layout imports `pkg.mod` from `src/pkg/mod.py`).
    fn file(&self, module: &str) -> Option<&'a FileFacts> {
        self.by_name
            .get(module)
            .copied()
            .or_else(|| self.by_tail.get(module).copied().flatten())
    }

    /// The module's name as its file's path gives it (`module_of`), however
    /// it is spelled: `tests.pkg.base` for `pkg.base` too (a tail, as from
    /// a root on `sys.path`), so two spellings of one file compare equal.
    /// A module not in the tree keeps its name.
    /// Whether `module` passes `name` on by an explicit declaration: always
    /// in TypeScript (`export … from`) and Rust (`pub use`), in Python when
    /// its `__all__` lists the name.
    pub fn declares_public(&self, module: &str, name: &str) -> bool {
        self.lang != Lang::Python
            || self
                .file(module)
                .is_some_and(|f| f.declared_public.iter().any(|n| n == name))
    }

    pub fn full_name(&self, module: &str) -> String {
        self.file(module)
            .map_or_else(|| module.to_string(), |f| module_of(self.lang, &f.rel))
    }

    /// Where `symbol`, imported from `module` by the module `from`, is
    /// defined: in that module, or where the module passes it on from
    /// (Python: any import of it, an `__init__.py` above all; TypeScript:
    /// `export … from`, or `export *`; Rust: `pub use`, globs too), an
    /// alias (`A as B`) followed to the name it stands for. `None`
    /// when it leads out of the tree (a package that is not audited) or to
    /// something that is not a type or function (a constant, a submodule).
    pub fn definition(&self, from: &str, module: &str, symbol: &str) -> Option<Definition<'a>> {
        let via = self.absolute(from, module)?;
        let mut found = self.follow(via.clone(), symbol, Vec::new(), MAX_HOPS)?;
        found.via = via;
        Some(found)
    }

    /// The name of the module `module` means in `from`: in Rust a path that
    /// starts with a plain name is a child of `from` when it has one (in
    /// `lib.rs`, `ids::RunId` is `<crate>::ids::RunId`), else a crate.
    fn absolute(&self, from: &str, module: &str) -> Option<String> {
        if self.lang == Lang::Rust {
            let child = format!("{from}::{module}");
            if self.by_name.contains_key(&child) {
                return Some(child);
            }
        }
        self.file(module).map(|_| module.to_string())
    }

    fn follow(
        &self,
        module: String,
        symbol: &str,
        mut reexported_by: Vec<PublicName>,
        hops: usize,
    ) -> Option<Definition<'a>> {
        let file = self.file(&module)?;
        if let Some((line, end_line)) = defined_in(file, symbol) {
            return Some(Definition {
                via: module.clone(),
                module,
                name: symbol.to_string(),
                file: &file.rel,
                line,
                end_line,
                reexported_by,
            });
        }
        let hops = hops.checked_sub(1)?;
        let passes_on = |i: &&Import| self.lang == Lang::Python || i.reexport;
        let named = file
            .imports
            .iter()
            .filter(passes_on)
            .find(|i| i.local == symbol);
        if is_public(&module) && named.is_some_and(|i| i.reexport) {
            reexported_by.push(PublicName::new(&module, symbol));
        }
        if let Some(from) = named {
            let next = self.absolute(&module, &from.module)?;
            return self.follow(next, &from.symbol, reexported_by, hops);
        }
        // `export * from "./x"`: the first star source that has it.
        file.imports
            .iter()
            .filter(|i| i.reexport && i.symbol == "*")
            .find_map(|star| {
                let mut chain = reexported_by.clone();
                if is_public(&module) {
                    chain.push(PublicName::new(&module, symbol));
                }
                let next = self.absolute(&module, &star.module)?;
                self.follow(next, symbol, chain, hops)
            })
    }
}

/// Python: `app/db/__init__.py` is `app.db`, `app/db/client.py` is
/// `app.db.client`. TypeScript: `src/db/index.ts` is `src/db`,
/// `src/db/client.ts` is `src/db/client`.
pub fn module_of(lang: Lang, rel: &str) -> String {
    if lang == Lang::Rust {
        return crate::parse::rust_module_path(rel);
    }
    if lang == Lang::Python {
        let path = rel.strip_suffix(".py").unwrap_or(rel);
        let path = path.strip_suffix("/__init__").unwrap_or(path);
        return path.replace('/', ".");
    }
    let stem = [".tsx", ".ts", ".jsx", ".js", ".mjs"]
        .iter()
        .find_map(|ext| rel.strip_suffix(ext))
        .unwrap_or(rel);
    stem.strip_suffix("/index").unwrap_or(stem).to_string()
}

/// No part of the name starts with `_` (a private module is no canonical path).
fn is_public(module: &str) -> bool {
    module
        .split(['.', '/', ':'])
        .all(|part| !part.starts_with('_'))
}

/// The region of a top-level class or function named `symbol`.
fn defined_in(file: &FileFacts, symbol: &str) -> Option<(usize, usize)> {
    let class = file
        .types
        .iter()
        .find(|t| !t.nested && t.name == symbol)
        .map(|t| (t.line, t.end_line));
    class.or_else(|| {
        file.units
            .iter()
            .find(|u| u.kind == UnitKind::Function && u.name == symbol)
            .map(|u| (u.start_line, u.end_line))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::extract;

    fn ts(files: &[(&str, &str)]) -> Vec<FileFacts> {
        files
            .iter()
            .map(|(rel, src)| extract(rel, Lang::TypeScript, src, false, 1).expect("parses"))
            .collect()
    }

    #[test]
    fn names_are_followed_through_named_and_star_reexports_to_their_definition() {
        let files = ts(&[
            ("src/db/client.ts", "export class Client {}\n"),
            ("src/db/index.ts", "export * from \"./client\";\n"),
            ("src/api.ts", "export { Client } from \"./db\";\n"),
            ("src/other.ts", "export class Client {}\n"),
        ]);
        let modules = Modules::new(&files, Lang::TypeScript);
        let via_api = modules
            .definition("src/app", "src/api", "Client")
            .expect("resolved");
        assert_eq!((via_api.file, via_api.line), ("src/db/client.ts", 1));
        assert_eq!(
            via_api.reexported_by,
            [
                PublicName::new("src/api", "Client"),
                PublicName::new("src/db", "Client")
            ]
        );
        let direct = modules
            .definition("src/app", "src/db/client", "Client")
            .expect("resolved");
        assert_eq!(direct.file, "src/db/client.ts");
        // The same name defined elsewhere is another definition.
        let other = modules
            .definition("src/app", "src/other", "Client")
            .expect("resolved");
        assert_eq!(other.file, "src/other.ts");
        // Out of the tree, or not a class or function: not resolved.
        assert_eq!(modules.definition("src/app", "react", "useState"), None);
        assert_eq!(modules.definition("src/app", "src/db", "Missing"), None);
    }

    #[test]
    fn a_src_layout_module_is_found_by_its_tail_unless_two_share_it() {
        let py = |rel: &str| extract(rel, Lang::Python, "class X:\n    pass\n", false, 1);
        let files: Vec<FileFacts> = ["src/pkg/mod.py", "a/util.py", "b/util.py"]
            .into_iter()
            .map(|rel| py(rel).expect("parses"))
            .collect();
        let modules = Modules::new(&files, Lang::Python);
        let found = modules
            .definition("app", "pkg.mod", "X")
            .expect("by its tail");
        assert_eq!(found.file, "src/pkg/mod.py");
        assert_eq!(
            modules.definition("app", "util", "X"),
            None,
            "two modules end in `util`"
        );
        assert_eq!(modules.full_name("pkg.mod"), "src.pkg.mod");
        assert_eq!(modules.full_name("src.pkg.mod"), "src.pkg.mod");
        assert_eq!(modules.full_name("util"), "util", "ambiguous: as spelled");
    }

    #[test]
    fn rust_names_are_followed_through_pub_use_and_globs_relative_to_their_module() {
        let rs = |rel: &str, src: &str| extract(rel, Lang::Rust, src, false, 1).expect("parses");
        let files = vec![
            rs(
                "crates/k/src/lib.rs",
                "pub mod ids;\npub mod all;\npub use ids::RunId;\n",
            ),
            rs(
                "crates/k/src/ids.rs",
                "pub struct RunId;\npub struct Other;\n",
            ),
            rs("crates/k/src/all.rs", "pub use super::ids::*;\n"),
            rs("crates/k/src/run.rs", "pub struct RunId;\n"),
        ];
        let modules = Modules::new(&files, Lang::Rust);
        let via_root = modules
            .definition("app", "k", "RunId")
            .expect("through pub use");
        assert_eq!((via_root.file, via_root.line), ("crates/k/src/ids.rs", 1));
        assert_eq!(via_root.reexported_by, [PublicName::new("k", "RunId")]);
        let via_glob = modules
            .definition("app", "k::all", "Other")
            .expect("through the glob");
        assert_eq!(via_glob.file, "crates/k/src/ids.rs");
        // Inside the crate, `ids` is the child module.
        let relative = modules.definition("k", "ids", "RunId").expect("relative");
        assert_eq!(relative.via, "k::ids");
        let other = modules
            .definition("app", "k::run", "RunId")
            .expect("resolved");
        assert_eq!(other.file, "crates/k/src/run.rs", "a different definition");
        assert_eq!(modules.definition("app", "serde", "Serialize"), None);
    }

    #[test]
    fn files_name_their_modules() {
        assert_eq!(module_of(Lang::Python, "app/db/__init__.py"), "app.db");
        assert_eq!(module_of(Lang::Python, "app/db/client.py"), "app.db.client");
        assert_eq!(module_of(Lang::Python, "setup.py"), "setup");
        assert_eq!(module_of(Lang::TypeScript, "src/db/index.ts"), "src/db");
        assert_eq!(module_of(Lang::Tsx, "src/ui/Panel.tsx"), "src/ui/Panel");
        assert!(is_public("app.db") && !is_public("app._impl"));
        assert!(!is_public("src/_internal/x"));
    }
}
