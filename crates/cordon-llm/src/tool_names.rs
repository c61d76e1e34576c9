//! Tool names as providers accept them (`[A-Za-z0-9_-]`), and back: an MCP server's tools are `server.tool` in cordon.

use std::borrow::Cow;

use cordon_core::{LlmRequest, LlmResponse};

/// The name sent to the provider: `.` becomes `__`, any other character a
/// provider refuses becomes `_`.
pub fn to_wire(name: &str) -> Cow<'_, str> {
    if name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Cow::Borrowed(name);
    }
    let mut wire = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        match c {
            '.' => wire.push_str("__"),
            c if c.is_ascii_alphanumeric() || c == '-' => wire.push(c),
            _ => wire.push('_'),
        }
    }
    Cow::Owned(wire)
}

/// Gives the response's tool calls the names of the request's tools they
/// were sent as; a name that matches none is left as the model wrote it
/// (the dispatcher answers it with an unknown-tool error).
pub fn restore(request: &LlmRequest, mut response: LlmResponse) -> LlmResponse {
    for call in &mut response.tool_calls {
        if let Some(tool) = request
            .tools
            .iter()
            .find(|tool| tool.name != call.name && to_wire(&tool.name) == call.name)
        {
            call.name.clone_from(&tool.name);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use cordon_core::{ToolCall, ToolSpec};
    use serde_json::json;

    use super::*;

    #[test]
    fn dotted_names_travel_as_double_underscores_and_come_back() {
        assert_eq!(to_wire("calculator"), "calculator");
        assert_eq!(to_wire("github.create_issue"), "github__create_issue");
        assert_eq!(to_wire("a b/c"), "a_b_c");
        let spec = |name: &str| ToolSpec {
            name: name.into(),
            description: String::new(),
            parameters: json!({}),
        };
        let request = LlmRequest {
            system: String::new(),
            turns: Vec::new(),
            tools: vec![spec("calculator"), spec("github.create_issue")],
        };
        let call = |name: &str| ToolCall {
            id: "c".into(),
            name: name.into(),
            arguments: json!({}),
        };
        let response = LlmResponse {
            tool_calls: vec![
                call("github__create_issue"),
                call("calculator"),
                call("nope"),
            ],
            ..LlmResponse::default()
        };
        let names: Vec<String> = restore(&request, response)
            .tool_calls
            .into_iter()
            .map(|call| call.name)
            .collect();
        assert_eq!(names, ["github.create_issue", "calculator", "nope"]);
    }
}
