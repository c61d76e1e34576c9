//! OpenAI chat-completions chunks exactly as the API streams them, and its error bodies.

use serde_json::{Value, json};

use super::{Reply, StreamPiece};

/// One `chat.completion.chunk` event for choice 0.
pub fn chunk(delta: Value, finish_reason: Option<&str>) -> StreamPiece {
    data(&json!({
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "fake-model",
        "system_fingerprint": "fp_fake",
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}],
    }))
}

/// The final usage chunk (`stream_options.include_usage`): no choices.
pub fn usage(prompt_tokens: u64, completion_tokens: u64) -> StreamPiece {
    data(&json!({
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "fake-model",
        "choices": [],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }))
}

pub fn done() -> StreamPiece {
    StreamPiece::Sse("data: [DONE]\n\n".into())
}

pub fn data(value: &Value) -> StreamPiece {
    StreamPiece::Sse(format!("data: {value}\n\n"))
}

/// A streamed answer: role chunk, one chunk per piece, `stop`, usage, `[DONE]`.
pub fn text(pieces: &[&str], tokens: (u64, u64)) -> Reply {
    let mut frames = vec![chunk(json!({"role": "assistant", "content": ""}), None)];
    frames.extend(pieces.iter().map(|p| chunk(json!({ "content": p }), None)));
    frames.push(chunk(json!({}), Some("stop")));
    frames.push(usage(tokens.0, tokens.1));
    frames.push(done());
    Reply::Stream(frames)
}

/// A streamed tool call whose id and name come first and whose arguments arrive in `argument_pieces`.
pub fn tool_call(id: &str, name: &str, argument_pieces: &[&str], tokens: (u64, u64)) -> Reply {
    let mut frames = vec![chunk(
        json!({"role": "assistant", "content": null, "tool_calls": [
            {"index": 0, "id": id, "type": "function", "function": {"name": name, "arguments": ""}}
        ]}),
        None,
    )];
    frames.extend(argument_pieces.iter().map(|piece| {
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}),
            None,
        )
    }));
    frames.push(chunk(json!({}), Some("tool_calls")));
    frames.push(usage(tokens.0, tokens.1));
    frames.push(done());
    Reply::Stream(frames)
}

/// An error answer with OpenAI's body shape.
pub fn error(status: u16, message: &str, kind: &str) -> Reply {
    Reply::Status {
        status,
        body: json!({"error": {"message": message, "type": kind, "param": null, "code": null}})
            .to_string(),
        retry_after: None,
    }
}

/// `429` with `Retry-After: {seconds}`.
pub fn rate_limited(retry_after: &str) -> Reply {
    Reply::Status {
        status: 429,
        body: json!({"error": {"message": "Rate limit reached for requests", "type": "requests", "param": null, "code": "rate_limit_exceeded"}}).to_string(),
        retry_after: Some(retry_after.to_owned()),
    }
}
