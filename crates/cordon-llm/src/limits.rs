//! Bounds on what one model reply may accumulate, so a broken or hostile provider cannot grow a run's memory without limit.
//!
//! A reply past a bound ends the call with `LlmError::Malformed` (code
//! `llm_bad_response`); docs/llm.md lists the bounds.

use cordon_core::LlmError;

/// Answer text of one reply. Far above any model's output limit (128k tokens is about 512 KiB).
pub const MAX_TEXT_BYTES: usize = 2 * 1024 * 1024;
/// Reasoning text of one reply.
pub const MAX_THINKING_BYTES: usize = 2 * 1024 * 1024;
/// The JSON arguments of one tool call.
pub const MAX_ARGUMENT_BYTES: usize = 1024 * 1024;
/// Tool calls in one reply.
pub const MAX_TOOL_CALLS: usize = 64;
/// Content blocks (text, thinking, tool use, ...) in one Anthropic reply.
pub const MAX_BLOCKS: usize = 256;

/// Appends `piece` to `buffer`, refusing to let it grow past `limit` bytes.
pub fn append(buffer: &mut String, piece: &str, limit: usize, what: &str) -> Result<(), LlmError> {
    if buffer.len().saturating_add(piece.len()) > limit {
        return Err(LlmError::Malformed(format!(
            "the provider sent more than {} of {what} in one reply",
            human_bytes(limit)
        )));
    }
    buffer.push_str(piece);
    Ok(())
}

/// Refuses a reply that opens its `count`-th item of a kind bounded by `limit`.
pub fn check_count(count: usize, limit: usize, what: &str) -> Result<(), LlmError> {
    if count > limit {
        return Err(LlmError::Malformed(format!(
            "the provider sent more than {limit} {what} in one reply"
        )));
    }
    Ok(())
}

fn human_bytes(bytes: usize) -> String {
    if bytes >= 1024 * 1024 && bytes.is_multiple_of(1024 * 1024) {
        format!("{} MiB", bytes / (1024 * 1024))
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests panic on a broken assumption")]
    use super::*;

    #[test]
    fn a_buffer_never_grows_past_its_limit() {
        let mut text = String::new();
        assert!(append(&mut text, "abcd", 6, "answer text").is_ok());
        let error = append(&mut text, "efg", 6, "answer text").unwrap_err();
        assert_eq!(text, "abcd", "the refused piece is not kept");
        assert!(
            error
                .to_string()
                .contains("more than 6 bytes of answer text")
        );
        assert!(append(&mut text, "ef", 6, "answer text").is_ok());
    }

    #[test]
    fn counts_are_refused_only_past_the_limit() {
        assert!(check_count(64, 64, "tool calls").is_ok());
        assert!(check_count(65, 64, "tool calls").is_err());
    }
}
