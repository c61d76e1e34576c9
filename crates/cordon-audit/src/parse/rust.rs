//! Rust: structs/enums/traits/unions, `impl` blocks, functions, `use` trees, `#[cfg(test)]` modules.

use tree_sitter::Node;

use super::{Binding, Ctx, NodeRole};

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
        // `pub use` re-exports pass a name on rather than use it.
        "use_declaration" if has_visibility(node) => {
            NodeRole::Reexports(uses(node, ctx, Use::Reexport))
        }
        "use_declaration" => NodeRole::Imports(uses(node, ctx, Use::Import)),
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

/// Whether a `use` tree is read as what the file uses or what it passes on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Use {
    Import,
    /// A glob passes on every name (symbol `*`).
    Reexport,
}

/// Flattens a `use` tree into bindings (`a::B as C` is `B` from `a`, bound
/// as `C`), with `crate::`,
/// `self::` and `super::` made absolute from the file's module path. A path
/// that starts with a plain name stays as written: it may name a child
/// module or another crate, which the resolver (`rules::symbols`) tells apart.
fn uses(node: Node, ctx: &Ctx, read: Use) -> Vec<Binding> {
    let mut paths = Vec::new();
    if let Some(arg) = node.child_by_field_name("argument") {
        flatten(arg, "", ctx, read, &mut paths);
    }
    let here = module_path(ctx.rel);
    paths
        .into_iter()
        .filter_map(|(path, alias)| {
            let (module, symbol) = split_path(&absolute(&path, &here)?)?;
            Some(Binding::new(module, symbol, alias))
        })
        .collect()
}

/// The module a Rust file is: `crates/cordon-core/src/ids.rs` is
/// `cordon_core::ids`, its `lib.rs` (or `main.rs`) `cordon_core`, and
/// `src/a/mod.rs` is `<crate>::a`. A file under `tests/`, `benches/` or
/// `examples/` belongs to a crate of its own (`<crate>_tests::it`).
pub(crate) fn module_path(rel: &str) -> String {
    let krate = crate_name(rel);
    let parts: Vec<&str> = rel.split('/').collect();
    let root = parts
        .iter()
        .position(|p| matches!(*p, "src" | "tests" | "benches" | "examples"));
    let mut path = vec![krate];
    if let Some(at) = root {
        // An integration test, bench or example is a crate of its own.
        if parts[at] != "src" {
            path[0] = format!("{}_{}", path[0], parts[at]);
        }
        for part in &parts[at + 1..] {
            let stem = part.strip_suffix(".rs").unwrap_or(part);
            if !matches!(stem, "lib" | "main" | "mod") {
                path.push(stem.to_string());
            }
        }
    }
    path.join("::")
}

/// `crate::x`, `self::x` and `super::x` from the file's module `here`;
/// `None` for a `super` above the crate.
fn absolute(path: &str, here: &str) -> Option<String> {
    let mut base: Vec<&str> = here.split("::").collect();
    let mut rest = path;
    if let Some(tail) = strip_segment(rest, "crate") {
        base.truncate(1);
        rest = tail;
    } else if let Some(tail) = strip_segment(rest, "self") {
        rest = tail;
    } else if strip_segment(rest, "super").is_some() {
        while let Some(tail) = strip_segment(rest, "super") {
            base.pop();
            rest = tail;
        }
        if base.is_empty() {
            return None;
        }
    } else {
        return Some(path.to_string());
    }
    Some(if rest.is_empty() {
        base.join("::")
    } else {
        format!("{}::{rest}", base.join("::"))
    })
}

/// `segment::rest` → `rest` (empty for `segment` alone).
fn strip_segment<'p>(path: &'p str, segment: &str) -> Option<&'p str> {
    let tail = path.strip_prefix(segment)?;
    if tail.is_empty() {
        return Some("");
    }
    tail.strip_prefix("::")
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

/// A path of the tree, with its alias (`as C`) if it has one.
type UsePath = (String, Option<String>);

fn flatten(node: Node, prefix: &str, ctx: &Ctx, read: Use, out: &mut Vec<UsePath>) {
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
                out.push((join(&squash(ctx.text(path))), ctx.field(node, "alias")));
            }
        }
        "scoped_use_list" => {
            let inner = node
                .child_by_field_name("path")
                .map_or_else(|| prefix.to_string(), |p| join(&squash(ctx.text(p))));
            if let Some(list) = node.child_by_field_name("list") {
                flatten(list, &inner, ctx, read, out);
            }
        }
        "use_list" => {
            let mut cursor = node.walk();
            for child in node.named_children(&mut cursor) {
                flatten(child, prefix, ctx, read, out);
            }
        }
        "use_wildcard" if read == Use::Reexport => out.push((join(&squash(ctx.text(node))), None)),
        "use_wildcard" => {}
        _ if node.kind().contains("comment") => {}
        _ => out.push((join(&squash(ctx.text(node))), None)),
    }
}

/// `a::b::C` → (`a::b`, `C`); `a::b::self` → (`a`, `b`); `a::*` → (`a`, `*`).
pub(super) fn split_path(path: &str) -> Option<(String, String)> {
    let path = path.strip_suffix("::self").unwrap_or(path);
    let (module, symbol) = path.rsplit_once("::")?;
    Some((module.to_string(), symbol.to_string()))
}

#[cfg(test)]
mod tests {
    use super::{absolute, module_path, split_path};

    #[test]
    fn crate_names_come_from_the_package_directory() {
        assert_eq!(
            super::crate_name("crates/cordon-core/src/ids.rs"),
            "cordon_core"
        );
        assert_eq!(super::crate_name("src/lib.rs"), "crate");
    }

    #[test]
    fn files_name_their_module_paths() {
        assert_eq!(
            module_path("crates/cordon-core/src/ids.rs"),
            "cordon_core::ids"
        );
        assert_eq!(module_path("crates/cordon-core/src/lib.rs"), "cordon_core");
        assert_eq!(module_path("crates/x/src/a/mod.rs"), "x::a");
        assert_eq!(module_path("crates/x/src/a/b.rs"), "x::a::b");
        assert_eq!(module_path("crates/x/tests/it.rs"), "x_tests::it");
    }

    #[test]
    fn relative_paths_are_made_absolute_from_the_files_module() {
        let here = "x::a::b";
        assert_eq!(
            absolute("crate::ids::Id", here).as_deref(),
            Some("x::ids::Id")
        );
        assert_eq!(
            absolute("self::c::D", here).as_deref(),
            Some("x::a::b::c::D")
        );
        assert_eq!(absolute("super::c::D", here).as_deref(), Some("x::a::c::D"));
        assert_eq!(absolute("super::super::D", here).as_deref(), Some("x::D"));
        assert_eq!(absolute("super::super::super::D", here), None);
        assert_eq!(
            absolute("serde::Serialize", here).as_deref(),
            Some("serde::Serialize")
        );
        assert_eq!(absolute("crate_x::Y", here).as_deref(), Some("crate_x::Y"));
    }

    #[test]
    fn use_paths_split_into_module_and_symbol() {
        assert_eq!(split_path("a::b::C"), Some(("a::b".into(), "C".into())));
        assert_eq!(split_path("a::b::self"), Some(("a".into(), "b".into())));
        assert_eq!(split_path("a::*"), Some(("a".into(), "*".into())));
        assert_eq!(split_path("serde"), None);
    }
}
