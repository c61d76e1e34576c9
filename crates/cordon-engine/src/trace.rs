//! A run's spans in the OpenTelemetry GenAI conventions (`invoke_agent`, `chat`, `execute_tool`), made with `tracing` under the target [`TARGET`]; they cost nothing unless the binary installs its OpenTelemetry layer for that target.

use std::sync::OnceLock;

use cordon_core::{
    ErrorCode, LlmError, LlmRequest, LlmResponse, RunId, ThreadId, ToolCall, TraceParent,
    UserExecutionContext, UserId,
};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::{Array, StringValue, Value};
use sha2::{Digest, Sha256};
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The `tracing` target of every span meant for export; the log output leaves it out.
pub const TARGET: &str = "cordon_otel";

/// What the exported spans may say about users. Process-wide, like the
/// exporter it shapes (a `tracing` subscriber is global).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TraceOptions {
    /// `cordon.user_id` as the id itself rather than its hash.
    pub plain_user_ids: bool,
    /// Prompts, answers and tool arguments/results as span attributes.
    pub content: bool,
}

static OPTIONS: OnceLock<TraceOptions> = OnceLock::new();

/// Set once, by the binary, when it installs the exporter; later calls are ignored.
pub fn configure(options: TraceOptions) {
    let _ = OPTIONS.set(options);
}

fn options() -> TraceOptions {
    OPTIONS.get().copied().unwrap_or_default()
}

/// `cordon.user_id`: the first 16 hex digits of the id's SHA-256, so a
/// collector can group a user's runs without learning who they are.
pub fn hashed_user_id(user_id: &UserId) -> String {
    let digest = Sha256::digest(user_id.as_str().as_bytes());
    digest[..8]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The cordon attributes every span of a run carries.
fn record_ids(span: &Span, user_id: &UserId, thread_id: &ThreadId, run_id: &RunId) {
    let user = if options().plain_user_ids {
        user_id.as_str().to_owned()
    } else {
        hashed_user_id(user_id)
    };
    span.record("cordon.user_id", user.as_str());
    span.record("cordon.thread_id", thread_id.as_str());
    span.record("cordon.run_id", run_id.as_str());
}

/// The run's span, `invoke_agent supervisor`, a child of the caller's
/// `traceparent` when the request had one.
pub(crate) fn invoke_agent(ctx: &UserExecutionContext, agent: &str) -> Span {
    let span = tracing::info_span!(
        target: TARGET,
        "invoke_agent",
        otel.name = %format_args!("invoke_agent {agent}"),
        otel.kind = "internal",
        otel.status_code = Empty,
        gen_ai.operation.name = "invoke_agent",
        gen_ai.agent.name = agent,
        "error.type" = Empty,
        cordon.user_id = Empty,
        cordon.thread_id = Empty,
        cordon.run_id = Empty,
    );
    if span.is_disabled() {
        return span;
    }
    record_ids(&span, ctx.user_id(), ctx.thread_id(), ctx.root_run_id());
    if let Some(parent) = ctx.trace_parent().and_then(remote_parent) {
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(parent));
    }
    span
}

