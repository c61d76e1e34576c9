//! Python facts (classes, functions, imports, `__all__`) read from the token stream:
//! Python's blocks are its indentation, so definitions and their extents need no parse tree.

mod lexer;
mod statements;

use std::cell::RefCell;
use std::rc::Rc;

use lexer::{Tok, TokenKind, pack};

use super::{FileFacts, TypeDef, Unit, UnitKind};
use crate::lang::Lang;
use crate::normalize::{self, ID, LIT, Token};

thread_local! {
    /// Each rayon worker reuses its token buffers from file to file.
    static BUFFERS: RefCell<(Vec<Tok>, Vec<Token>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Reads `source`'s facts; a file whose tokens or blocks do not hold together fails.
pub(super) fn extract(
    rel: &str,
    source: &str,
    is_test: bool,
    min_lines: usize,
) -> Result<FileFacts, super::ParseFailure> {
    BUFFERS.with(|buffers| {
        let (toks, code) = &mut *buffers.borrow_mut();
        lexer::tokenize(source.as_bytes(), toks)
            .map_err(|e| super::syntax_error(e.row as usize + 1))?;
        code_tokens(source, toks, code);
        let mut reader = Reader {
            src: source,
            toks,
            code,
            min_lines,
            open: Vec::new(),
            depth: 0,
            facts: FileFacts::new(rel, Lang::Python, is_test, source),
        };
        reader
            .read()
            .map_err(|row| super::syntax_error(row as usize + 1))?;
        let mut facts = reader.facts;
        mark_declared_reexports(&mut facts);
        Ok(facts)
    })
}

/// Whether the file is a Python package's `__init__.py`, whose imports re-export.
fn is_package_init(rel: &str) -> bool {
    rel == "__init__.py" || rel.ends_with("/__init__.py")
}

/// An import of a name the module lists in `__all__` passes it on: the
/// module declares it part of its public face.
fn mark_declared_reexports(facts: &mut FileFacts) {
    let public = &facts.declared_public;
    for import in &mut facts.imports {
        import.reexport |= public.contains(&import.local);
    }
}

/// A definition whose body has not ended yet.
struct Open {
    name: Rc<str>,
    /// Index of its first token (`def`, `async` or `class`) and of its name.
    first: usize,
    name_tok: usize,
    /// Index of the `:` that ends its header.
    colon: usize,
    kind: UnitKind,
    /// Block depth of the definition itself; its body is one deeper.
    depth: u32,
    /// `def f(): return 1`: the body ends with the line.
    one_liner: bool,
    /// Its class in `facts.types`, whose end is set when it closes.
    type_index: Option<usize>,
}

/// A Python syntax problem, by 0-based row.
type Row = u32;

struct Reader<'s> {
    src: &'s str,
    toks: &'s [Tok],
    /// The tokens bodies are normalized from (comments and layout gone).
    code: &'s [Token],
    min_lines: usize,
    open: Vec<Open>,
    depth: u32,
    facts: FileFacts,
}

impl Reader<'_> {
    fn text(&self, i: usize) -> &str {
        self.toks.get(i).map_or("", |t| token_text(self.src, t))
    }

    fn kind(&self, i: usize) -> Option<TokenKind> {
        self.toks.get(i).map(|t| t.kind)
    }

    fn is_op(&self, i: usize, op: &str) -> bool {
        self.toks
            .get(i)
            .is_some_and(|t| t.op == pack(op.as_bytes()))
    }

    fn row(&self, i: usize) -> Row {
        self.toks.get(i).map_or(0, |t| t.row)
    }

    fn read(&mut self) -> Result<(), Row> {
        let mut i = 0;
        while i < self.toks.len() {
            i = match self.toks[i].kind {
                TokenKind::Indent => self.indent(i)?,
                TokenKind::Dedent => self.dedent(i),
                TokenKind::Newline => self.end_of_line(i)?,
                _ => self.logical_line(i)?,
            };
        }
        self.close_while(i, |_| true);
        Ok(())
    }

    /// A block starts only after a line that ends with `:`.
    fn indent(&mut self, i: usize) -> Result<usize, Row> {
        let after_header = i >= 2 && self.is_op(i - 2, ":");
        if !after_header {
            return Err(self.row(i));
        }
        self.depth += 1;
        Ok(i + 1)
    }

    fn dedent(&mut self, i: usize) -> usize {
        self.depth = self.depth.saturating_sub(1);
        let depth = self.depth;
        self.close_while(i, |open| !open.one_liner && open.depth >= depth);
        i + 1
    }

    /// Ends one-line bodies; a line that ends with `:` must open a block.
    fn end_of_line(&mut self, i: usize) -> Result<usize, Row> {
        self.close_while(i, |open| open.one_liner);
        if i >= 1 && self.is_op(i - 1, ":") && self.kind(i + 1) != Some(TokenKind::Indent) {
            return Err(self.row(i));
        }
        Ok(i + 1)
    }

    /// The statements of one logical line, up to its NEWLINE.
    fn logical_line(&mut self, mut i: usize) -> Result<usize, Row> {
        loop {
            i = self.statement(i)?;
            // `;` separates statements; a header's `:` may be followed by one.
            if self.is_op(i, ";") || self.is_op(i, ":") {
                i += 1;
            }
            if matches!(self.kind(i), None | Some(TokenKind::Newline)) {
                return Ok(i);
            }
        }
    }

    /// Reads one statement from `i`; returns where it ends: its `;`, its
    /// header's `:`, or the line's NEWLINE.
    fn statement(&mut self, i: usize) -> Result<usize, Row> {
        let is_name = self.kind(i) == Some(TokenKind::Name);
        match self.text(i) {
            "def" | "class" if is_name => self.definition(i, i),
            "async" if is_name && self.text(i + 1) == "def" => self.definition(i, i + 1),
            "import" | "from" if is_name => Ok(self.import(i)),
            "__all__" if is_name && self.at_module_level(i) => {
                if let Some(names) = statements::declared_public(self, i + 1) {
                    self.facts.declared_public.extend(names);
                }
                Ok(self.statement_end(i, false))
            }
            word => {
                let header = is_name && is_compound_keyword(word);
                let plain_name = is_name && keyword_id(word).is_none() && !header;
                let assigns = self.is_op(i + 1, "=") || self.is_op(i + 1, ":");
                if plain_name && assigns {
                    self.add_member(i);
                }
                Ok(self.statement_end(i, header))
            }
        }
    }

    /// A statement at `i` is the module's own: at no depth, in no
    /// definition, and not the body of a one-line header (`if x: …`).
    fn at_module_level(&self, i: usize) -> bool {
        self.depth == 0 && self.open.is_empty() && !(i > 0 && self.is_op(i - 1, ":"))
    }

    /// The `;` or NEWLINE that ends the statement at `i`, or for a compound
    /// statement's header (`header`) the `:` that ends it (a `lambda`'s `:`
    /// is its own).
    fn statement_end(&self, i: usize, header: bool) -> usize {
        let mut lambdas = 0u32;
        self.top_level(i, |at, t| match t.op {
            SEMICOLON => true,
            COLON if lambdas > 0 => {
                lambdas -= 1;
                false
            }
            COLON => header,
            _ => {
                lambdas += u32::from(t.kind == TokenKind::Name && self.text(at) == "lambda");
                false
            }
        })
    }

    /// The first token from `i` on that `stops` at bracket depth 0 (brackets
    /// counted from `i`: a bracket opened before it closes at depth 0), or
    /// the logical line's NEWLINE.
    pub(super) fn top_level(
        &self,
        mut i: usize,
        mut stops: impl FnMut(usize, &Tok) -> bool,
    ) -> usize {
        let mut depth = 0u32;
        while let Some(t) = self.toks.get(i).filter(|t| t.kind != TokenKind::Newline) {
            if depth == 0 && stops(i, t) {
                break;
            }
            match t.op {
                OPEN_PAREN | OPEN_SQUARE | OPEN_CURLY => depth += 1,
                CLOSE_PAREN | CLOSE_SQUARE | CLOSE_CURLY => depth = depth.saturating_sub(1),
                _ => {}
            }
            i += 1;
        }
        i
    }

    /// `def` / `class` at `keyword` (`first` is `async` when there is one):
    /// opens the definition; returns its header's `:`.
    fn definition(&mut self, first: usize, keyword: usize) -> Result<usize, Row> {
        let name_tok = keyword + 1;
        let is_class = self.text(keyword) == "class";
        let after_name = self.after_type_params(name_tok + 1);
        let well_formed = self.kind(name_tok) == Some(TokenKind::Name)
            && (self.is_op(after_name, "(") || (is_class && self.is_op(after_name, ":")));
        if !well_formed {
            return Err(self.row(keyword));
        }
        let colon = self.statement_end(name_tok, true);
        if !self.is_op(colon, ":") {
            return Err(self.row(colon.min(self.toks.len().saturating_sub(1))));
        }
        let kind = if is_class {
            UnitKind::Class
        } else {
            UnitKind::Function
        };
        self.add_member(name_tok);
        let type_index = is_class.then(|| self.push_class(keyword, name_tok, after_name, colon));
        self.open.push(Open {
            name: self.qualify(self.text(name_tok)),
            first,
            name_tok,
            colon,
            kind,
            depth: self.depth,
            one_liner: self.kind(colon + 1) != Some(TokenKind::Newline),
            type_index,
        });
        Ok(colon)
    }

    /// Past a PEP 695 type parameter list at `i` (`class A[T]:`), if any.
    fn after_type_params(&self, i: usize) -> usize {
        if !self.is_op(i, "[") {
            return i;
        }
        self.top_level(i + 1, |_, t| is_closing(t.op)) + 1
    }

    fn qualify(&self, name: &str) -> Rc<str> {
        match self.open.last() {
            Some(outer) => format!("{}.{name}", outer.name).into(),
            None => name.into(),
        }
    }

    fn push_class(&mut self, keyword: usize, name_tok: usize, open: usize, colon: usize) -> usize {
        let line = self.row(keyword) as usize + 1;
        let bases = statements::bases(self, open, colon);
        self.facts.types.push(TypeDef {
            kind: "class",
            name: self.text(name_tok).to_string(),
            line,
            end_line: line,
            in_test: self.facts.is_test,
            nested: !self.open.is_empty(),
            bases,
            members: Vec::new(),
        });
        self.facts.types.len() - 1
    }

    /// Records the name at `name_tok` as a member of the class whose body
    /// the current statement is directly in, if any.
    fn add_member(&mut self, name_tok: usize) {
        let Some(open) = self.open.last() else {
            return;
        };
        let body_depth = open.depth + u32::from(!open.one_liner);
        if let Some(class) = open.type_index.filter(|_| body_depth == self.depth) {
            let name = self.text(name_tok).to_string();
            self.facts.types[class].members.push(name);
        }
    }

    fn import(&mut self, i: usize) -> usize {
        let line = self.row(i) as usize + 1;
        let (bindings, end) = if self.text(i) == "import" {
            statements::plain_import(self, i + 1)
        } else {
            statements::from_import(self, i + 1)
        };
        let reexport = is_package_init(&self.facts.rel);
        super::add_imports(&mut self.facts, bindings, line, reexport);
        self.statement_end(end, false)
    }

    /// Closes the innermost open definitions while `closes` holds; their
    /// bodies end at the last code token before `at`.
    fn close_while(&mut self, at: usize, closes: impl Fn(&Open) -> bool) {
        while self.open.last().is_some_and(&closes) {
            if let Some(open) = self.open.pop() {
                let last = self.last_code_before(at).unwrap_or(open.first);
                self.close(open, last);
            }
        }
    }

    fn last_code_before(&self, at: usize) -> Option<usize> {
        (0..at.min(self.toks.len()))
            .rev()
            .find(|&i| self.toks[i].is_code())
    }

    fn close(&mut self, open: Open, last: usize) {
        let (first, end) = (self.toks[open.first], self.toks[last]);
        let (start_line, end_line) = (first.row as usize + 1, end.end_row as usize + 1);
        if let Some(index) = open.type_index {
            self.facts.types[index].end_line = end_line;
        }
        let in_test = self.facts.is_test;
        let long_enough = end_line + 1 - start_line >= self.min_lines;
        let span = (first.start as usize, end.end as usize);
        let normalized = (!in_test && long_enough).then(|| {
            let name = self.toks[open.name_tok];
            let own_name = Some((name.start as usize, name.end as usize));
            let lines_of = (open.kind == UnitKind::Function).then_some(self.src.as_bytes());
            normalize::normalize(self.code, span, own_name, lines_of)
        });
        let (body, lines) = match normalized {
            Some(n) => (Some(n.fingerprint), n.lines),
            None => (None, Vec::new()),
        };
        let doc_lines = match open.kind {
            UnitKind::Function => statements::docstring_lines(self, open.colon),
            UnitKind::Class => 0,
        };
        self.facts.units.push(Unit {
            kind: open.kind,
            name: open.name.to_string(),
            start_line,
            end_line,
            start_byte: span.0,
            end_byte: span.1,
            in_test,
            body,
            lines,
            doc_lines,
        });
    }
}

