//! Anthropic Messages API (`POST {base_url}/v1/messages`), streamed over SSE with tool use.
//!
//! `text_delta`s go to `on_delta` as they arrive, `thinking_delta`s to
//! `on_thinking`; `tool_use` blocks are assembled from their `input_json_delta`s.

use std::collections::BTreeMap;

use async_trait::async_trait;
use cordon_core::{
    LlmError, LlmObserver, LlmProvider, LlmRequest, LlmResponse, LlmTurn, ToolCall, Usage,
};
use serde_json::{Value, json};

use crate::http::{HttpSettings, parse_chunk};
use crate::limits::{
    self, MAX_ARGUMENT_BYTES, MAX_BLOCKS, MAX_TEXT_BYTES, MAX_THINKING_BYTES, MAX_TOOL_CALLS,
};
use crate::openai::{parse_arguments, tool_result_text};
use crate::pricing::ModelPrice;
use crate::sse::SseStream;

/// The `anthropic-version` header sent by default.
pub const DEFAULT_VERSION: &str = "2023-06-01";

/// What an [`AnthropicProvider`] calls and how.
#[derive(Debug, Clone)]
pub struct AnthropicOptions {
    /// e.g. `https://api.anthropic.com`.
    pub base_url: String,
    pub model: String,
    /// Required by the API.
    pub max_tokens: u32,
    pub temperature: Option<f64>,
    /// The `anthropic-version` header.
    pub version: String,
    pub price: Option<ModelPrice>,
}

#[derive(Debug)]
pub struct AnthropicProvider {
    http: HttpSettings,
    url: String,
    options: AnthropicOptions,
}

impl AnthropicProvider {
    pub fn new(http: HttpSettings, options: AnthropicOptions) -> Self {
        let url = format!("{}/v1/messages", options.base_url.trim_end_matches('/'));
        Self { http, url, options }
    }

    fn body(&self, request: &LlmRequest) -> Value {
        let mut body = json!({
            "model": self.options.model,
            "max_tokens": self.options.max_tokens,
            "messages": messages(request),
            "stream": true,
        });
        if !request.system.is_empty() {
            body["system"] = json!(request.system);
        }
        if !request.tools.is_empty() {
            body["tools"] = request
                .tools
                .iter()
                .map(|tool| {
                    json!({
                        "name": crate::tool_names::to_wire(&tool.name),
                        "description": tool.description,
                        "input_schema": tool.parameters,
                    })
                })
                .collect();
        }
        if let Some(temperature) = self.options.temperature {
            body["temperature"] = json!(temperature);
        }
        body
    }
}

#[async_trait]
impl LlmProvider for AnthropicProvider {
    fn name(&self) -> &str {
        "anthropic"
    }

    fn model(&self) -> &str {
        &self.options.model
    }

    fn cost_usd(&self, usage: Usage) -> f64 {
        self.options
            .price
            .map_or(0.0, |price| price.cost_usd(usage))
    }

    async fn complete(
        &self,
        request: &LlmRequest,
        observer: &dyn LlmObserver,
    ) -> Result<LlmResponse, LlmError> {
        let body = self.body(request);
        let response = self
            .http
            .send("anthropic", || {
                self.http
                    .client
                    .post(&self.url)
                    .header("x-api-key", self.http.key.header_value())
                    .header("anthropic-version", &self.options.version)
                    .json(&body)
            })
            .await?;
        let mut stream = SseStream::new(response.bytes_stream());
        let mut reply = AnthropicReply::default();
        while let Some(event) = stream.next_event(self.http.timeout).await? {
            if event.data.trim().is_empty() {
                continue;
            }
            let chunk = parse_chunk("anthropic", &event.data)?;
            if reply.apply(&chunk, observer, &self.http)? {
                break;
            }
        }
        reply
            .finish()
            .map(|response| crate::tool_names::restore(request, response))
    }
}

#[derive(Debug)]
enum Block {
    Text,
    Thinking,
    ToolUse {
        id: String,
        name: String,
        input: String,
    },
    Other,
}

#[derive(Debug, Default)]
struct AnthropicReply {
    text: String,
    thinking: String,
    blocks: BTreeMap<u64, Block>,
    usage: Usage,
    stop_reason: Option<String>,
    done: bool,
}

