//! What the tokenizer-based reader finds in Python sources.

use super::statements::resolve_relative;
use crate::lang::Lang;
use crate::parse::{FileFacts, UnitKind, extract};

fn read(rel: &str, src: &str) -> FileFacts {
    extract(rel, Lang::Python, src, false, 1).expect("reads")
}

fn failure(src: &str) -> String {
    extract("x.py", Lang::Python, src, false, 1).expect_err("fails")
}

#[test]
fn relative_imports_resolve_against_the_package() {
    assert_eq!(resolve_relative(".", "app/services/x.py"), "app.services");
    assert_eq!(
        resolve_relative(".db", "app/services/x.py"),
        "app.services.db"
    );
    assert_eq!(
        resolve_relative("..db.client", "app/services/x.py"),
        "app.db.client"
    );
}

/// (name, start line, end line) of every unit, in the order they close.
fn extents(facts: &FileFacts) -> Vec<(&str, usize, usize)> {
    facts
        .units
        .iter()
        .map(|u| (u.name.as_str(), u.start_line, u.end_line))
        .collect()
}

#[test]
fn definitions_are_qualified_by_their_scope_and_span_their_blocks() {
    let src = "\
@decorator
class Order[T](models.Model, Generic[T], metaclass=Meta):
    class Meta:
        ordering = ['id']

    async def total(self):
        def add(a, b): return a + b
        return add(1, 2)
    # a comment after the last statement is not the function's

def top[T: (int, str)](x: T) -> T:
    if x:
        pass
";
    let facts = read("shop/models.py", src);
    assert_eq!(
        extents(&facts),
        [
            ("Order.Meta", 3, 4),
            ("Order.total.add", 7, 7),
            ("Order.total", 6, 8),
            ("Order", 2, 8),
            ("top", 11, 13),
        ]
    );
    let kinds: Vec<UnitKind> = facts.units.iter().map(|u| u.kind).collect();
    assert_eq!(
        kinds,
        [
            UnitKind::Class,
            UnitKind::Function,
            UnitKind::Function,
            UnitKind::Class,
            UnitKind::Function
        ]
    );
    let classes: Vec<(&str, bool, &[String])> = facts
        .types
        .iter()
        .map(|t| (t.name.as_str(), t.nested, t.bases.as_slice()))
        .collect();
    let order_bases = ["models.Model".to_string()];
    assert_eq!(
        classes,
        [("Order", false, &order_bases[..]), ("Meta", true, &[][..])]
    );
    assert_eq!((facts.types[0].line, facts.types[0].end_line), (2, 8));
}

/// (module, symbol, local, line, re-export) of every import.
fn imports(facts: &FileFacts) -> Vec<(&str, &str, &str, usize, bool)> {
    facts
        .imports
        .iter()
        .map(|i| {
            let (m, s, l) = (i.module.as_str(), i.symbol.as_str(), i.local.as_str());
            (m, s, l, i.line, i.reexport)
        })
        .collect()
}

#[test]
fn every_import_form_binds_its_names() {
    let src = "\
import os, a.b.c as abc
from . import sibling
from ..db.client import (
    Client,
    Pool as P,
)
from ... import far
from x import *
def f():
    from lazy import thing; import late
if TYPE_CHECKING: from typing import Any
y = 1  # from nowhere import nothing
";
    let facts = read("app/services/x.py", src);
    assert_eq!(
        imports(&facts),
        [
            ("", "os", "os", 1, false),
            ("a.b", "c", "abc", 1, false),
            ("app.services", "sibling", "sibling", 2, false),
            ("app.db.client", "Client", "Client", 3, false),
            ("app.db.client", "Pool", "P", 3, false),
            ("", "far", "far", 7, false),
            ("lazy", "thing", "thing", 10, false),
            ("", "late", "late", 10, false),
            ("typing", "Any", "Any", 11, false),
        ]
    );
}

