//! Python: classes, functions and `import` / `from ... import` statements.

use tree_sitter::Node;

use super::{Binding, Ctx, NodeRole};

/// Python definitions and imports are statements, so only statement containers are walked.
pub(super) const CONTAINERS: &[&str] = &[
    "module",
    "block",
    "class_definition",
    "function_definition",
    "decorated_definition",
    "if_statement",
    "elif_clause",
    "else_clause",
    "for_statement",
    "while_statement",
    "try_statement",
    "except_clause",
    "except_group_clause",
    "finally_clause",
    "with_statement",
    "match_statement",
    "case_clause",
];

pub(super) fn classify(node: Node, ctx: &Ctx) -> NodeRole {
    let named = |f: fn(String) -> NodeRole| ctx.field(node, "name").map_or(NodeRole::Other, f);
    match node.kind() {
        "class_definition" => named(|name| NodeRole::Type {
            kind: "class",
            name,
            body_unit: true,
        }),
        "function_definition" => named(|name| NodeRole::Function { name }),
        "import_statement" => NodeRole::Imports(plain_import(node, ctx)),
        "import_from_statement" => NodeRole::Imports(from_import(node, ctx)),
        "expression_statement" => {
            declared_public(node, ctx).map_or(NodeRole::Other, NodeRole::DeclaredPublic)
        }
        _ => NodeRole::Other,
    }
}

/// A module-level `__all__ = ["A", "B"]` (a list or tuple of string literals).
fn declared_public(node: Node, ctx: &Ctx) -> Option<Vec<String>> {
    let assignment = node.named_child(0).filter(|n| n.kind() == "assignment")?;
    let left = assignment.child_by_field_name("left")?;
    // The parent last: tree-sitter finds it by walking down from the root.
    if left.kind() != "identifier"
        || ctx.text(left) != "__all__"
        || node.parent()?.kind() != "module"
    {
        return None;
    }
    let right = assignment.child_by_field_name("right")?;
    if !matches!(right.kind(), "list" | "tuple") {
        return None;
    }
    let mut cursor = right.walk();
    let names = right
        .named_children(&mut cursor)
        .filter(|item| item.kind() == "string")
        .map(|item| {
            ctx.text(item)
                .trim_matches(|c| c == '"' || c == '\'')
                .to_string()
        })
        .collect();
    Some(names)
}

/// `import a.b.c` brings in `c` from `a.b` (the same pair `from a.b import c` yields).
fn plain_import(node: Node, ctx: &Ctx) -> Vec<Binding> {
    let mut cursor = node.walk();
    node.children_by_field_name("name", &mut cursor)
        .filter_map(|n| named(n, ctx))
        .map(|(dotted, alias)| match dotted.rsplit_once('.') {
            Some((module, symbol)) => Binding::new(module.to_string(), symbol.to_string(), alias),
            None => Binding::new(String::new(), dotted, alias),
        })
        .collect()
}

/// `from a.b import X, Y as Z` (relative modules resolved against the file's package).
fn from_import(node: Node, ctx: &Ctx) -> Vec<Binding> {
    let Some(module_node) = node.child_by_field_name("module_name") else {
        return Vec::new();
    };
    let module = if module_node.kind() == "relative_import" {
        resolve_relative(ctx.text(module_node), ctx.rel)
    } else {
        ctx.text(module_node).to_string()
    };
    let mut cursor = node.walk();
    node.children_by_field_name("name", &mut cursor)
        .filter_map(|n| named(n, ctx))
        .map(|(symbol, alias)| Binding::new(module.clone(), symbol, alias))
        .collect()
}

/// An import list entry is a dotted_name or `dotted_name as alias`: the
/// original name and the alias, if any.
fn named(node: Node, ctx: &Ctx) -> Option<(String, Option<String>)> {
    if node.kind() != "aliased_import" {
        return Some((ctx.text(node).to_string(), None));
    }
    let name = ctx.field(node, "name")?;
    Some((name, ctx.field(node, "alias")))
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

/// Lines of a function's docstring: its body's first statement, when that is
/// a lone string (0 without one).
pub(super) fn docstring_lines(function: Node) -> usize {
    let first = function
        .child_by_field_name("body")
        .and_then(|body| body.named_child(0));
    match first {
        Some(statement)
            if statement.kind() == "expression_statement"
                && statement.named_child_count() == 1
                && statement
                    .named_child(0)
                    .is_some_and(|e| matches!(e.kind(), "string" | "concatenated_string")) =>
        {
            statement.end_position().row + 1 - statement.start_position().row
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::resolve_relative;

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
}