impl AnthropicReply {
    /// Applies one event; true once the message is complete.
    fn apply(
        &mut self,
        chunk: &Value,
        observer: &dyn LlmObserver,
        http: &HttpSettings,
    ) -> Result<bool, LlmError> {
        let index = chunk["index"].as_u64().unwrap_or(0);
        match chunk["type"].as_str().unwrap_or_default() {
            "message_start" => {
                let usage = &chunk["message"]["usage"];
                self.usage.input_tokens = input_tokens(usage);
                self.usage.output_tokens = usage["output_tokens"].as_u64().unwrap_or(0);
                observer.on_usage(self.usage);
            }
            "content_block_start" => self.start_block(index, &chunk["content_block"], observer)?,
            "content_block_delta" => self.apply_delta(index, &chunk["delta"], observer)?,
            "message_delta" => {
                self.apply_message_delta(chunk);
                observer.on_usage(self.usage);
            }
            "message_stop" => {
                self.done = true;
                return Ok(true);
            }
            "error" => return Err(stream_error(&chunk["error"], http)),
            _ => {}
        }
        Ok(false)
    }

    fn start_block(
        &mut self,
        index: u64,
        block: &Value,
        observer: &dyn LlmObserver,
    ) -> Result<(), LlmError> {
        if !self.blocks.contains_key(&index) {
            limits::check_count(self.blocks.len() + 1, MAX_BLOCKS, "content blocks")?;
        }
        let block = match block["type"].as_str().unwrap_or_default() {
            "text" => {
                self.push_text(block["text"].as_str().unwrap_or_default(), observer)?;
                Block::Text
            }
            "thinking" => Block::Thinking,
            "tool_use" => {
                limits::check_count(self.tool_uses() + 1, MAX_TOOL_CALLS, "tool calls")?;
                Block::ToolUse {
                    id: block["id"].as_str().unwrap_or_default().to_owned(),
                    name: block["name"].as_str().unwrap_or_default().to_owned(),
                    input: String::new(),
                }
            }
            _ => Block::Other,
        };
        self.blocks.insert(index, block);
        Ok(())
    }

    fn tool_uses(&self) -> usize {
        self.blocks
            .values()
            .filter(|block| matches!(block, Block::ToolUse { .. }))
            .count()
    }

    fn apply_delta(
        &mut self,
        index: u64,
        delta: &Value,
        observer: &dyn LlmObserver,
    ) -> Result<(), LlmError> {
        match delta["type"].as_str().unwrap_or_default() {
            "text_delta" => self.push_text(delta["text"].as_str().unwrap_or_default(), observer)?,
            "thinking_delta" => {
                let thinking = delta["thinking"].as_str().unwrap_or_default();
                if !thinking.is_empty() {
                    limits::append(
                        &mut self.thinking,
                        thinking,
                        MAX_THINKING_BYTES,
                        "reasoning",
                    )?;
                    observer.on_thinking(thinking);
                }
            }
            "input_json_delta" => match self.blocks.get_mut(&index) {
                Some(Block::ToolUse { input, .. }) => {
                    let piece = delta["partial_json"].as_str().unwrap_or_default();
                    limits::append(input, piece, MAX_ARGUMENT_BYTES, "tool-call arguments")?;
                }
                _ => {
                    return Err(LlmError::Malformed(format!(
                        "input_json_delta for block {index}, which is not a tool_use block"
                    )));
                }
            },
            _ => {}
        }
        Ok(())
    }

    fn apply_message_delta(&mut self, chunk: &Value) {
        if let Some(reason) = chunk["delta"]["stop_reason"].as_str() {
            self.stop_reason = Some(reason.to_owned());
        }
        let usage = &chunk["usage"];
        if let Some(output) = usage["output_tokens"].as_u64() {
            self.usage.output_tokens = output;
        }
        if usage["input_tokens"].is_u64() {
            self.usage.input_tokens = input_tokens(usage);
        }
    }

    fn push_text(&mut self, text: &str, observer: &dyn LlmObserver) -> Result<(), LlmError> {
        if !text.is_empty() {
            limits::append(&mut self.text, text, MAX_TEXT_BYTES, "answer text")?;
            observer.on_delta(text);
        }
        Ok(())
    }

