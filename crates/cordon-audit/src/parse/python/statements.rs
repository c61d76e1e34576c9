//! The few Python statements the audit reads token by token: imports, `__all__`, class
//! bases and docstrings.

use super::lexer::TokenKind;
use super::{COMMA, Reader, is_closing};
use crate::parse::Binding;

/// `a.b.c` at `i`: its text and the index after it.
fn dotted(r: &Reader, mut i: usize) -> Option<(String, usize)> {
    if r.kind(i) != Some(TokenKind::Name) {
        return None;
    }
    let mut text = r.text(i).to_string();
    i += 1;
    while r.is_op(i, ".") && r.kind(i + 1) == Some(TokenKind::Name) {
        text.push('.');
        text.push_str(r.text(i + 1));
        i += 2;
    }
    Some((text, i))
}

/// `as NAME` at `i`: the alias and the index after it.
fn alias(r: &Reader, i: usize) -> (Option<String>, usize) {
    if r.kind(i) == Some(TokenKind::Name)
        && r.text(i) == "as"
        && r.kind(i + 1) == Some(TokenKind::Name)
    {
        (Some(r.text(i + 1).to_string()), i + 2)
    } else {
        (None, i)
    }
}

/// `import a.b.c as x, d` from after `import`: `c` from `a.b` (the pair
/// `from a.b import c` yields), `d` from no module.
pub(super) fn plain_import(r: &Reader, mut i: usize) -> (Vec<Binding>, usize) {
    let mut out = Vec::new();
    while let Some((name, next)) = dotted(r, i) {
        let (alias, next) = alias(r, next);
        out.push(match name.rsplit_once('.') {
            Some((module, symbol)) => Binding::new(module.to_string(), symbol.to_string(), alias),
            None => Binding::new(String::new(), name, alias),
        });
        i = next;
        if !r.is_op(i, ",") {
            break;
        }
        i += 1;
    }
    (out, i)
}

/// `from ..a.b import X, Y as Z` from after `from`, relative modules resolved
/// against the file's package; `import *` binds no name the audit can follow.
pub(super) fn from_import(r: &Reader, mut i: usize) -> (Vec<Binding>, usize) {
    let mut dots = String::new();
    while r.is_op(i, ".") || r.is_op(i, "...") {
        dots.push_str(r.text(i));
        i += 1;
    }
    let mut name = String::new();
    if r.text(i) != "import"
        && let Some((dotted_name, next)) = dotted(r, i)
    {
        (name, i) = (dotted_name, next);
    }
    if r.text(i) != "import" || (dots.is_empty() && name.is_empty()) {
        return (Vec::new(), i);
    }
    let module = if dots.is_empty() {
        name
    } else {
        resolve_relative(&format!("{dots}{name}"), &r.facts.rel)
    };
    i += 1;
    let parenthesized = r.is_op(i, "(");
    i += usize::from(parenthesized);
    let mut out = Vec::new();
    while r.kind(i) == Some(TokenKind::Name) {
        let (alias, next) = alias(r, i + 1);
        out.push(Binding::new(module.clone(), r.text(i).to_string(), alias));
        i = next;
        if !r.is_op(i, ",") {
            break;
        }
        i += 1;
    }
    (out, i + usize::from(parenthesized && r.is_op(i, ")")))
}

/// The index of the `,` or closing bracket that ends the list item at `i`.
fn item_end(r: &Reader, i: usize) -> usize {
    r.top_level(i, |_, t| t.op == COMMA || is_closing(t.op))
}

