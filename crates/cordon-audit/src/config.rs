//! `cordon-audit.toml`: limits, targets, weights, allow-lists, deprecated paths, globs.

use std::collections::BTreeMap;
use std::path::Path;

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::Deserialize;

use crate::error::AuditError;
use crate::model::Rule;

/// The file looked up in the audited root when `--config` is not given.
pub const DEFAULT_CONFIG_FILE: &str = "cordon-audit.toml";

/// Whole configuration; every section and key is optional.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Globs (relative to the root) never scanned, on top of `.gitignore`.
    pub exclude: Vec<String>,
    /// Extra globs marking test files, on top of the built-in conventions.
    pub test_globs: Vec<String>,
    pub targets: Targets,
    pub weights: Weights,
    pub file_size: FileSize,
    pub function_size: FunctionSize,
    pub duplicates: Duplicates,
    pub imports: Imports,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Targets {
    /// Minimum compliance percentage (`>=`).
    pub compliance: f64,
    /// Optional per-rule ceilings (`<=`), keyed by rule id.
    pub max_violations: BTreeMap<String, usize>,
}

impl Default for Targets {
    fn default() -> Self {
        Targets {
            compliance: 90.0,
            max_violations: BTreeMap::new(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Weights {
    pub duplicate_implementation: f64,
    pub import_fragmentation: f64,
    pub file_size: f64,
    pub function_size: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            duplicate_implementation: 1.0,
            import_fragmentation: 1.0,
            file_size: 1.0,
            function_size: 0.25,
        }
    }
}

impl Weights {
    pub fn of(&self, rule: Rule) -> f64 {
        match rule {
            Rule::DuplicateImplementation => self.duplicate_implementation,
            Rule::ImportFragmentation => self.import_fragmentation,
            Rule::FileSize => self.file_size,
            Rule::FunctionSize => self.function_size,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileSize {
    pub max_lines: usize,
    pub max_test_lines: usize,
    /// First matching glob wins and replaces both limits for that file.
    pub overrides: Vec<GlobLimit>,
}

impl Default for FileSize {
    fn default() -> Self {
        FileSize {
            max_lines: 750,
            max_test_lines: 1500,
            overrides: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobLimit {
    pub glob: String,
    pub max_lines: usize,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FunctionSize {
    pub max_lines: usize,
}

impl Default for FunctionSize {
    fn default() -> Self {
        FunctionSize { max_lines: 75 }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Duplicates {
    /// Bodies shorter than this many lines are never compared.
    pub min_lines: usize,
    /// Bodies with fewer normalized tokens than this are never compared.
    pub min_tokens: usize,
    /// Type names allowed to exist in several modules (compared normalized).
    pub allowed_names: Vec<String>,
    /// Suffixes stripped (after lowercasing) before comparing type names.
    pub strip_suffixes: Vec<String>,
    /// Types defined inside another type or a function take no part in the
    /// same-name check (a nested `class Meta` is a framework convention).
    pub ignore_nested: bool,
    /// Names that conventions give to many types, each allowed in the paths
    /// its globs match (everywhere when it has none): Django's `Migration`
    /// in `migrations/`, `Meta`, `Media`, `Config`.
    pub convention_names: Vec<ConventionName>,
    /// Functions copied with a few statements edited (`[duplicates.near_miss]`).
    pub near_miss: NearMiss,
}

/// The near-miss check: functions in different files whose lines align
/// to at least `similarity`. Bodies also need `duplicates.min_lines` lines.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NearMiss {
    /// Smallest similarity reported, 0.5..=1.0 (1.0 turns the check off: equal
    /// bodies are the exact check's).
    pub similarity: f64,
    /// Functions with fewer normalized tokens than this are never compared.
    pub min_tokens: usize,
}

impl Default for NearMiss {
    fn default() -> Self {
        NearMiss {
            similarity: 0.85,
            min_tokens: 80,
        }
    }
}

/// A conventional type name, allowed where `paths` match (everywhere without globs).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConventionName {
    pub name: String,
    #[serde(default)]
    pub paths: Vec<String>,
}

impl ConventionName {
    fn new(name: &str, paths: &[&str]) -> Self {
        Self {
            name: name.to_owned(),
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        }
    }
}

impl Default for Duplicates {
    fn default() -> Self {
        Duplicates {
            min_lines: 6,
            min_tokens: 50,
            allowed_names: Vec::new(),
            strip_suffixes: vec!["impl".to_string()],
            ignore_nested: true,
            convention_names: default_conventions(),
            near_miss: NearMiss::default(),
        }
    }
}

/// Names a framework gives to many types, or looks classes up by in a
/// module it is pointed at (Django's management commands, database, session
/// and mail backends, template loaders, serializers).
fn default_conventions() -> Vec<ConventionName> {
    let backends = &["**/backends/**"][..];
    let mut out = vec![
        ConventionName::new("Migration", &["**/migrations/**"]),
        ConventionName::new("Meta", &[]),
        ConventionName::new("Media", &[]),
        ConventionName::new("Config", &[]),
        ConventionName::new("Command", &["**/management/commands/**"]),
        ConventionName::new("SessionStore", backends),
        ConventionName::new("EmailBackend", backends),
        ConventionName::new("Loader", &["**/loaders/**"]),
        ConventionName::new("Serializer", &["**/serializers/**"]),
        ConventionName::new("Deserializer", &["**/serializers/**"]),
    ];
    let database = [
        "Wrapper",
        "Features",
        "Operations",
        "Client",
        "Creation",
        "Introspection",
        "SchemaEditor",
        "Validation",
    ];
    out.extend(
        database
            .iter()
            .map(|part| ConventionName::new(&format!("Database{part}"), backends)),
    );
    out
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Imports {
    pub deprecated: Vec<DeprecatedPath>,
    /// Symbols that may legitimately come from several modules (e.g. `Result`).
    pub allowed_symbols: Vec<String>,
    /// Module prefixes ignored for fragmentation (e.g. `std::`).
    pub ignore_modules: Vec<String>,
    /// The path a name is to be imported through (`Client = "app.db"`),
    /// named as the canonical one in its finding when that path reaches the
    /// definition; otherwise the shortest public re-export is.
    pub canonical: std::collections::BTreeMap<String, String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeprecatedPath {
    pub path: String,
    pub replacement: Option<String>,
}

impl Config {
    /// Loads `explicit`, else `<root>/cordon-audit.toml` if present, else defaults.
    pub fn load(root: &Path, explicit: Option<&Path>) -> Result<Config, AuditError> {
        let path = match explicit {
            Some(p) => p.to_path_buf(),
            None => {
                let p = root.join(DEFAULT_CONFIG_FILE);
                if !p.is_file() {
                    return Ok(Config::default());
                }
                p
            }
        };
        let text = std::fs::read_to_string(&path).map_err(|source| AuditError::Read {
            path: path.clone(),
            source,
        })?;
        let config: Config = toml::from_str(&text).map_err(|e| AuditError::Config {
            path: path.clone(),
            message: e.to_string(),
        })?;
        config.validate(&path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), AuditError> {
        let bad = |message: String| AuditError::Config {
            path: path.to_path_buf(),
            message,
        };
        if let Some(id) = self
            .targets
            .max_violations
            .keys()
            .find(|id| Rule::from_id(id).is_none())
        {
            return Err(bad(format!(
                "unknown rule id `{id}` in targets.max_violations"
            )));
        }
        if !(0.0..=100.0).contains(&self.targets.compliance) {
            return Err(bad("targets.compliance must be within 0..=100".to_string()));
        }
        // Below one half a "copy" shares less than it changes, and the candidate
        // filter would have to compare nearly every pair.
        if !(0.5..=1.0).contains(&self.duplicates.near_miss.similarity) {
            return Err(bad(
                "duplicates.near_miss.similarity must be within 0.5..=1.0".to_string(),
            ));
        }
        // A glob that does not compile would silently allow the name nowhere.
        for convention in &self.duplicates.convention_names {
            glob_set(&convention.paths).map_err(|error| {
                bad(format!(
                    "duplicates.convention_names `{}`: {error}",
                    convention.name
                ))
            })?;
        }
        Ok(())
    }
}

/// Compiles globs; a bare `dir/**` also matches `dir` itself so walks can prune it.
pub fn glob_set(globs: &[String]) -> Result<GlobSet, AuditError> {
    let mut builder = GlobSetBuilder::new();
    for g in globs {
        let glob = Glob::new(g).map_err(|e| AuditError::Glob {
            glob: g.clone(),
            message: e.to_string(),
        })?;
        builder.add(glob);
        if let Some(dir_glob) = g.strip_suffix("/**").and_then(|d| Glob::new(d).ok()) {
            builder.add(dir_glob);
        }
    }
    builder.build().map_err(|e| AuditError::Glob {
        glob: globs.join(", "),
        message: e.to_string(),
    })
}