const OPEN_PAREN: u32 = pack(b"(");
const OPEN_SQUARE: u32 = pack(b"[");
const OPEN_CURLY: u32 = pack(b"{");
const CLOSE_PAREN: u32 = pack(b")");
const CLOSE_SQUARE: u32 = pack(b"]");
const CLOSE_CURLY: u32 = pack(b"}");
const SEMICOLON: u32 = pack(b";");
const COLON: u32 = pack(b":");
const COMMA: u32 = pack(b",");

fn is_closing(op: u32) -> bool {
    matches!(op, CLOSE_PAREN | CLOSE_SQUARE | CLOSE_CURLY)
}

fn token_text<'s>(src: &'s str, t: &Tok) -> &'s str {
    src.get(t.start as usize..t.end as usize).unwrap_or("")
}

/// Headers that end with `:` and open a block (soft keywords included).
fn is_compound_keyword(word: &str) -> bool {
    matches!(
        word,
        "if" | "elif"
            | "else"
            | "for"
            | "while"
            | "try"
            | "except"
            | "finally"
            | "with"
            | "async"
            | "match"
            | "case"
    )
}

/// Keywords hash as themselves (1..=32), like operators, not as names.
fn keyword_id(word: &str) -> Option<u32> {
    let id = match word {
        "and" => 1,
        "as" => 2,
        "assert" => 3,
        "async" => 4,
        "await" => 5,
        "break" => 6,
        "class" => 7,
        "continue" => 8,
        "def" => 9,
        "del" => 10,
        "elif" => 11,
        "else" => 12,
        "except" => 13,
        "finally" => 14,
        "for" => 15,
        "from" => 16,
        "global" => 17,
        "if" => 18,
        "import" => 19,
        "in" => 20,
        "is" => 21,
        "lambda" => 22,
        "nonlocal" => 23,
        "not" => 24,
        "or" => 25,
        "pass" => 26,
        "raise" => 27,
        "return" => 28,
        "try" => 29,
        "while" => 30,
        "with" => 31,
        "yield" => 32,
        _ => return None,
    };
    Some(id)
}

