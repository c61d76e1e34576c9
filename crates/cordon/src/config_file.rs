//! `--config`: the TOML file of what does not fit a flag: the MCP tool servers and which tools need a person's approval.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::Context;
use cordon_mcp::{McpServer, McpServerConfig};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// `[mcp_servers.NAME]`: one table per MCP server.
    #[serde(default)]
    mcp_servers: BTreeMap<String, McpServerConfig>,
    /// `[tools."NAME"]`: settings of one tool, built-in or MCP (`server.tool`).
    #[serde(default)]
    tools: BTreeMap<String, ToolSettings>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ToolSettings {
    /// A person approves each call before it runs.
    #[serde(default)]
    requires_approval: bool,
}

impl ConfigFile {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("could not read the config file {}", path.display()))?;
        // The error's own text quotes the offending line, which may hold a credential.
        toml::from_str(&text).map_err(|error| {
            let line = error
                .span()
                .and_then(|span| text.get(..span.start))
                .map_or(1, |before| before.matches('\n').count() + 1);
            anyhow::anyhow!(
                "{} is not a valid config (line {line}): {}",
                path.display(),
                error.message()
            )
        })
    }

    /// The tools marked `requires_approval`.
    pub fn approval_tools(&self) -> BTreeSet<String> {
        self.tools
            .iter()
            .filter(|(_, settings)| settings.requires_approval)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// The declared MCP servers, each checked.
    pub fn mcp_servers(self) -> anyhow::Result<Vec<McpServer>> {
        self.mcp_servers
            .into_iter()
            .map(|(name, server)| server.check(&name).map_err(anyhow::Error::from))
            .collect()
    }
}
