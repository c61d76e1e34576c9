//! OpenAI-compatible chat completions (`POST {base_url}/chat/completions`), streamed over SSE with tool calls.
//!
//! Works with OpenAI and with servers that speak its protocol (vLLM, llama.cpp
//! server, Ollama, LM Studio, ...). Answer text goes to `on_delta` as it
//! arrives; `reasoning_content`/`reasoning` deltas (vLLM, DeepSeek, Ollama) go
//! to `on_thinking`. Tool-call deltas are assembled by their `index`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use cordon_core::{
    LlmError, LlmObserver, LlmProvider, LlmRequest, LlmResponse, LlmTurn, ToolCall, Usage,
};
use serde_json::{Value, json};

use crate::http::{HttpSettings, parse_chunk};
use crate::limits::{self, MAX_ARGUMENT_BYTES, MAX_TEXT_BYTES, MAX_THINKING_BYTES, MAX_TOOL_CALLS};
use crate::pricing::ModelPrice;
use crate::sse::SseStream;

/// What an [`OpenAiProvider`] calls and how.
#[derive(Debug, Clone)]
pub struct OpenAiOptions {
    /// e.g. `https://api.openai.com/v1` or `http://127.0.0.1:11434/v1`.
    pub base_url: String,
    pub model: String,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f64>,
    /// Ask for a final usage chunk (`stream_options.include_usage`).
    pub stream_usage: bool,
    pub price: Option<ModelPrice>,
}

#[derive(Debug)]
pub struct OpenAiProvider {
    http: HttpSettings,
    url: String,
    options: OpenAiOptions,
}

impl OpenAiProvider {
    pub fn new(http: HttpSettings, options: OpenAiOptions) -> Self {
        let url = format!(
            "{}/chat/completions",
            options.base_url.trim_end_matches('/')
        );
        Self { http, url, options }
    }

    fn body(&self, request: &LlmRequest) -> Value {
        let mut body = json!({
            "model": self.options.model,
            "messages": messages(request),
            "stream": true,
        });
        if self.options.stream_usage {
            body["stream_options"] = json!({ "include_usage": true });
        }
        if !request.tools.is_empty() {
            body["tools"] = request
                .tools
                .iter()
                .map(|tool| {
                    json!({
                        "type": "function",
                        "function": {
                            "name": crate::tool_names::to_wire(&tool.name),
                            "description": tool.description,
                            "parameters": tool.parameters,
                        }
                    })
                })
                .collect();
        }
        if let Some(max_tokens) = self.options.max_tokens {
            body["max_tokens"] = json!(max_tokens);
        }
        if let Some(temperature) = self.options.temperature {
            body["temperature"] = json!(temperature);
        }
        body
    }
}

#[async_trait]
impl LlmProvider for OpenAiProvider {
    fn name(&self) -> &str {
        "openai"
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
            .send("openai", || {
                let builder = self.http.client.post(&self.url).json(&body);
                if self.http.key.is_empty() {
                    builder
                } else {
                    builder.bearer_auth(self.http.key.expose())
                }
            })
            .await?;
        let mut stream = SseStream::new(response.bytes_stream());
        let mut reply = OpenAiReply::default();
        while let Some(event) = stream.next_event(self.http.timeout).await? {
            let data = event.data.trim();
            if data == "[DONE]" {
                reply.done = true;
                break;
            }
            if data.is_empty() {
                continue;
            }
            let chunk = parse_chunk("openai", data)?;
            reply.apply(&chunk, observer, &self.http)?;
        }
        reply
            .finish()
            .map(|response| crate::tool_names::restore(request, response))
    }
}

/// One tool call being assembled from its deltas.
#[derive(Debug, Default)]
struct PartialCall {
    id: String,
    name: String,
    arguments: String,
}

#[derive(Debug, Default)]
struct OpenAiReply {
    text: String,
    thinking: String,
    calls: BTreeMap<u64, PartialCall>,
    usage: Usage,
    finish_reason: Option<String>,
    done: bool,
}