    fn finish(self) -> Result<LlmResponse, LlmError> {
        if !self.done {
            return Err(LlmError::Malformed(
                "the stream ended before the model finished its answer".into(),
            ));
        }
        let mut tool_calls = Vec::new();
        for block in self.blocks.into_values() {
            if let Block::ToolUse { id, name, input } = block {
                if name.is_empty() || id.is_empty() {
                    return Err(LlmError::Malformed(
                        "a tool_use block has no id or name".into(),
                    ));
                }
                tool_calls.push(ToolCall {
                    arguments: parse_arguments(&name, &input)?,
                    id,
                    name,
                });
            }
        }
        Ok(LlmResponse {
            thinking: (!self.thinking.is_empty()).then_some(self.thinking),
            text: self.text,
            tool_calls,
            usage: self.usage,
        })
    }
}

/// Input tokens including prompt-cache reads and writes, which are billed as input too.
fn input_tokens(usage: &Value) -> u64 {
    [
        "input_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
    ]
    .iter()
    .filter_map(|field| usage[*field].as_u64())
    .sum()
}

/// The conversation as alternating user/assistant messages of content blocks.
fn messages(request: &LlmRequest) -> Vec<Value> {
    let mut messages: Vec<(&str, Vec<Value>)> = Vec::new();
    for turn in &request.turns {
        let (role, blocks) = match turn {
            LlmTurn::User(text) => ("user", vec![json!({ "type": "text", "text": text })]),
            LlmTurn::Assistant { text, tool_calls } => {
                let mut blocks = Vec::new();
                if !text.is_empty() {
                    blocks.push(json!({ "type": "text", "text": text }));
                }
                blocks.extend(tool_calls.iter().map(|call| {
                    json!({
                        "type": "tool_use",
                        "id": call.id,
                        "name": crate::tool_names::to_wire(&call.name),
                        "input": call.arguments,
                    })
                }));
                ("assistant", blocks)
            }
            LlmTurn::ToolResult {
                call_id,
                content,
                is_error,
                ..
            } => (
                "user",
                vec![json!({
                    "type": "tool_result",
                    "tool_use_id": call_id,
                    "content": tool_result_text(content, false),
                    "is_error": is_error,
                })],
            ),
        };
        if blocks.is_empty() {
            continue;
        }
        match messages.last_mut() {
            Some((last, existing)) if *last == role => existing.extend(blocks),
            _ => messages.push((role, blocks)),
        }
    }
    messages
        .into_iter()
        .map(|(role, content)| json!({ "role": role, "content": content }))
        .collect()
}

/// An `error` event inside the stream, mapped to the error it stands for.
fn stream_error(error: &Value, http: &HttpSettings) -> LlmError {
    let message = http
        .key
        .redact(error["message"].as_str().unwrap_or("unknown error"));
    match error["type"].as_str().unwrap_or_default() {
        "rate_limit_error" => LlmError::RateLimited { retry_after: None },
        "authentication_error" | "permission_error" => LlmError::Auth,
        "invalid_request_error" => LlmError::BadRequest(message),
        _ => LlmError::Unavailable(format!("the stream failed: {message}")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests panic on a broken assumption")]
    use super::*;

    #[test]
    fn tool_results_merge_into_one_user_message() {
        let request = LlmRequest {
            system: String::new(),
            turns: vec![
                LlmTurn::User("hi".into()),
                LlmTurn::Assistant {
                    text: String::new(),
                    tool_calls: vec![
                        ToolCall {
                            id: "t1".into(),
                            name: "a".into(),
                            arguments: json!({}),
                        },
                        ToolCall {
                            id: "t2".into(),
                            name: "b".into(),
                            arguments: json!({}),
                        },
                    ],
                },
                LlmTurn::ToolResult {
                    call_id: "t1".into(),
                    name: "a".into(),
                    content: json!(1),
                    is_error: false,
                },
                LlmTurn::ToolResult {
                    call_id: "t2".into(),
                    name: "b".into(),
                    content: json!("no"),
                    is_error: true,
                },
            ],
            tools: Vec::new(),
        };
        let messages = messages(&request);
        assert_eq!(messages.len(), 3);
        assert_eq!(messages[2]["role"], "user");
        assert_eq!(messages[2]["content"].as_array().unwrap().len(), 2);
        assert_eq!(messages[2]["content"][1]["is_error"], true);
    }
}