/// The caller's span as OpenTelemetry's, from a checked `traceparent`.
fn remote_parent(parent: &TraceParent) -> Option<SpanContext> {
    let trace_id = TraceId::from_hex(parent.trace_id()).ok()?;
    let span_id = SpanId::from_hex(parent.parent_span_id()).ok()?;
    let flags = if parent.sampled() {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    Some(SpanContext::new(
        trace_id,
        span_id,
        flags,
        true,
        TraceState::default(),
    ))
}

/// Marks a span failed with cordon's error code (`error.type`).
pub(crate) fn record_error(span: &Span, code: ErrorCode) {
    span.record("otel.status_code", "ERROR");
    span.record("error.type", code.as_str());
}

/// One model call: `chat {model}`.
pub(crate) fn chat(
    provider: &str,
    model: &str,
    user_id: &UserId,
    thread_id: &ThreadId,
    run_id: &RunId,
) -> Span {
    let span = tracing::info_span!(
        target: TARGET,
        "chat",
        otel.name = %format_args!("chat {model}"),
        otel.kind = "client",
        otel.status_code = Empty,
        gen_ai.operation.name = "chat",
        gen_ai.provider.name = provider,
        gen_ai.system = provider,
        gen_ai.request.model = model,
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
        "error.type" = Empty,
        cordon.user_id = Empty,
        cordon.thread_id = Empty,
        cordon.run_id = Empty,
    );
    if !span.is_disabled() {
        record_ids(&span, user_id, thread_id, run_id);
    }
    span
}

/// What a model call returned, on its span: tokens, why it stopped, and
/// (only with content on) the conversation sent and the answer.
pub(crate) fn record_chat(
    span: &Span,
    request: &LlmRequest,
    result: &Result<LlmResponse, LlmError>,
) {
    if span.is_disabled() {
        return;
    }
    let response = match result {
        Ok(response) => response,
        Err(error) => return record_error(span, error.code()),
    };
    // As i64: the layer writes a u64 as its text, and the convention asks for an int.
    span.record(
        "gen_ai.usage.input_tokens",
        as_int(response.usage.input_tokens),
    );
    span.record(
        "gen_ai.usage.output_tokens",
        as_int(response.usage.output_tokens),
    );
    // Providers' own stop reasons are not kept; what the step did is.
    let reason = if response.tool_calls.is_empty() {
        "stop"
    } else {
        "tool_calls"
    };
    span.set_attribute(
        "gen_ai.response.finish_reasons",
        Value::Array(Array::String(vec![StringValue::from(reason)])),
    );
    if options().content {
        record_chat_content(span, request, response);
    }
}

fn as_int(tokens: u64) -> i64 {
    i64::try_from(tokens).unwrap_or(i64::MAX)
}

fn record_chat_content(span: &Span, request: &LlmRequest, response: &LlmResponse) {
    let turns = serde_json::to_string(&request.turns).unwrap_or_default();
    span.set_attribute("gen_ai.system_instructions", request.system.clone());
    span.set_attribute("gen_ai.input.messages", turns);
    let output = serde_json::json!([{
        "role": "assistant",
        "text": response.text,
        "tool_calls": response.tool_calls,
    }]);
    span.set_attribute("gen_ai.output.messages", output.to_string());
}

/// One tool call: `execute_tool {tool}`.
pub(crate) fn execute_tool(ctx: &UserExecutionContext, call: &ToolCall) -> Span {
    let span = tracing::info_span!(
        target: TARGET,
        "execute_tool",
        otel.name = %format_args!("execute_tool {}", call.name),
        otel.kind = "internal",
        otel.status_code = Empty,
        gen_ai.operation.name = "execute_tool",
        gen_ai.tool.name = call.name.as_str(),
        gen_ai.tool.call.id = call.id.as_str(),
        "error.type" = Empty,
        cordon.user_id = Empty,
        cordon.thread_id = Empty,
        cordon.run_id = Empty,
    );
    if span.is_disabled() {
        return span;
    }
    record_ids(&span, ctx.user_id(), ctx.thread_id(), ctx.root_run_id());
    if options().content {
        span.set_attribute("gen_ai.tool.call.arguments", call.arguments.to_string());
    }
    span
}

/// A tool call's result: an error result marks the span failed
/// (`error.type = tool_error`); the run goes on either way.
pub(crate) fn record_tool(span: &Span, result: &serde_json::Value, is_error: bool) {
    if span.is_disabled() {
        return;
    }
    if is_error {
        span.record("otel.status_code", "ERROR");
        span.record("error.type", "tool_error");
    }
    if options().content {
        span.set_attribute("gen_ai.tool.call.result", result.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hashed_user_id_is_16_hex_digits_and_stable() {
        let user = UserId::parse("u-1").unwrap_or_else(|error| panic!("{error}"));
        let hashed = hashed_user_id(&user);
        assert_eq!(hashed.len(), 16);
        assert!(hashed.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(hashed, hashed_user_id(&user));
        assert_ne!(hashed, user.as_str());
    }
}
