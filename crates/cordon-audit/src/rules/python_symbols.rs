//! Python import resolution: which definition an imported name is, following `__init__.py` re-exports to the module that defines it.

use std::collections::HashMap;

use crate::lang::Lang;
use crate::parse::{FileFacts, UnitKind};

/// Re-export chains longer than this are given up on (a cycle, or a maze).
const MAX_HOPS: usize = 16;

/// Every Python module of the tree, by dotted name.
pub struct PythonModules<'a> {
    by_name: HashMap<String, &'a FileFacts>,
}

/// Where an imported name is defined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition<'a> {
    pub module: String,
    pub file: &'a str,
    pub line: usize,
    pub end_line: usize,
    /// The public modules that re-export it on the way, outermost first.
    pub reexported_by: Vec<String>,
}

impl<'a> PythonModules<'a> {
    pub fn new(files: &'a [FileFacts]) -> Self {
        let by_name = files
            .iter()
            .filter(|f| f.lang == Lang::Python)
            .map(|f| (module_of(&f.rel), f))
            .collect();
        Self { by_name }
    }

    /// The module's file: an exact name, else the one module whose name ends
    /// with it (a `src/` layout imports `pkg.mod` from `src/pkg/mod.py`).
    fn file(&self, module: &str) -> Option<&'a FileFacts> {
        if let Some(file) = self.by_name.get(module) {
            return Some(file);
        }
        let suffix = format!(".{module}");
        let mut matches = self
            .by_name
            .iter()
            .filter(|(name, _)| name.ends_with(&suffix));
        match (matches.next(), matches.next()) {
            (Some((_, file)), None) => Some(file),
            _ => None,
        }
    }

    /// Where `symbol`, imported from `module`, is defined: in that module, or
    /// where the module imports it from (an `__init__.py` re-export, or any
    /// module passing a name on). `None` when it leads out of the tree (a
    /// package that is not audited) or to something that is not a class or
    /// function (a constant, a submodule).
    pub fn definition(&self, module: &str, symbol: &str) -> Option<Definition<'a>> {
        let mut module = module.to_string();
        let mut reexported_by = Vec::new();
        for _ in 0..MAX_HOPS {
            let file = self.file(&module)?;
            if let Some((line, end_line)) = defined_in(file, symbol) {
                return Some(Definition {
                    module,
                    file: &file.rel,
                    line,
                    end_line,
                    reexported_by,
                });
            }
            let from = file.imports.iter().find(|i| i.symbol == symbol)?;
            if is_public(&module) {
                reexported_by.push(module.clone());
            }
            module = from.module.clone();
        }
        None
    }
}

/// `app/db/__init__.py` is `app.db`; `app/db/client.py` is `app.db.client`.
pub fn module_of(rel: &str) -> String {
    let path = rel.strip_suffix(".py").unwrap_or(rel);
    let path = path.strip_suffix("/__init__").unwrap_or(path);
    path.replace('/', ".")
}

/// Whether the file is a package's `__init__.py`, whose imports re-export.
pub fn is_package_init(rel: &str) -> bool {
    rel == "__init__.py" || rel.ends_with("/__init__.py")
}

/// No part of the dotted name starts with `_` (a private module is no canonical path).
fn is_public(module: &str) -> bool {
    module.split('.').all(|part| !part.starts_with('_'))
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

    #[test]
    fn files_name_their_modules() {
        assert_eq!(module_of("app/db/__init__.py"), "app.db");
        assert_eq!(module_of("app/db/client.py"), "app.db.client");
        assert_eq!(module_of("setup.py"), "setup");
        assert!(is_package_init("app/db/__init__.py"));
        assert!(!is_package_init("app/db/not__init__.py"));
        assert!(is_public("app.db") && !is_public("app._impl"));
    }
}
