//! Supported languages, the tree-sitter grammars of those read through one, and one reusable
//! parser per grammar per thread.

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

    /// The tree-sitter grammar the language is read with; `None` for Python,
    /// which its own tokenizer reads (`parse::python`): several times faster
    /// than a parse tree, and the audit needs no expression tree.
    pub(crate) fn grammar(self) -> Option<Grammar> {
        match self {
            Lang::Python => None,
            Lang::TypeScript => Some(Grammar::TypeScript),
            Lang::Tsx => Some(Grammar::Tsx),
            Lang::Rust => Some(Grammar::Rust),
        }
    }
}

/// A tree-sitter grammar the audit parses with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Grammar {
    TypeScript,
    Tsx,
    Rust,
}

impl Grammar {
    /// The grammar whose node kinds stand for the whole family when code is
    /// compared: TSX is TypeScript plus JSX, with the same kind names.
    pub(crate) fn canonical(self) -> Grammar {
        match self {
            Grammar::Tsx => Grammar::TypeScript,
            other => other,
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    pub(crate) fn language(self) -> Language {
        match self {
            Grammar::TypeScript => tree_sitter_typescript::LANGUAGE_TYPESCRIPT.into(),
            Grammar::Tsx => tree_sitter_typescript::LANGUAGE_TSX.into(),
            Grammar::Rust => tree_sitter_rust::LANGUAGE.into(),
        }
    }
}

thread_local! {
    // Parsers are costly to set up; each rayon worker keeps one per grammar.
    static PARSERS: RefCell<[Option<Parser>; 3]> = const { RefCell::new([None, None, None]) };
}

/// Parses `source`; `None` only if the grammar cannot be loaded or parsing was cancelled.
pub fn parse(grammar: Grammar, source: &str) -> Option<Tree> {
    PARSERS.with(|cell| {
        let mut parsers = cell.borrow_mut();
        let slot = &mut parsers[grammar.index()];
        if slot.is_none() {
            let mut parser = Parser::new();
            parser.set_language(&grammar.language()).ok()?;
            *slot = Some(parser);
        }
        slot.as_mut()?.parse(source, None)
    })
}
