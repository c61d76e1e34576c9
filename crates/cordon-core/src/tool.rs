//! `Tool`: something an agent can call, and the user-scoped context it runs in.

use async_trait::async_trait;
use serde_json::Value;

use crate::context::UserExecutionContext;
use crate::user_store::UserStore;

/// Why a tool call failed. The message is shown to the model and the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolError {
    #[error("invalid arguments: {0}")]
    InvalidArguments(String),
    #[error("{0}")]
    Failed(String),
    #[error("no tool named `{0}`")]
    Unknown(String),
}

/// What a tool may use while it runs: the caller's context and the store
/// bound to that same user.
#[derive(Clone)]
pub struct ToolContext {
    pub ctx: UserExecutionContext,
    pub store: UserStore,
}

#[async_trait]
pub trait Tool: Send + Sync + 'static {
    /// Unique name the model uses to call it (an MCP server's tools are
    /// prefixed with the server's name: `github.create_issue`).
    fn name(&self) -> &str;
    /// What it does, for the model.
    fn description(&self) -> &str;
    /// JSON Schema of the arguments object.
    fn parameters_schema(&self) -> Value;
    async fn call(&self, cx: &ToolContext, arguments: Value) -> Result<Value, ToolError>;
}

/// Tools whose set, and whose calls, belong to one user: e.g. an MCP server
/// each user reaches with their own credential. The dispatcher asks for the
/// calling user's tools on every run and call, so a call can only reach the
/// caller's own connection.
#[async_trait]
pub trait UserTools: Send + Sync + 'static {
    /// The tools offered to the user of `cx` (none when they cannot be reached).
    async fn tools_for(&self, cx: &ToolContext) -> Vec<std::sync::Arc<dyn Tool>>;
}
