//! Token normalization of code bodies: identifiers become `ID`, literals `LIT`, comments vanish.
//!
//! Two bodies with the same fingerprint differ at most in names and constant values,
//! which is what "near-identical" means for the duplicate-implementation rule.

use std::hash::{DefaultHasher, Hash, Hasher};

use std::sync::OnceLock;

use tree_sitter::{Node, TreeCursor};

use crate::lang::Lang;

/// Hash of the normalized token stream plus its length (lengths guard against collisions).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BodyFingerprint {
    pub hash: u64,
    pub tokens: u32,
}

// Sentinels outside the u16 kind-id range used by real grammar symbols.
const ID: u32 = 1 << 16;
const LIT: u32 = (1 << 16) + 1;
/// Offset for kinds the canonical grammar lacks (JSX nodes in TSX).
const OWN_KIND: u32 = 1 << 17;

/// How a node kind tokenizes; looked up by kind id so the hot loop avoids string compares.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Plain,
    Identifier,
    Literal,
    Skip,
}

fn class_of(name: &str, named: bool) -> Class {
    if name.contains("comment") {
        Class::Skip
    } else if named && name.ends_with("identifier") {
        Class::Identifier
    } else if named && is_literal(name) {
        Class::Literal
    } else {
        Class::Plain
    }
}

/// A node kind's class and the token it hashes to when it is a plain leaf.
#[derive(Clone, Copy)]
struct Kind {
    class: Class,
    token: u32,
}

/// Per kind id of `lang`'s grammar. Leaf tokens are the ids of the family's
/// canonical grammar (TSX kinds map to TypeScript's by name), so the same code
/// in a `.ts` and a `.tsx` file fingerprints the same.
fn table(lang: Lang) -> &'static [Kind] {
    static TABLES: [OnceLock<Vec<Kind>>; 4] = [const { OnceLock::new() }; 4];
    TABLES[lang.index()].get_or_init(|| {
        let grammar = lang.grammar();
        let canonical = lang.canonical().grammar();
        (0..grammar.node_kind_count())
            .map(|id| {
                let id = id as u16;
                let name = grammar.node_kind_for_id(id).unwrap_or("");
                let named = grammar.node_kind_is_named(id);
                let token = match canonical.id_for_node_kind(name, named) {
                    0 => OWN_KIND + u32::from(id),
                    shared => u32::from(shared),
                };
                Kind {
                    class: class_of(name, named),
                    token,
                }
            })
            .collect()
    })
}

// Literal node kinds of the Python, TypeScript and Rust grammars; whole strings
// (including f-string/template parts) count as one literal.
fn is_literal(kind: &str) -> bool {
    kind.ends_with("literal")
        || matches!(
            kind,
            "string"
                | "concatenated_string"
                | "template_string"
                | "integer"
                | "float"
                | "number"
                | "true"
                | "false"
                | "none"
                | "null"
                | "undefined"
                | "regex"
        )
}

/// Fingerprints the subtree rooted at `node` in one cursor pass.
pub fn fingerprint(lang: Lang, node: Node) -> BodyFingerprint {
    let classes = table(lang);
    let mut hasher = DefaultHasher::new();
    let mut tokens: u32 = 0;
    let mut cursor = node.walk();
    loop {
        let n = cursor.node();
        let kind = classes.get(usize::from(n.kind_id())).copied();
        let class = kind.map_or(Class::Plain, |k| k.class);
        let token = match class {
            Class::Skip => None,
            Class::Identifier => Some(ID),
            Class::Literal => Some(LIT),
            Class::Plain if n.child_count() == 0 => {
                Some(kind.map_or(OWN_KIND + u32::from(n.kind_id()), |k| k.token))
            }
            Class::Plain => None,
        };
        if let Some(t) = token {
            t.hash(&mut hasher);
            tokens += 1;
        }
        let descend = token.is_none() && class != Class::Skip;
        // Descend when the node has tokens below it, otherwise move on.
        let moved = (descend && cursor.goto_first_child()) || advance(&mut cursor);
        if !moved {
            break;
        }
    }
    BodyFingerprint {
        hash: hasher.finish(),
        tokens,
    }
}

// Moves to the next node in pre-order without descending; false once the walk is done.
fn advance(cursor: &mut TreeCursor) -> bool {
    loop {
        if cursor.goto_next_sibling() {
            return true;
        }
        if !cursor.goto_parent() {
            return false;
        }
    }
}
