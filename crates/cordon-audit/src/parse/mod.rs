//! Facts read from one file (types, code units, imports), shared by every rule: Python from its tokens (`python/`), TypeScript and Rust from a tree-sitter syntax tree.

mod python;
mod rust;
mod typescript;

pub(crate) use rust::module_path as rust_module_path;

use std::rc::Rc;

use tree_sitter::Node;

use crate::lang::{self, Grammar, Lang};
use crate::normalize::{self, BodyFingerprint, NormalizedLine};

/// Everything the rules need from one file; the tree itself is dropped after extraction.
#[derive(Clone, Debug)]
pub struct FileFacts {
    pub rel: String,
    pub lang: Lang,
    pub is_test: bool,
    pub total_lines: usize,
    /// Lines inside in-file test scopes (Rust `#[cfg(test)]` modules).
    pub test_lines: usize,
    pub types: Vec<TypeDef>,
    pub units: Vec<Unit>,
    pub imports: Vec<Import>,
    /// Python: the names of the module's `__all__`, which it declares public.
    pub declared_public: Vec<String>,
}

/// A named class/struct/trait/interface/enum definition.
#[derive(Clone, Debug)]
pub struct TypeDef {
    pub kind: &'static str,
    pub name: String,
    pub line: usize,
    pub end_line: usize,
    pub in_test: bool,
    /// Defined inside another type or a function (Django's `class Meta`).
    pub nested: bool,
    /// The base classes as written (`Field`, `models.Model`; TypeScript's
    /// `extends`); empty for Rust.
    pub bases: Vec<String>,
    /// Names its body defines directly: methods (Python, TypeScript) and
    /// class attributes (Python); empty for Rust, whose methods live in
    /// `impl` blocks.
    pub members: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnitKind {
    Function,
    Class,
}

impl UnitKind {
    pub fn label(self) -> &'static str {
        match self {
            UnitKind::Function => "function",
            UnitKind::Class => "class",
        }
    }
}

/// A function or class-like body (Rust: `impl` block) with its normalized fingerprint.
#[derive(Clone, Debug)]
pub struct Unit {
    pub kind: UnitKind,
    pub name: String,
    pub start_line: usize,
    pub end_line: usize,
    pub start_byte: usize,
    pub end_byte: usize,
    pub in_test: bool,
    /// Only computed for production units long enough to be compared.
    pub body: Option<BodyFingerprint>,
    /// The lines (identifiers by name) of a function with a `body` (empty
    /// otherwise), which the near-miss check aligns.
    pub lines: Vec<NormalizedLine>,
    /// Lines of its docstring (a Python function's first statement when it
    /// is a string); documentation, not code, for the function-size rule.
    pub doc_lines: usize,
}

impl Unit {
    pub fn lines(&self) -> usize {
        self.end_line + 1 - self.start_line
    }

    /// Its lines without its docstring.
    pub fn code_lines(&self) -> usize {
        self.lines().saturating_sub(self.doc_lines)
    }
}

/// `symbol` imported from `module` (module path as resolved for comparison).
#[derive(Clone, Debug)]
pub struct Import {
    pub symbol: String,
    pub module: String,
    /// The name the import binds here: `symbol`, or its alias (`A as B`).
    pub local: String,
    pub line: usize,
    /// Passes the name on rather than using it: TypeScript `export … from`,
    /// Rust `pub use`, every import of a Python package's `__init__.py`, and
    /// a Python import of a name in the module's `__all__`.
    pub reexport: bool,
}

/// What a syntax node means to the audit, decided per language.
pub(crate) enum NodeRole {
    Type {
        kind: &'static str,
        name: String,
        body_unit: bool,
    },
    Impl {
        name: String,
    },
    Function {
        name: String,
    },
    /// Names imported; the subtree is not descended.
    Imports(Vec<Binding>),
    /// Names passed on (`export { X } from "./x"`; symbol `*` for all).
    Reexports(Vec<Binding>),
    TestScope,
    Other,
}

/// One name an import statement brings in: `symbol` from `module`, bound
/// here as `local` (the alias of `A as B`, else `symbol`).
pub(crate) struct Binding {
    pub module: String,
    pub symbol: String,
    pub local: String,
}

impl Binding {
    pub fn new(module: String, symbol: String, alias: Option<String>) -> Self {
        let local = alias.unwrap_or_else(|| symbol.clone());
        Self {
            module,
            symbol,
            local,
        }
    }
}

/// Per-file inputs for the language classifiers.
pub(crate) struct Ctx<'a> {
    pub src: &'a [u8],
    pub rel: &'a str,
    pub grammar: Grammar,
}

