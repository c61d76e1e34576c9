//! Every example in docs/protocol.md parses into the protocol types, and every frame type has an example.
#![allow(
    clippy::unwrap_used,
    reason = "a test should panic loudly on a broken assumption"
)]

use std::collections::BTreeSet;

use cordon_protocol::rest::{AcceptedView, ApiErrorResponse, ApprovalView, CancelView};
use cordon_protocol::{ClientFrame, ServerFrame};

const DOC: &str = include_str!("../../../docs/protocol.md");

/// The JSON code blocks tagged `client`, `server` or `rest <body>`.
fn examples(direction: &str) -> Vec<String> {
    let fence = format!("```json {direction}\n");
    DOC.split(fence.as_str())
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap().trim().to_owned())
        .collect()
}

#[test]
fn client_examples_parse_and_cover_every_client_frame() {
    let mut seen = BTreeSet::new();
    for example in examples("client") {
        let frame: ClientFrame =
            serde_json::from_str(&example).unwrap_or_else(|e| panic!("{example}: {e}"));
        let value: serde_json::Value = serde_json::from_str(&example).unwrap();
        seen.insert(value["type"].as_str().unwrap().to_owned());
        let _ = frame;
    }
    let expected: BTreeSet<String> = [
        "user_message",
        "resume",
        "cancel",
        "approve",
        "reject",
        "ping",
        "pong",
    ]
    .map(String::from)
    .into();
    assert_eq!(seen, expected);
}

#[test]
fn server_examples_parse_round_trip_and_cover_every_server_frame() {
    let mut seen = BTreeSet::new();
    for example in examples("server") {
        let frame: ServerFrame =
            serde_json::from_str(&example).unwrap_or_else(|e| panic!("{example}: {e}"));
        let reparsed: ServerFrame =
            serde_json::from_str(&serde_json::to_string(&frame).unwrap()).unwrap();
        assert_eq!(frame, reparsed);
        seen.insert(frame.type_name());
    }
    let expected: BTreeSet<&str> = [
        "connection_established",
        "thread_created",
        "run_queued",
        "agent_started",
        "agent_thinking",
        "agent_delta",
        "tool_executing",
        "tool_completed",
        "approval_required",
        "approval_resolved",
        "agent_completed",
        "agent_error",
        "error",
        "ping",
        "pong",
    ]
    .into();
    assert_eq!(seen, expected);
}

#[test]
fn rest_examples_parse_into_their_bodies() {
    let accepted = examples("rest accepted");
    let errors = examples("rest error");
    let cancels = examples("rest cancel");
    assert!(!accepted.is_empty() && !errors.is_empty() && !cancels.is_empty());
    for example in &accepted {
        let _: AcceptedView =
            serde_json::from_str(example).unwrap_or_else(|e| panic!("{example}: {e}"));
    }
    for example in &errors {
        let _: ApiErrorResponse =
            serde_json::from_str(example).unwrap_or_else(|e| panic!("{example}: {e}"));
    }
    for example in &cancels {
        let _: CancelView =
            serde_json::from_str(example).unwrap_or_else(|e| panic!("{example}: {e}"));
    }
    let approvals = examples("rest approval");
    assert!(!approvals.is_empty());
    for example in &approvals {
        let _: ApprovalView =
            serde_json::from_str(example).unwrap_or_else(|e| panic!("{example}: {e}"));
    }
}

/// The adapters' examples are real streams: every `data:` line is a JSON
/// object with a `type` (or the AI SDK's closing `[DONE]`), and the ids
/// never go down.
#[test]
fn standard_stream_examples_are_well_formed_sse() {
    let blocks: Vec<&str> = DOC
        .split("### Vercel AI SDK UI message stream")
        .nth(1)
        .unwrap()
        .split("```text\n")
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap())
        .take(2)
        .collect();
    assert_eq!(blocks.len(), 2);
    for block in blocks {
        let mut last_id = 0;
        for line in block.lines() {
            if let Some(data) = line.strip_prefix("data: ") {
                if data == "[DONE]" {
                    continue;
                }
                let value: serde_json::Value =
                    serde_json::from_str(data).unwrap_or_else(|e| panic!("{data}: {e}"));
                assert!(value["type"].is_string(), "{data}");
            } else if let Some(id) = line.strip_prefix("id: ") {
                let id: u64 = id.parse().unwrap();
                assert!(id > last_id, "{block}");
                last_id = id;
            } else {
                assert!(line.is_empty(), "unexpected line {line}");
            }
        }
    }
}
