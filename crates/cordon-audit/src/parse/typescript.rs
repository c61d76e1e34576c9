//! TypeScript/TSX: classes, interfaces, enums, named functions and `import` statements.

use tree_sitter::Node;

use super::{Binding, Ctx, NodeRole};

/// Subtrees that never hold a named function, class or import (arrow functions can
/// sit in almost any expression, so TypeScript prunes by exclusion).
pub(super) const LEAVES: &[&str] = &[
    "string",
    "template_string",
    "regex",
    "comment",
    "formal_parameters",
    "type_annotation",
    "type_arguments",
    "type_parameters",
    "interface_body",
    "enum_body",
    "import_clause",
];

pub(super) fn classify(node: Node, ctx: &Ctx) -> NodeRole {
    let name = || ctx.field(node, "name");
    let type_def = |kind: &'static str, body_unit: bool| {
        name().map_or(NodeRole::Other, |name| NodeRole::Type {
            kind,
            name,
            body_unit,
        })
    };
    match node.kind() {
        "class_declaration" | "abstract_class_declaration" => type_def("class", true),
        "interface_declaration" => type_def("interface", false),
        "enum_declaration" => type_def("enum", false),
        "function_declaration" | "generator_function_declaration" | "method_definition" => {
            name().map_or(NodeRole::Other, |name| NodeRole::Function { name })
        }
        // `const f = () => ...` is a named function; anonymous callbacks are not units.
        "arrow_function" | "function_expression" => node
            .parent()
            .filter(|p| p.kind() == "variable_declarator")
            .and_then(|p| ctx.field(p, "name"))
            .map_or(NodeRole::Other, |name| NodeRole::Function { name }),
        "import_statement" => NodeRole::Imports(imports(node, ctx)),
        "export_statement" if node.child_by_field_name("source").is_some() => {
            NodeRole::Reexports(reexports(node, ctx))
        }
        _ => NodeRole::Other,
    }
}

/// A class's `extends …` clause.
pub(super) fn extends_clause(class: Node) -> Option<Node> {
    let mut cursor = class.walk();
    let heritage = class
        .named_children(&mut cursor)
        .find(|c| c.kind() == "class_heritage")?;
    let mut inner = heritage.walk();
    heritage
        .named_children(&mut inner)
        .find(|c| c.kind() == "extends_clause")
}

/// The statement's `from "…"` module, resolved.
fn source_module(node: Node, ctx: &Ctx) -> Option<String> {
    let source = node.child_by_field_name("source")?;
    let raw = ctx
        .text(source)
        .trim_matches(|c| c == '"' || c == '\'' || c == '`');
    Some(resolve(raw, ctx.rel))
}

/// `export { A, B as C } from "./x"` passes on `A` and `B` (as `C`);
/// `export * from "./x"` all (`*`).
fn reexports(node: Node, ctx: &Ctx) -> Vec<Binding> {
    let Some(module) = source_module(node, ctx) else {
        return Vec::new();
    };
    let mut cursor = node.walk();
    let clause = node
        .named_children(&mut cursor)
        .find(|c| c.kind() == "export_clause");
    let Some(clause) = clause else {
        let star = (0..node.child_count())
            .filter_map(|i| node.child(i))
            .any(|c| c.kind() == "*");
        return if star {
            vec![Binding::new(module, "*".to_string(), None)]
        } else {
            Vec::new()
        };
    };
    let mut inner = clause.walk();
    clause
        .named_children(&mut inner)
        .filter(|spec| spec.kind() == "export_specifier")
        .filter_map(|spec| specifier(spec, ctx, &module))
        .collect()
}

/// Named and default imports; namespace (`* as x`) and side-effect imports carry no symbol.
fn imports(node: Node, ctx: &Ctx) -> Vec<Binding> {
    let Some(module) = source_module(node, ctx) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut cursor = node.walk();
    let clauses: Vec<Node> = node
        .named_children(&mut cursor)
        .filter(|c| c.kind() == "import_clause")
        .collect();
    for clause in clauses {
        let mut inner = clause.walk();
        for part in clause.named_children(&mut inner) {
            match part.kind() {
                "identifier" => {
                    let name = ctx.text(part).to_string();
                    out.push(Binding::new(module.clone(), name, None));
                }
                "named_imports" => named(part, ctx, &module, &mut out),
                _ => {}
            }
        }
    }
    out
}

fn named(list: Node, ctx: &Ctx, module: &str, out: &mut Vec<Binding>) {
    let mut cursor = list.walk();
    let specs = list
        .named_children(&mut cursor)
        .filter(|spec| spec.kind() == "import_specifier");
    out.extend(specs.filter_map(|spec| specifier(spec, ctx, module)));
}

/// `A` or `A as B` in an import or export list.
fn specifier(spec: Node, ctx: &Ctx, module: &str) -> Option<Binding> {
    let name = ctx.field(spec, "name")?;
    Some(Binding::new(
        module.to_string(),
        name,
        ctx.field(spec, "alias"),
    ))
}

/// Relative specifiers are resolved against the importing file's directory, so
/// `../db/client` from two folders names one module; extensions and `/index` are dropped.
pub(super) fn resolve(spec: &str, rel_path: &str) -> String {
    if !spec.starts_with("./") && !spec.starts_with("../") {
        return spec.to_string();
    }
    let mut parts: Vec<&str> = rel_path.split('/').collect();
    parts.pop();
    for seg in spec.split('/') {
        match seg {
            "." | "" => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    let joined = parts.join("/");
    let stem = [".tsx", ".ts", ".jsx", ".js", ".mjs"]
        .iter()
        .find_map(|ext| joined.strip_suffix(ext))
        .unwrap_or(&joined);
    stem.strip_suffix("/index").unwrap_or(stem).to_string()
}

#[cfg(test)]
mod tests {
    use super::resolve;
    use crate::lang::Lang;
    use crate::parse::extract;

    #[test]
    fn relative_specifiers_resolve_to_one_module() {
        assert_eq!(resolve("../db/client", "src/a/x.ts"), "src/db/client");
        assert_eq!(resolve("./client.ts", "src/db/y.ts"), "src/db/client");
        assert_eq!(resolve("./db/index", "src/z.ts"), "src/db");
        assert_eq!(resolve("react", "src/z.ts"), "react");
    }

    #[test]
    fn a_class_records_its_methods_as_members() {
        let src = "export class Client {\n  url = '';\n  query(sql: string) {\n    const f = () => 1;\n    \
                   return f();\n  }\n  close() {}\n}\n";
        let facts = extract("src/client.ts", Lang::TypeScript, src, false, 1).expect("parses");
        let mut members = facts.types[0].members.clone();
        members.sort();
        assert_eq!(members, ["close", "query"]);
    }
}