/// A module-level `__all__ = ["A", "B"]` (a list or tuple of string literals,
/// bare `"A", "B"` too; annotated or not), from after `__all__`: the names.
pub(super) fn declared_public(r: &Reader, mut i: usize) -> Option<Vec<String>> {
    if r.is_op(i, ":") {
        while r.kind(i).is_some_and(|k| k != TokenKind::Newline) && !r.is_op(i, "=") {
            i += 1;
        }
    }
    if !r.is_op(i, "=") {
        return None;
    }
    i += 1;
    let close = [("[", "]"), ("(", ")")]
        .into_iter()
        .find_map(|(open, close)| r.is_op(i, open).then_some(close));
    i += usize::from(close.is_some());
    let at_end = |i: usize| close.map_or_else(|| ends_statement(r, i), |c| r.is_op(i, c));
    let mut names = Vec::new();
    while !at_end(i) {
        let end = item_end(r, i);
        if end == i + 1 && r.kind(i) == Some(TokenKind::String) {
            names.push(string_value(r.text(i)).to_string());
        } else if close.is_none() {
            // Bare, only strings make a list (`__all__ = a + b` is none).
            return None;
        }
        match r.is_op(end, ",") {
            true => i = end + 1,
            false if at_end(end) => i = end,
            false => return None,
        }
    }
    ends_statement(r, i + usize::from(close.is_some())).then_some(names)
}

/// Whether the token at `i` ends a simple statement (NEWLINE, `;`, the end).
fn ends_statement(r: &Reader, i: usize) -> bool {
    matches!(r.kind(i), None | Some(TokenKind::Newline)) || r.is_op(i, ";")
}

/// The text of a plain string literal: `"A"`, `u'A'` and `"""A"""` are `A`.
fn string_value(literal: &str) -> &str {
    literal
        .trim_start_matches(|c: char| c.is_ascii_alphabetic())
        .trim_matches(|c| c == '"' || c == '\'')
}

/// The bases of a class whose name is followed by `(` at `open` (its header
/// ends at `colon`): the plain and dotted names (`Field`, `models.Model`),
/// not keywords (`metaclass=…`) or expressions (`Generic[T]`).
pub(super) fn bases(r: &Reader, open: usize, colon: usize) -> Vec<String> {
    let mut out = Vec::new();
    if !r.is_op(open, "(") {
        return out;
    }
    let mut i = open + 1;
    while i < colon && !r.is_op(i, ")") {
        let end = item_end(r, i);
        if let Some((name, _)) = dotted(r, i).filter(|&(_, after)| after == end) {
            out.push(name);
        }
        i = end + usize::from(r.is_op(end, ","));
    }
    out
}

/// Lines of a function's docstring: its body's first statement when that is
/// a lone string (adjacent strings included, parenthesized or not; not an
/// f-string or bytes, which Python does not take as a docstring), 0 without.
pub(super) fn docstring_lines(r: &Reader, colon: usize) -> usize {
    let block = r.kind(colon + 1) == Some(TokenKind::Newline)
        && r.kind(colon + 2) == Some(TokenKind::Indent);
    let first = if block { colon + 3 } else { colon + 1 };
    let parenthesized = r.is_op(first, "(");
    let strings = first + usize::from(parenthesized);
    let mut end = strings;
    while r.kind(end) == Some(TokenKind::String) && is_plain_text(r.text(end)) {
        end += 1;
    }
    let closed = !parenthesized || r.is_op(end, ")");
    let after = end + usize::from(parenthesized);
    if end == strings || !closed || !ends_statement(r, after) {
        return 0;
    }
    let (start_row, end_row) = (r.toks[first].row, r.toks[after - 1].end_row);
    (end_row - start_row) as usize + 1
}

/// A string literal of text: no `f`, `t` or `b` among its prefix letters.
fn is_plain_text(literal: &str) -> bool {
    let prefix = literal.split(['"', '\'']).next().unwrap_or("");
    !prefix.contains(['f', 'F', 't', 'T', 'b', 'B'])
}

/// `..db.client` imported from `app/services/x.py` is `app.db.client`.
pub(super) fn resolve_relative(relative: &str, rel_path: &str) -> String {
    let dots = relative.chars().take_while(|&c| c == '.').count();
    let rest = &relative[dots..];
    let mut package: Vec<&str> = rel_path.split('/').collect();
    package.pop();
    for _ in 1..dots {
        package.pop();
    }
    if !rest.is_empty() {
        package.push(rest);
    }
    package.join(".")
}
