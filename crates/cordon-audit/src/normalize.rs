//! Token normalization of code bodies: identifiers become `ID`, literals `LIT`, comments vanish.
//!
//! Two bodies with the same fingerprint differ at most in names and constant values,
//! which is what "near-identical" means for the duplicate-implementation rule. Tokens come
//! from a tree-sitter walk (TypeScript, Rust) or from the Python tokenizer. The same
//! pass can also hash each source line with its identifiers kept by name (literals
//! still `LIT`), which the near-miss check aligns to find copies with a few
//! statements edited: such copies keep their names, and the names are what tells
//! two edited copies from two functions built from the same kinds of statement.

use std::hash::{DefaultHasher, Hash, Hasher};

use std::sync::OnceLock;

use tree_sitter::{Node, TreeCursor};

use crate::lang::Grammar;

/// Hash of the normalized token stream plus its length (lengths guard against collisions).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BodyFingerprint {
    pub hash: u64,
    pub tokens: u32,
}

/// The tokens of one source line (identifiers by name, literals as `LIT`): their
/// hash and how many there are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NormalizedLine {
    pub hash: u64,
    pub tokens: u32,
}

/// A body's fingerprint and, when asked for, its lines in source order.
pub struct NormalizedBody {
    pub fingerprint: BodyFingerprint,
    pub lines: Vec<NormalizedLine>,
}

// Sentinels outside the u16 kind-id range used by real grammar symbols.
pub(crate) const ID: u32 = 1 << 16;
pub(crate) const LIT: u32 = (1 << 16) + 1;
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
fn table(grammar: Grammar) -> &'static [Kind] {
    static TABLES: [OnceLock<Vec<Kind>>; 3] = [const { OnceLock::new() }; 3];
    TABLES[grammar.index()].get_or_init(|| {
        let canonical = grammar.canonical().language();
        let grammar = grammar.language();
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

// Literal node kinds of the TypeScript and Rust grammars; whole strings
// (including template parts) count as one literal.
fn is_literal(kind: &str) -> bool {
    kind.ends_with("literal")
        || matches!(
            kind,
            "string"
                | "template_string"
                | "number"
                | "true"
                | "false"
                | "null"
                | "undefined"
                | "regex"
        )
}

/// One token of a body: what it hashes to (`ID`, `LIT`, or the kind of a
/// keyword or operator), its bytes and its (0-based) row.
#[derive(Clone, Copy)]
pub(crate) struct Token {
    pub token: u32,
    pub start: usize,
    pub end: usize,
    pub row: usize,
}

/// The tokens of the body walked last, in source order. A function or class
/// nested in it is normalized from them instead of walking its subtree again
/// (each method would otherwise be walked twice: with its class, and alone).
#[derive(Default)]
pub struct Tape {
    start: usize,
    end: usize,
    tokens: Vec<Token>,
}

impl Tape {
    /// Normalizes the subtree rooted at `node`: from the tape when the body
    /// walked last encloses it, else by walking it in one cursor pass (and
    /// keeping its tokens). Given the file's source it also hashes each
    /// source line (a token belongs to the line it starts on).
    pub fn normalize(
        &mut self,
        grammar: Grammar,
        node: Node,
        source_for_lines: Option<&[u8]>,
    ) -> NormalizedBody {
        let (start, end) = (node.start_byte(), node.end_byte());
        if self.tokens.is_empty() || start < self.start || end > self.end {
            self.record(grammar, node);
        }
        let own_name = node
            .child_by_field_name("name")
            .map(|n| (n.start_byte(), n.end_byte()));
        normalize(&self.tokens, (start, end), own_name, source_for_lines)
    }

    /// Walks `node`'s subtree and keeps its tokens.
    fn record(&mut self, grammar: Grammar, node: Node) {
        let classes = table(grammar);
        self.tokens.clear();
        (self.start, self.end) = (node.start_byte(), node.end_byte());
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
            if let Some(token) = token {
                self.tokens.push(Token {
                    token,
                    start: n.start_byte(),
                    end: n.end_byte(),
                    row: n.start_position().row,
                });
            }
            let descend = token.is_none() && class != Class::Skip;
            // Descend when the node has tokens below it, otherwise move on.
            let moved = (descend && cursor.goto_first_child()) || advance(&mut cursor);
            if !moved {
                break;
            }
        }
    }
}

/// Normalizes the tokens (in source order) that start within `span`; given
/// the file's source it also hashes each source line (a token belongs to the
/// line it starts on), with the body's own name (`own_name`'s bytes) kept `ID`.
pub(crate) fn normalize(
    tokens: &[Token],
    (start, end): (usize, usize),
    own_name: Option<(usize, usize)>,
    source_for_lines: Option<&[u8]>,
) -> NormalizedBody {
    let first = tokens.partition_point(|t| t.start < start);
    let body = tokens[first..].iter().take_while(|t| t.start < end);
    let mut hasher = DefaultHasher::new();
    let mut count: u32 = 0;
    let mut lines = source_for_lines.map(|source| LineSplitter::new(source, own_name));
    for t in body {
        t.token.hash(&mut hasher);
        count += 1;
        if let Some(lines) = lines.as_mut() {
            lines.push(t);
        }
    }
    NormalizedBody {
        fingerprint: BodyFingerprint {
            hash: hasher.finish(),
            tokens: count,
        },
        lines: lines.map(LineSplitter::finish).unwrap_or_default(),
    }
}

/// Cuts the token stream into source lines as it goes by.
struct LineSplitter<'s> {
    source: &'s [u8],
    /// Bytes of the body's own name, which stays `ID`: copies are named apart.
    own_name: Option<(usize, usize)>,
    row: Option<usize>,
    hash: u64,
    tokens: u32,
    lines: Vec<NormalizedLine>,
}

/// One step of a multiplicative hash (FxHash's). Lines are hashed for every
/// function, so this is cheaper than SipHash; collisions only cost a wrong line
/// match in an alignment, never a finding of the exact check.
pub fn mix(hash: u64, value: u64) -> u64 {
    (hash.rotate_left(5) ^ value).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95)
}

fn mix_bytes(mut hash: u64, bytes: &[u8]) -> u64 {
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        hash = mix(hash, u64::from_le_bytes(word));
    }
    for &byte in chunks.remainder() {
        hash = mix(hash, u64::from(byte));
    }
    hash
}

impl<'s> LineSplitter<'s> {
    fn new(source: &'s [u8], own_name: Option<(usize, usize)>) -> Self {
        LineSplitter {
            source,
            own_name,
            row: None,
            hash: 0,
            tokens: 0,
            lines: Vec::new(),
        }
    }

    fn push(&mut self, t: &Token) {
        if self.row != Some(t.row) {
            self.close_line();
            self.row = Some(t.row);
        }
        let token = t.token;
        self.hash = mix(self.hash, u64::from(token));
        let span = (t.start, t.end);
        if token == ID && self.own_name != Some(span) {
            let name = self.source.get(span.0..span.1).unwrap_or_default();
            self.hash = mix_bytes(self.hash, name);
        }
        self.tokens += 1;
    }

    fn close_line(&mut self) {
        if self.tokens > 0 {
            self.lines.push(NormalizedLine {
                hash: std::mem::take(&mut self.hash),
                tokens: std::mem::take(&mut self.tokens),
            });
        }
    }

    fn finish(mut self) -> Vec<NormalizedLine> {
        self.close_line();
        // Kept for the whole audit, one per function: no spare capacity.
        self.lines.shrink_to_fit();
        self.lines
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