/// The comparable tokens of the file: names `ID`, literals `LIT` (adjacent
/// strings on one logical line are one literal, as in `"a" "b"`), keywords
/// and operators by kind.
fn code_tokens(src: &str, toks: &[Tok], out: &mut Vec<Token>) {
    out.clear();
    let mut after_string = false;
    for t in toks {
        if !t.is_code() {
            after_string = false;
            continue;
        }
        let is_string = t.kind == TokenKind::String;
        if is_string && after_string {
            if let Some(previous) = out.last_mut() {
                previous.end = t.end as usize;
            }
            continue;
        }
        after_string = is_string;
        out.push(Token {
            token: token_id(src, t),
            start: t.start as usize,
            end: t.end as usize,
            row: t.row as usize,
        });
    }
}

/// Keywords are 1..=32 and operators their packed bytes (at least `!`, 33),
/// both apart from the `ID` / `LIT` sentinels.
fn token_id(src: &str, t: &Tok) -> u32 {
    match t.kind {
        TokenKind::String | TokenKind::Number => LIT,
        TokenKind::Name => match token_text(src, t) {
            "True" | "False" | "None" => LIT,
            word => keyword_id(word).unwrap_or(ID),
        },
        _ => t.op,
    }
}

#[cfg(test)]
mod tests;