#[test]
fn a_package_init_and_all_mark_reexports() {
    let init = read(
        "pkg/__init__.py",
        "from .impl import Thing as PublicThing\n",
    );
    assert_eq!(
        imports(&init),
        [("pkg.impl", "Thing", "PublicThing", 1, true)]
    );
    let src = "\
from .a import A
from .b import B
__all__: list[str] = [\"A\", 'C',]
if x:
    __all__ = ['B']
";
    let module = read("pkg/api.py", src);
    assert_eq!(module.declared_public, ["A", "C"]);
    let reexports: Vec<bool> = module.imports.iter().map(|i| i.reexport).collect();
    assert_eq!(reexports, [true, false]);
    let tuple = read(
        "pkg/t.py",
        "__all__ = ('X', \"Y\")\n__all__ = ['Z'] + more\n",
    );
    assert_eq!(tuple.declared_public, ["X", "Y"]);
}

#[test]
fn a_docstring_is_the_first_statement_when_it_is_a_lone_string() {
    let src = "\
def documented():
    \"\"\"Says what it does,
    over two lines.\"\"\"
    return 1

def concatenated():
    'one' 'two'
    return 2

def not_a_docstring():
    'a' + b
    return 3

def one_liner(): 'doc'
";
    let facts = read("docs.py", src);
    let doc: Vec<(&str, usize)> = facts
        .units
        .iter()
        .map(|u| (u.name.as_str(), u.doc_lines))
        .collect();
    assert_eq!(
        doc,
        [
            ("documented", 2),
            ("concatenated", 1),
            ("not_a_docstring", 0),
            ("one_liner", 1)
        ]
    );
}

#[test]
fn broken_blocks_are_syntax_errors_near_their_line() {
    let near = |line: usize| format!("syntax error near line {line}");
    assert!(failure("x = 1\n    y = 2\n").contains(&near(2)));
    assert!(failure("if x:\ny = 2\n").contains(&near(1)));
    assert!(failure("def f:\n    pass\n").contains(&near(1)));
    assert!(failure("class\n").contains(&near(1)));
    assert!(failure("def broken(:\n    return (\n").contains(&near(2)));
}

#[test]
fn copies_differing_in_names_and_literals_share_a_fingerprint() {
    let src = "\
def first(items):
    total = 0
    for item in items:
        total += item.price * 2
    return total

def second(rows):
    acc = 0
    for row in rows:
        acc += row.cost * 3
    return acc

def third(rows):
    acc = 0
    for row in rows:
        acc -= row.cost * 3
    return acc
";
    let facts = read("sums.py", src);
    let prints: Vec<_> = facts.units.iter().map(|u| u.body).collect();
    assert!(prints[0].is_some());
    assert_eq!(prints[0], prints[1]);
    assert_ne!(prints[1], prints[2]);
    // Lines keep names: the renamed copy's lines differ, the edited one's
    // differ only where it was edited.
    let lines = |i: usize| facts.units[i].lines.clone();
    assert_ne!(lines(0)[1], lines(1)[1]);
    assert_eq!(lines(1)[1], lines(2)[1]);
    assert_ne!(lines(1)[3], lines(2)[3]);
}

#[test]
fn no_edit_of_a_source_makes_the_reader_panic() {
    let base = "\
@dec(1)
class A(B, metaclass=M):
    '''doc'''
    def f(self, x: int = 0) -> str:
        return f\"{x!r:>{w}}\" + r'\\'' if x else (1, [2], {3: 4})
from .a import (b as c,)
__all__ = ['A']
";
    let tricky = b"\"'()[]{}:;\\\n\r\t #@.=f0x";
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..3000 {
        let mut bytes = base.as_bytes().to_vec();
        for _ in 0..(next() % 4 + 1) {
            let at = (next() as usize) % bytes.len();
            if next() % 2 == 0 {
                bytes.remove(at);
            } else {
                bytes.insert(at, tricky[(next() as usize) % tricky.len()]);
            }
        }
        if let Ok(src) = String::from_utf8(bytes) {
            let _ = extract("m.py", Lang::Python, &src, false, 1);
        }
    }
}

#[test]
fn what_cpython_reads_is_read() {
    // A byte order mark, a line continued before its first token, numbers
    // glued to keywords in each radix.
    let bom = read("bom.py", "\u{feff}import os\ndef f():\n    pass\n");
    assert_eq!(extents(&bom), [("f", 2, 3)]);
    assert_eq!(imports(&bom), [("", "os", "os", 1, false)]);
    let continued = read("c.py", "def h():\n\\\n    return 1\n");
    assert_eq!(extents(&continued), [("h", 1, 3)]);
    read("n.py", "x = 0b1and 1\ny = 1 if 0o7else 2\n");
}

#[test]
fn deeply_nested_fstrings_fail_the_file_instead_of_the_audit() {
    let deep = |levels: usize| {
        let mut expr = "1".to_string();
        for _ in 0..levels {
            expr = format!("f\"{{{expr}}}\"");
        }
        format!("x = {expr}\n")
    };
    read("ok.py", &deep(100));
    assert!(failure(&deep(20_000)).contains("syntax error near line 1"));
}

#[test]
fn all_may_be_a_bare_tuple_but_not_a_one_line_branch() {
    let bare = read("m.py", "__all__ = 'A', \"B\"\n");
    assert_eq!(bare.declared_public, ["A", "B"]);
    let branch = read("m.py", "if x: __all__ = ['A']\n__all__ = 'A', b\n");
    assert!(branch.declared_public.is_empty());
}

#[test]
fn class_members_are_names_not_keywords() {
    let src = "\
class A:
    size = 1
    limit: int = 2
    if size:
        hidden = 3
    else:
        pass
    try:
        pass
    finally:
        pass
    def f(self):
        local = 4
";
    let facts = read("a.py", src);
    assert_eq!(facts.types[0].members, ["size", "limit", "f"]);
}

#[test]
fn fstrings_and_bytes_are_no_docstrings_but_parenthesized_text_is() {
    let src = "\
def formatted():
    f\"doc {x}\"
    return 1

def parenthesized():
    (\"one\"
     \"two\")
    return 2
";
    let doc: Vec<usize> = read("d.py", src)
        .units
        .iter()
        .map(|u| u.doc_lines)
        .collect();
    assert_eq!(doc, [0, 2]);
}
