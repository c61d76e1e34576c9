//! MCP tool servers as cordon tools: each configured server's tools, prefixed with its name, offered next to the built-ins.
//!
//! [`McpServers::start`] connects to every server in the config (a child
//! process over stdio, or streamable HTTP) with the official SDK, `rmcp`,
//! lists its tools into the [`ToolDispatcher`](cordon_engine::ToolDispatcher)
//! as `server.tool`, lists them again whenever the server announces a change,
//! and reconnects with backoff when the server goes away (a crashed child is
//! started again). A call that fails, times out or meets a dead server is a
//! tool error the model sees, never a failed run.

mod config;
mod connection;
mod per_user;
mod template;
mod tool;

pub use config::{McpConfigError, McpServer, McpServerConfig, McpTransport};
pub use connection::{McpServers, install_tls_provider};
