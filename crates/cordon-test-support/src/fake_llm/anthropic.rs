//! Anthropic Messages stream events exactly as the API sends them, and its error bodies.

use serde_json::{Value, json};

use super::{Reply, StreamPiece};

/// One `event: {type}` / `data: {json}` pair.
pub fn event(value: &Value) -> StreamPiece {
    let kind = value["type"].as_str().unwrap_or("message");
    StreamPiece::Sse(format!("event: {kind}\ndata: {value}\n\n"))
}

pub fn message_start(input_tokens: u64) -> StreamPiece {
    event(&json!({"type": "message_start", "message": {
        "id": "msg_fake", "type": "message", "role": "assistant", "content": [],
        "model": "claude-fake", "stop_reason": null, "stop_sequence": null,
        "usage": {"input_tokens": input_tokens, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 1}
    }}))
}

pub fn ping() -> StreamPiece {
    event(&json!({"type": "ping"}))
}

/// A text block: start, one `text_delta` per piece, stop.
pub fn text_block(index: u64, pieces: &[&str]) -> Vec<StreamPiece> {
    let mut frames = vec![event(
        &json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}),
    )];
    frames.extend(pieces.iter().map(|p| {
        event(&json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": p}}))
    }));
    frames.push(event(
        &json!({"type": "content_block_stop", "index": index}),
    ));
    frames
}

/// A tool_use block whose input arrives as `input_json_delta` pieces.
pub fn tool_use_block(index: u64, id: &str, name: &str, json_pieces: &[&str]) -> Vec<StreamPiece> {
    let mut frames = vec![event(
        &json!({"type": "content_block_start", "index": index, "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}}),
    )];
    frames.extend(json_pieces.iter().map(|p| {
        event(&json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": p}}))
    }));
    frames.push(event(
        &json!({"type": "content_block_stop", "index": index}),
    ));
    frames
}

pub fn message_delta(stop_reason: &str, output_tokens: u64) -> StreamPiece {
    event(
        &json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null}, "usage": {"output_tokens": output_tokens}}),
    )
}

pub fn message_stop() -> StreamPiece {
    event(&json!({"type": "message_stop"}))
}

/// A streamed text answer.
pub fn text(pieces: &[&str], tokens: (u64, u64)) -> Reply {
    let mut frames = vec![message_start(tokens.0), ping()];
    frames.extend(text_block(0, pieces));
    frames.push(message_delta("end_turn", tokens.1));
    frames.push(message_stop());
    Reply::Stream(frames)
}

/// A short text block then a tool_use block with split input.
pub fn tool_use(id: &str, name: &str, json_pieces: &[&str], tokens: (u64, u64)) -> Reply {
    let mut frames = vec![message_start(tokens.0)];
    frames.extend(text_block(0, &["Let me ", "check."]));
    frames.extend(tool_use_block(1, id, name, json_pieces));
    frames.push(message_delta("tool_use", tokens.1));
    frames.push(message_stop());
    Reply::Stream(frames)
}

/// An error answer with Anthropic's body shape.
pub fn error(status: u16, kind: &str, message: &str) -> Reply {
    Reply::Status {
        status,
        body: json!({"type": "error", "error": {"type": kind, "message": message}}).to_string(),
        retry_after: None,
    }
}

/// `429 rate_limit_error` with `retry-after`.
pub fn rate_limited(retry_after: &str) -> Reply {
    Reply::Status {
        status: 429,
        body: json!({"type": "error", "error": {"type": "rate_limit_error", "message": "Number of request tokens has exceeded your per-minute rate limit"}}).to_string(),
        retry_after: Some(retry_after.to_owned()),
    }
}