impl Ctx<'_> {
    pub fn text(&self, node: Node) -> &str {
        node.utf8_text(self.src).unwrap_or("")
    }

    pub fn field(&self, node: Node, field: &str) -> Option<String> {
        node.child_by_field_name(field)
            .map(|n| self.text(n).to_string())
    }
}

/// Why a file could not be checked; reported as a warning, never fatal.
pub type ParseFailure = String;

/// Syntax error near (1-based) `line`: the message of the warning.
fn syntax_error(line: usize) -> ParseFailure {
    format!("does not parse (syntax error near line {line}); file skipped")
}

impl FileFacts {
    /// A file's facts before any definition or import is read.
    fn new(rel: &str, lang: Lang, is_test: bool, source: &str) -> Self {
        Self {
            rel: rel.to_string(),
            lang,
            is_test,
            total_lines: count_lines(source),
            test_lines: 0,
            types: Vec::new(),
            units: Vec::new(),
            imports: Vec::new(),
            declared_public: Vec::new(),
        }
    }
}

/// Reads `source` once and extracts facts; `min_lines` bounds fingerprinting work.
pub fn extract(
    rel: &str,
    lang: Lang,
    source: &str,
    is_test: bool,
    min_lines: usize,
) -> Result<FileFacts, ParseFailure> {
    let Some(grammar) = lang.grammar() else {
        return python::extract(rel, source, is_test, min_lines);
    };
    let tree = lang::parse(grammar, source).ok_or("parser failed to produce a tree")?;
    let root = tree.root_node();
    if root.has_error() {
        return Err(syntax_error(first_error_line(root).unwrap_or(1)));
    }
    let mut facts = FileFacts::new(rel, lang, is_test, source);
    let ctx = Ctx {
        src: source.as_bytes(),
        rel,
        grammar,
    };
    walk(root, &ctx, &mut facts, min_lines);
    Ok(facts)
}

/// Lines as editors count them: a trailing newline does not start a new line.
pub fn count_lines(source: &str) -> usize {
    let n = source.bytes().filter(|&b| b == b'\n').count();
    if source.is_empty() || source.ends_with('\n') {
        n
    } else {
        n + 1
    }
}

fn first_error_line(root: Node) -> Option<usize> {
    let mut cursor = root.walk();
    loop {
        let node = cursor.node();
        if node.is_error() || node.is_missing() {
            return Some(node.start_position().row + 1);
        }
        let descend = node.has_error() && cursor.goto_first_child();
        if !descend && !cursor.goto_next_sibling() {
            loop {
                if !cursor.goto_parent() {
                    return None;
                }
                if cursor.goto_next_sibling() {
                    break;
                }
            }
        }
    }
}

fn classify(node: Node, ctx: &Ctx) -> NodeRole {
    match ctx.grammar {
        Grammar::TypeScript | Grammar::Tsx => typescript::classify(node, ctx),
        Grammar::Rust => rust::classify(node, ctx),
    }
}

fn bases(node: Node, ctx: &Ctx) -> Vec<String> {
    let list = match ctx.grammar {
        Grammar::TypeScript | Grammar::Tsx => typescript::extends_clause(node),
        Grammar::Rust => None,
    };
    let Some(list) = list else {
        return Vec::new();
    };
    let mut cursor = list.walk();
    list.named_children(&mut cursor)
        .filter(|n| matches!(n.kind(), "identifier" | "attribute" | "member_expression"))
        .map(|n| ctx.text(n).to_string())
        .collect()
}

/// Whether definitions or imports can occur below a node of this kind; pruning
/// expressions roughly halves the walk, which dominates after parsing.
fn may_contain_facts(grammar: Grammar, kind: &str) -> bool {
    match grammar {
        Grammar::Rust => rust::CONTAINERS.contains(&kind),
        Grammar::TypeScript | Grammar::Tsx => !typescript::LEAVES.contains(&kind),
    }
}

/// What a node's children inherit: the qualified name of the innermost
/// definition, whether they are test code, and the type whose body they are
/// directly in (its methods are its members).
#[derive(Clone)]
struct Enclosing {
    name: Option<Rc<str>>,
    in_test: bool,
    owner: Option<usize>,
}

struct Frame<'t> {
    node: Node<'t>,
    scope: Enclosing,
}

// Iterative (explicit stack) so deeply nested generated code cannot overflow a thread stack.
fn walk(root: Node, ctx: &Ctx, facts: &mut FileFacts, min_lines: usize) {
    let mut bodies = Bodies {
        grammar: ctx.grammar,
        source: ctx.src,
        min_lines,
        tape: normalize::Tape::default(),
    };
    let top = Enclosing {
        name: None,
        in_test: facts.is_test,
        owner: None,
    };
    let mut stack = vec![Frame {
        node: root,
        scope: top,
    }];
    let mut cursor = root.walk();
    while let Some(frame) = stack.pop() {
        let node = frame.node;
        let Some(scope) = record(&frame, ctx, facts, &mut bodies) else {
            continue;
        };
        if !may_contain_facts(ctx.grammar, node.kind()) {
            continue;
        }
        for child in node.named_children(&mut cursor) {
            if child.child_count() > 0 {
                stack.push(Frame {
                    node: child,
                    scope: scope.clone(),
                });
            }
        }
    }
}

