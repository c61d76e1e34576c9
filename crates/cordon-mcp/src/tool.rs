//! `McpTool`: one tool of an MCP server, called over that server's current connection.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use cordon_core::{Tool, ToolContext, ToolError};
use rmcp::model::{CallToolRequestParams, CallToolResult, ContentBlock};
use rmcp::service::{Peer, RoleClient};
use serde_json::Value;

/// A server's live connection, shared by its tools and replaced on reconnect.
pub(crate) struct Link {
    pub server: String,
    pub call_timeout: Duration,
    peer: Mutex<Option<Peer<RoleClient>>>,
}

impl Link {
    pub fn new(server: String, call_timeout: Duration) -> Self {
        Self {
            server,
            call_timeout,
            peer: Mutex::new(None),
        }
    }

    pub fn set(&self, peer: Option<Peer<RoleClient>>) {
        *self.peer.lock().unwrap_or_else(PoisonError::into_inner) = peer;
    }

    fn peer(&self) -> Option<Peer<RoleClient>> {
        self.peer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

pub(crate) struct McpTool {
    /// `server.tool`, what the model calls.
    name: String,
    /// The tool's own name on its server.
    remote: String,
    description: String,
    schema: Value,
    link: Arc<Link>,
}

impl McpTool {
    pub fn new(link: &Arc<Link>, tool: rmcp::model::Tool) -> Self {
        let description = tool
            .description
            .as_deref()
            .or(tool.title.as_deref())
            .unwrap_or_default()
            .to_owned();
        Self {
            name: format!("{}.{}", link.server, tool.name),
            remote: tool.name.into_owned(),
            description,
            schema: Value::Object(tool.input_schema.as_ref().clone()),
            link: Arc::clone(link),
        }
    }

    fn failed(&self, why: impl std::fmt::Display) -> ToolError {
        ToolError::Failed(format!("the MCP server `{}` {why}", self.link.server))
    }
}

#[async_trait]
impl Tool for McpTool {
    fn name(&self) -> &str {
        &self.name
    }

    fn description(&self) -> &str {
        &self.description
    }

    fn parameters_schema(&self) -> Value {
        self.schema.clone()
    }

    /// Dropping the call (the run was cancelled) or timing out abandons the
    /// request, and rmcp tells the server it is cancelled.
    async fn call(&self, _cx: &ToolContext, arguments: Value) -> Result<Value, ToolError> {
        let arguments = match arguments {
            Value::Object(arguments) => arguments,
            Value::Null => serde_json::Map::new(),
            _ => {
                return Err(ToolError::InvalidArguments(
                    "the arguments must be a JSON object".into(),
                ));
            }
        };
        let peer = self
            .link
            .peer()
            .ok_or_else(|| self.failed("is not connected (it is being restarted)"))?;
        let params = CallToolRequestParams::new(self.remote.clone()).with_arguments(arguments);
        let timeout = self.link.call_timeout;
        match tokio::time::timeout(timeout, peer.call_tool(params)).await {
            Err(_) => Err(self.failed(format_args!(
                "did not answer within {:.1} s",
                timeout.as_secs_f64()
            ))),
            Ok(Err(error)) => Err(self.failed(format_args!("failed the call: {error}"))),
            Ok(Ok(result)) => answer(result).map_err(|text| self.failed(format_args!("{text}"))),
        }
    }
}

/// What the model sees: the structured result if there is one, else the text
/// (one block as a string, several as a list); a tool-reported error as the
/// error's text.
fn answer(result: CallToolResult) -> Result<Value, String> {
    let texts: Vec<String> = result
        .content
        .iter()
        .map(|block| match block {
            ContentBlock::Text(text) => text.text.clone(),
            other => serde_json::to_string(other).unwrap_or_default(),
        })
        .collect();
    if result.is_error == Some(true) {
        return Err(format!("reported an error: {}", texts.join("\n")));
    }
    if let Some(structured) = result.structured_content {
        return Ok(structured);
    }
    Ok(match <[String; 1]>::try_from(texts) {
        Ok([text]) => Value::String(text),
        Err(texts) => Value::from(texts),
    })
}
