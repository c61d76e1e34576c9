//! Rust: structs/enums/traits/unions, `impl` blocks, functions, `use` trees, `#[cfg(test)]` modules.

use tree_sitter::Node;

use super::{Ctx, NodeRole};

/// Items and `use` declarations live in modules, impl/trait bodies and function blocks.
pub(super) const CONTAINERS: &[&str] = &[
    "source_file",
    "mod_item",
    "declaration_list",
    "impl_item",
    "trait_item",
    "function_item",
    "block",
    "foreign_mod_item",
];

pub(super) fn classify(node: Node, ctx: &Ctx) -> NodeRole {
    let type_def = |kind: &'static str| {
        ctx.field(node, "name")
            .map_or(NodeRole::Other, |name| NodeRole::Type {
                kind,
                name,
                body_unit: false,
            })
    };
    match node.kind() {
        "struct_item" => type_def("struct"),
        "enum_item" => type_def("enum"),
        "trait_item" => type_def("trait"),
        "union_item" => type_def("union"),
        "impl_item" => ctx
            .field(node, "type")
            .map_or(NodeRole::Other, |name| NodeRole::Impl {
                name: squash(&name),
            }),
        "function_item" => ctx
            .field(node, "name")
            .map_or(NodeRole::Other, |name| NodeRole::Function { name }),
        "mod_item" if is_cfg_test(node, ctx) => NodeRole::TestScope,
        // `pub use` re-exports define a path rather than consume one.
        "use_declaration" if has_visibility(node) => NodeRole::Imports(Vec::new()),
        "use_declaration" => NodeRole::Imports(uses(node, ctx)),
        _ => NodeRole::Other,
    }
}

fn has_visibility(node: Node) -> bool {
    let mut cursor = node.walk();
    node.named_children(&mut cursor)
        .any(|c| c.kind() == "visibility_modifier")
}

// `#[cfg(test)]` is an attribute_item sibling preceding the module.
fn is_cfg_test(node: Node, ctx: &Ctx) -> bool {
    let mut prev = node.prev_named_sibling();
    while let Some(p) = prev.filter(|p| p.kind() == "attribute_item") {
        if squash(ctx.text(p)).contains("cfg(test)") {
            return true;
        }
        prev = p.prev_named_sibling();
    }
    false
}

fn squash(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

/// Flattens a `use` tree into `(module, symbol)` pairs; `self`/`super`-relative
/// paths and globs are skipped because they cannot be compared across files.
fn uses(node: Node, ctx: &Ctx) -> Vec<(String, String)> {
    let mut paths = Vec::new();
    if let Some(arg) = node.child_by_field_name("argument") {
        flatten(arg, "", ctx, &mut paths);
    }
    let krate = crate_name(ctx.rel);
    paths
        .iter()
        .filter_map(|p| split_path(p))
        .map(|(module, symbol)| (resolve_crate(&module, &krate), symbol))
        .collect()
}

/// `crates/cordon-core/src/x.rs` belongs to crate `cordon_core` (the directory above
/// `src/`, `tests/`, `benches/` or `examples/`); a root-level `src/` is crate `crate`.
pub(super) fn crate_name(rel: &str) -> String {
    let parts: Vec<&str> = rel.split('/').collect();
    let dir = parts
        .iter()
        .position(|p| matches!(*p, "src" | "tests" | "benches" | "examples"))
        .and_then(|i| i.checked_sub(1))
        .map(|i| parts[i]);
    dir.map_or_else(|| "crate".to_string(), |d| d.replace('-', "_"))
}

/// `crate::x` names the same module from inside as `<crate name>::x` from outside.
fn resolve_crate(module: &str, krate: &str) -> String {
    match module.strip_prefix("crate") {
        Some(rest) if rest.is_empty() || rest.starts_with("::") => format!("{krate}{rest}"),
        _ => module.to_string(),
    }
}

fn flatten(node: Node, prefix: &str, ctx: &Ctx, out: &mut Vec<String>) {
    let join = |tail: &str| {
        if prefix.is_empty() {
            tail.to_string()
        } else {
            format!("{prefix}::{tail}")
        }
    };
    match node.kind() {
        "use_as_clause" => {
            if let Some(path) = node.child_by_field_name("path") {
                flatten(path, prefix, ctx, out);
            }
        }
        "scoped_use_list" => {
            let inner = node
                .child_by_field_name("path")
                .map_or_else(|| prefix.to_string(), |p| join(&squash(ctx.text(p))));
            if let Some(list) = node.child_by_field_name("list") {
                flatten(list, &inner, ctx, out);
            }
        }
        "use_list" => {
            let mut cursor = node.walk();
            for child in node.named_children(&mut cursor) {
                flatten(child, prefix, ctx, out);
            }
        }
        "use_wildcard" => {}
        _ if node.kind().contains("comment") => {}
        _ => out.push(join(&squash(ctx.text(node)))),
    }
}

/// `a::b::C` → (`a::b`, `C`); `a::b::self` → (`a`, `b`).
pub(super) fn split_path(path: &str) -> Option<(String, String)> {
    let path = path.strip_suffix("::self").unwrap_or(path);
    let (module, symbol) = path.rsplit_once("::")?;
    let first = module.split("::").next().unwrap_or("");
    if first == "self" || first == "super" {
        return None;
    }
    Some((module.to_string(), symbol.to_string()))
}

#[cfg(test)]
mod tests {
    use super::split_path;

    #[test]
    fn crate_names_come_from_the_package_directory() {
        assert_eq!(
            super::crate_name("crates/cordon-core/src/ids.rs"),
            "cordon_core"
        );
        assert_eq!(super::crate_name("src/lib.rs"), "crate");
        assert_eq!(
            super::resolve_crate("crate::ids", "cordon_core"),
            "cordon_core::ids"
        );
    }

    #[test]
    fn use_paths_split_into_module_and_symbol() {
        assert_eq!(split_path("a::b::C"), Some(("a::b".into(), "C".into())));
        assert_eq!(split_path("a::b::self"), Some(("a".into(), "b".into())));
        assert_eq!(split_path("super::x::Y"), None);
        assert_eq!(split_path("serde"), None);
    }
}