/// Records what `frame.node` defines; returns the scope for its children, or
/// `None` when the subtree needs no further walking (imports).
fn record(
    frame: &Frame,
    ctx: &Ctx,
    facts: &mut FileFacts,
    bodies: &mut Bodies,
) -> Option<Enclosing> {
    let (node, outer) = (frame.node, &frame.scope);
    let in_test = outer.in_test;
    let sep = if facts.lang == Lang::Rust { "::" } else { "." };
    let qualify = |name: &str| -> Rc<str> {
        match &outer.name {
            Some(s) => format!("{s}{sep}{name}").into(),
            None => name.into(),
        }
    };
    let inner = |name: Rc<str>, owner: Option<usize>| Enclosing {
        name: Some(name),
        in_test,
        owner,
    };
    let mut push_unit = |kind, name: &str| facts.units.push(bodies.unit(node, kind, name, in_test));
    match classify(node, ctx) {
        NodeRole::Other => Some(outer.clone()),
        role @ (NodeRole::Imports(_) | NodeRole::Reexports(_)) => {
            push_imports(facts, role, node.start_position().row + 1);
            None
        }
        NodeRole::TestScope => {
            if !in_test {
                facts.test_lines += node.end_position().row + 1 - node.start_position().row;
            }
            Some(Enclosing {
                in_test: true,
                ..outer.clone()
            })
        }
        NodeRole::Type {
            kind,
            name,
            body_unit,
        } => {
            let qualified = qualify(&name);
            if body_unit {
                push_unit(UnitKind::Class, &qualified);
            }
            let line = node.start_position().row + 1;
            facts.types.push(TypeDef {
                kind,
                name,
                line,
                end_line: node.end_position().row + 1,
                in_test,
                nested: outer.name.is_some(),
                bases: bases(node, ctx),
                members: Vec::new(),
            });
            Some(inner(qualified, Some(facts.types.len() - 1)))
        }
        NodeRole::Impl { name } => {
            push_unit(UnitKind::Class, &name);
            Some(inner(name.into(), None))
        }
        NodeRole::Function { name } => {
            let qualified = qualify(&name);
            push_unit(UnitKind::Function, &qualified);
            if let Some(owner) = outer.owner {
                facts.types[owner].members.push(name);
            }
            Some(inner(qualified, None))
        }
    }
}

/// Records an import statement's pairs; a re-export (`export … from`,
/// `pub use`) passes its names on.
fn push_imports(facts: &mut FileFacts, role: NodeRole, line: usize) {
    match role {
        NodeRole::Reexports(pairs) => add_imports(facts, pairs, line, true),
        NodeRole::Imports(pairs) => add_imports(facts, pairs, line, false),
        _ => {}
    }
}

/// Records the names one import statement at `line` binds.
fn add_imports(facts: &mut FileFacts, pairs: Vec<Binding>, line: usize, reexport: bool) {
    facts.imports.extend(pairs.into_iter().map(|b| Import {
        symbol: b.symbol,
        module: b.module,
        local: b.local,
        line,
        reexport,
    }));
}

/// What computing a unit needs besides its node: the file, the size bound
/// for fingerprints, and the tokens of the body normalized last.
struct Bodies<'s> {
    grammar: Grammar,
    source: &'s [u8],
    min_lines: usize,
    tape: normalize::Tape,
}

impl Bodies<'_> {
    fn unit(&mut self, node: Node, kind: UnitKind, name: &str, in_test: bool) -> Unit {
        let start_line = node.start_position().row + 1;
        let end_line = node.end_position().row + 1;
        let long_enough = end_line + 1 - start_line >= self.min_lines;
        let lines_of = (kind == UnitKind::Function).then_some(self.source);
        let normalized =
            (!in_test && long_enough).then(|| self.tape.normalize(self.grammar, node, lines_of));
        let (body, lines) = match normalized {
            Some(n) => (Some(n.fingerprint), n.lines),
            None => (None, Vec::new()),
        };
        Unit {
            kind,
            name: name.to_string(),
            start_line,
            end_line,
            start_byte: node.start_byte(),
            end_byte: node.end_byte(),
            in_test,
            body,
            lines,
            doc_lines: 0,
        }
    }
}