impl OpenAiReply {
    fn apply(
        &mut self,
        chunk: &Value,
        observer: &dyn LlmObserver,
        http: &HttpSettings,
    ) -> Result<(), LlmError> {
        if let Some(error) = chunk.get("error").filter(|e| !e.is_null()) {
            let message = error["message"].as_str().unwrap_or("unknown error");
            return Err(LlmError::Unavailable(format!(
                "the stream failed: {}",
                http.key.redact(message)
            )));
        }
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Usage {
                input_tokens: usage["prompt_tokens"].as_u64().unwrap_or(0),
                output_tokens: usage["completion_tokens"].as_u64().unwrap_or(0),
            };
            observer.on_usage(self.usage);
        }
        let Some(choices) = chunk.get("choices").and_then(Value::as_array) else {
            return Ok(());
        };
        for choice in choices {
            if choice["index"].as_u64().unwrap_or(0) == 0 {
                self.apply_choice(choice, observer)?;
            }
        }
        Ok(())
    }

    fn apply_choice(&mut self, choice: &Value, observer: &dyn LlmObserver) -> Result<(), LlmError> {
        let delta = &choice["delta"];
        let reasoning = delta["reasoning_content"]
            .as_str()
            .or_else(|| delta["reasoning"].as_str());
        if let Some(reasoning) = reasoning.filter(|r| !r.is_empty()) {
            limits::append(
                &mut self.thinking,
                reasoning,
                MAX_THINKING_BYTES,
                "reasoning",
            )?;
            observer.on_thinking(reasoning);
        }
        if let Some(content) = delta["content"].as_str().filter(|c| !c.is_empty()) {
            limits::append(&mut self.text, content, MAX_TEXT_BYTES, "answer text")?;
            observer.on_delta(content);
        }
        if let Some(calls) = delta["tool_calls"].as_array() {
            for (position, call) in calls.iter().enumerate() {
                self.apply_call_delta(position, call)?;
            }
        }
        if let Some(reason) = choice["finish_reason"].as_str() {
            self.finish_reason = Some(reason.to_owned());
        }
        Ok(())
    }

    /// One tool-call delta, assembled by its `index` (or its position when it has none).
    fn apply_call_delta(&mut self, position: usize, call: &Value) -> Result<(), LlmError> {
        let index = call["index"].as_u64().unwrap_or(position as u64);
        if !self.calls.contains_key(&index) {
            limits::check_count(self.calls.len() + 1, MAX_TOOL_CALLS, "tool calls")?;
        }
        let entry = self.calls.entry(index).or_default();
        if let Some(id) = call["id"].as_str().filter(|id| !id.is_empty()) {
            entry.id = id.to_owned();
        }
        let function = &call["function"];
        if let Some(name) = function["name"].as_str().filter(|n| !n.is_empty()) {
            entry.name = name.to_owned();
        }
        if let Some(arguments) = function["arguments"].as_str() {
            limits::append(
                &mut entry.arguments,
                arguments,
                MAX_ARGUMENT_BYTES,
                "tool-call arguments",
            )?;
        }
        Ok(())
    }

    fn finish(self) -> Result<LlmResponse, LlmError> {
        if !self.done && self.finish_reason.is_none() {
            return Err(LlmError::Malformed(
                "the stream ended before the model finished its answer".into(),
            ));
        }
        let tool_calls = self
            .calls
            .into_iter()
            .map(|(index, call)| tool_call(index, call))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(LlmResponse {
            thinking: (!self.thinking.is_empty()).then_some(self.thinking),
            text: self.text,
            tool_calls,
            usage: self.usage,
        })
    }
}

fn tool_call(index: u64, call: PartialCall) -> Result<ToolCall, LlmError> {
    if call.name.is_empty() {
        return Err(LlmError::Malformed(format!(
            "tool call {index} has no function name"
        )));
    }
    Ok(ToolCall {
        id: if call.id.is_empty() {
            format!("call_{index}")
        } else {
            call.id
        },
        arguments: parse_arguments(&call.name, &call.arguments)?,
        name: call.name,
    })
}

/// Tool arguments as sent: a JSON object text (empty means no arguments).
pub(crate) fn parse_arguments(tool: &str, text: &str) -> Result<Value, LlmError> {
    if text.trim().is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_str(text).map_err(|error| {
        LlmError::Malformed(format!(
            "the arguments of the `{tool}` tool call are not JSON: {error}"
        ))
    })
}

/// The conversation in chat-completions form.
fn messages(request: &LlmRequest) -> Vec<Value> {
    let mut messages = Vec::with_capacity(request.turns.len() + 1);
    if !request.system.is_empty() {
        messages.push(json!({ "role": "system", "content": request.system }));
    }
    for turn in &request.turns {
        messages.push(match turn {
            LlmTurn::User(text) => json!({ "role": "user", "content": text }),
            LlmTurn::Assistant { text, tool_calls } if tool_calls.is_empty() => {
                json!({ "role": "assistant", "content": text })
            }
            LlmTurn::Assistant { text, tool_calls } => json!({
                "role": "assistant",
                "content": if text.is_empty() { Value::Null } else { json!(text) },
                "tool_calls": tool_calls.iter().map(|call| json!({
                    "id": call.id,
                    "type": "function",
                    "function": {
                        "name": crate::tool_names::to_wire(&call.name),
                        "arguments": call.arguments.to_string(),
                    },
                })).collect::<Vec<_>>(),
            }),
            LlmTurn::ToolResult {
                call_id,
                content,
                is_error,
                ..
            } => json!({
                "role": "tool",
                "tool_call_id": call_id,
                "content": tool_result_text(content, *is_error),
            }),
        });
    }
    messages
}

/// A tool result as the text a model reads.
pub(crate) fn tool_result_text(content: &Value, is_error: bool) -> String {
    let text = match content {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    if is_error {
        format!("error: {text}")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests panic on a broken assumption")]
    use super::*;
    use cordon_core::IgnoreStream;

    #[test]
    fn tool_call_deltas_split_across_chunks_are_assembled() {
        let http = HttpSettings::new(
            Default::default(),
            Default::default(),
            std::time::Duration::from_secs(1),
        );
        let mut reply = OpenAiReply::default();
        let chunks = [
            json!({"choices":[{"index":0,"delta":{"role":"assistant","tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"calculator","arguments":""}}]}}]}),
            json!({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"expre"}}]}}]}),
            json!({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"ssion\": \"1+1\"}"}}]}}]}),
            json!({"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}),
            json!({"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":7,"total_tokens":19}}),
        ];
        for chunk in &chunks {
            reply.apply(chunk, &IgnoreStream, &http).unwrap();
        }
        reply.done = true;
        let response = reply.finish().unwrap();
        assert_eq!(response.tool_calls.len(), 1);
        assert_eq!(response.tool_calls[0].id, "call_1");
        assert_eq!(
            response.tool_calls[0].arguments,
            json!({"expression": "1+1"})
        );
        assert_eq!(response.usage.input_tokens, 12);
        assert_eq!(response.usage.output_tokens, 7);
    }

    #[test]
    fn a_stream_cut_short_is_malformed() {
        let reply = OpenAiReply {
            text: "half an ans".into(),
            ..OpenAiReply::default()
        };
        assert!(matches!(reply.finish(), Err(LlmError::Malformed(_))));
    }
}
