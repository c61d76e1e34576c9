//! Parsing client frames into `ClientFrame`, with a specific error code for each way a frame can be wrong.

use cordon_protocol::ClientFrame;
use cordon_protocol::ws::MAX_CLIENT_FRAME_BYTES;
use serde_json::Value;

/// Why a client frame was refused: the code and message of the `error` frame sent back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    pub code: &'static str,
    pub message: String,
}

impl FrameError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

const KNOWN_TYPES: &[&str] = &[
    "user_message",
    "cancel",
    "approve",
    "reject",
    "resume",
    "ping",
    "pong",
];

/// Parses one text frame.
pub fn parse(text: &str) -> Result<ClientFrame, FrameError> {
    if text.len() > MAX_CLIENT_FRAME_BYTES {
        return Err(FrameError::new(
            "frame_too_large",
            format!("frames are limited to {MAX_CLIENT_FRAME_BYTES} bytes"),
        ));
    }
    let value: Value = serde_json::from_str(text).map_err(|error| {
        FrameError::new(
            "invalid_json",
            format!("the frame is not valid JSON: {error}"),
        )
    })?;
    let kind = value
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| FrameError::new("missing_type", "the frame has no string `type` field"))?
        .to_owned();
    if !KNOWN_TYPES.contains(&kind.as_str()) {
        return Err(FrameError::new(
            "unknown_type",
            format!(
                "unknown frame type `{}`",
                cordon_core::text::truncate_chars(&kind, 40)
            ),
        ));
    }
    serde_json::from_value(value).map_err(|error| {
        FrameError::new("invalid_frame", format!("invalid `{kind}` frame: {error}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_bad_frame_has_its_own_code() {
        assert_eq!(parse("{nope").unwrap_err().code, "invalid_json");
        assert_eq!(parse("{}").unwrap_err().code, "missing_type");
        assert_eq!(
            parse(r#"{"type":"launch"}"#).unwrap_err().code,
            "unknown_type"
        );
        assert_eq!(
            parse(r#"{"type":"user_message"}"#).unwrap_err().code,
            "invalid_frame"
        );
        assert_eq!(
            parse(r#"{"type":"cancel","run_id":5}"#).unwrap_err().code,
            "invalid_frame"
        );
        assert_eq!(
            parse(&" ".repeat(MAX_CLIENT_FRAME_BYTES + 1))
                .unwrap_err()
                .code,
            "frame_too_large"
        );
    }

    #[test]
    fn good_frames_parse() {
        assert_eq!(parse(r#"{"type":"ping"}"#), Ok(ClientFrame::Ping {}));
        assert_eq!(
            parse(r#"{"type":"user_message","content":"hi"}"#),
            Ok(ClientFrame::UserMessage {
                thread_id: None,
                content: "hi".into(),
                client_request_id: None,
                multitask: None,
            })
        );
    }
}
