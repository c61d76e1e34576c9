//! Supported languages and one reusable tree-sitter parser per language per thread.

use std::cell::RefCell;
use std::path::Path;

use tree_sitter::{Language, Parser, Tree};

/// The grammars `cordon audit` understands, chosen by file extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Lang {
    Python,
    TypeScript,
    Tsx,
    Rust,
}

impl Lang {
    pub fn from_path(path: &Path) -> Option<Lang> {
        match path.extension()?.to_str()? {
            "py" | "pyi" => Some(Lang::Python),
            "ts" | "mts" | "cts" => Some(Lang::TypeScript),
            "tsx" => Some(Lang::Tsx),
            "rs" => Some(Lang::Rust),
            _ => None,
        }
    }

    /// Rules compare code only within one family: a Python `Order` and a TypeScript
    /// `Order` are usually two ends of one API, not a duplicated concept.
    pub fn family(self) -> &'static str {
        match self {
            Lang::Python => "python",
            Lang::TypeScript | Lang::Tsx => "typescript",
            Lang::Rust => "rust",
        }
    }

    /// The grammar whose node kinds stand for the whole family when code is
    /// compared: TSX is TypeScript plus JSX, with the same kind names.
    pub(crate) fn canonical(self) -> Lang {
        match self {
            Lang::Tsx => Lang::TypeScript,
            other => other,
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    pub(crate) fn grammar(self) -> Language {
        match self {
            Lang::Python => tree_sitter_python::LANGUAGE.into(),
            Lang::TypeScript => tree_sitter_typescript::LANGUAGE_TYPESCRIPT.into(),
            Lang::Tsx => tree_sitter_typescript::LANGUAGE_TSX.into(),
            Lang::Rust => tree_sitter_rust::LANGUAGE.into(),
        }
    }
}

thread_local! {
    // Parsers are costly to set up; each rayon worker keeps one per grammar.
    static PARSERS: RefCell<[Option<Parser>; 4]> = const { RefCell::new([None, None, None, None]) };
}

/// Parses `source`; `None` only if the grammar cannot be loaded or parsing was cancelled.
pub fn parse(lang: Lang, source: &str) -> Option<Tree> {
    PARSERS.with(|cell| {
        let mut parsers = cell.borrow_mut();
        let slot = &mut parsers[lang.index()];
        if slot.is_none() {
            let mut parser = Parser::new();
            parser.set_language(&lang.grammar()).ok()?;
            *slot = Some(parser);
        }
        slot.as_mut()?.parse(source, None)
    })
}
