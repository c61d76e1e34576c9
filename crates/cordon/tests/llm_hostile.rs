//! A broken or hostile model endpoint cannot take the server down, bill a call twice or take the key elsewhere.
#![allow(
    clippy::unwrap_used,
    reason = "a test should panic loudly on a broken assumption"
)]

mod llm_common;

use std::time::Duration;

use cordon_llm::ProviderKind;
use cordon_test_support::fake_llm::{FakeLlm, Reply, StreamPiece, anthropic, openai};
use llm_common::*;
use serde_json::json;

/// The message the run ended with, asserting its code.
fn failure(frames: &[serde_json::Value], code: &str) -> String {
    assert_eq!(error_code(frames), code, "{frames:#?}");
    last(frames)["message"].as_str().unwrap().to_owned()
}

/// The run ended with `code`, and its message says `says`.
fn assert_failed(frames: &[serde_json::Value], code: &str, says: &str) {
    let message = failure(frames, code);
    assert!(message.contains(says), "{message}");
}

#[tokio::test]
async fn an_endless_answer_is_cut_off_with_llm_bad_response_and_the_server_stays_healthy() {
    let (fake, server) = start(ProviderKind::Openai, |_| {}).await;
    let piece = "x".repeat(64 * 1024);
    let mut frames = vec![openai::chunk(json!({"role": "assistant"}), None)];
    frames.extend((0..48).map(|_| openai::chunk(json!({ "content": piece }), None)));
    frames.push(openai::chunk(json!({}), Some("stop")));
    frames.push(openai::done());
    fake.push(Reply::Stream(frames));
    fake.push(openai::text(&["still ", "here"], (3, 2)));
    let (_alice, mut ws) = user(&server, "alice").await;

    let frames = ws.ask("talk forever").await;
    assert_failed(
        &frames,
        "llm_bad_response",
        "more than 2 MiB of answer text",
    );
    assert!(deltas(&frames).len() <= 2 * 1024 * 1024);
    let frames = ws.ask("and now?").await;
    assert_eq!(last(&frames)["answer"], "still here");
    server.stop().await;
}

#[tokio::test]
async fn a_long_answer_within_the_bound_reaches_the_client_whole() {
    let (fake, server) = start(ProviderKind::Openai, |_| {}).await;
    // Control characters are escaped six bytes to one: the frame is far larger than the text.
    let piece = "\u{1}".repeat(64 * 1024);
    let parts: Vec<&str> = (0..24).map(|_| piece.as_str()).collect();
    fake.push(openai::text(&parts, (10, 10)));
    let (_alice, mut ws) = user(&server, "alice").await;
    let frames = ws.ask("a long one, please").await;
    let answer = last(&frames)["answer"].as_str().unwrap_or_default();
    assert!(
        answer.len() == 24 * 64 * 1024,
        "{} bytes arrived",
        answer.len()
    );
    assert!(deltas(&frames) == answer, "the deltas add up to the answer");
    server.stop().await;
}

#[tokio::test]
async fn too_many_tool_calls_or_oversized_arguments_are_refused() {
    let (fake, server) = start(ProviderKind::Openai, |_| {}).await;
    let calls: Vec<_> = (0..65)
        .map(|index| {
            json!({"index": index, "id": format!("call_{index}"), "type": "function",
                   "function": {"name": "calculator", "arguments": "{\"expression\":\"1+1\"}"}})
        })
        .collect();
    fake.push(Reply::Stream(vec![
        openai::chunk(json!({"role": "assistant", "tool_calls": calls}), None),
        openai::chunk(json!({}), Some("tool_calls")),
        openai::done(),
    ]));
    let huge = format!("{{\"expression\": \"{}\"}}", "1+".repeat(600 * 1024));
    let pieces: Vec<&str> = [&huge[..huge.len() / 2], &huge[huge.len() / 2..]].to_vec();
    fake.push(openai::tool_call("call_big", "calculator", &pieces, (5, 5)));
    let (_alice, mut ws) = user(&server, "alice").await;

    let frames = ws.ask("call everything").await;
    assert_failed(&frames, "llm_bad_response", "more than 64 tool calls");
    assert!(!frames.iter().any(|f| f["type"] == "tool_executing"));
    let frames = ws.ask("call with a novel").await;
    assert_failed(
        &frames,
        "llm_bad_response",
        "more than 1 MiB of tool-call arguments",
    );
    server.stop().await;
}

#[tokio::test]
async fn anthropic_replies_are_bounded_too() {
    let (fake, server) = start(ProviderKind::Anthropic, |_| {}).await;
    let piece = "y".repeat(512 * 1024);
    let mut frames = vec![anthropic::message_start(10)];
    frames.extend(anthropic::text_block(
        0,
        &[&piece, &piece, &piece, &piece, &piece],
    ));
    frames.push(anthropic::message_stop());
    fake.push(Reply::Stream(frames));
    let (_alice, mut ws) = user(&server, "alice").await;
    let frames = ws.ask("talk forever").await;
    assert_failed(
        &frames,
        "llm_bad_response",
        "more than 2 MiB of answer text",
    );
    server.stop().await;
}

#[tokio::test]
async fn a_call_that_may_have_reached_the_provider_is_never_retried() {
    let (fake, server) = start(ProviderKind::Openai, |llm| {
        llm.timeout_secs = Some(0.5);
    })
    .await;
    let (_alice, mut ws) = user(&server, "alice").await;

    fake.push(openai::error(504, "upstream timed out", "server_error"));
    let frames = ws.ask("one").await;
    failure(&frames, "llm_unavailable");
    assert_eq!(
        fake.requests().len(),
        1,
        "a gateway timeout may hide a billed answer"
    );

    fake.push(Reply::Delayed(
        Duration::from_secs(2),
        Box::new(openai::text(&["too late"], (1, 1))),
    ));
    let frames = ws.ask("two").await;
    assert_failed(&frames, "llm_unavailable", "no response within 0.5 s");
    assert_eq!(
        fake.requests().len(),
        2,
        "a timed-out call is not sent again"
    );

    fake.push(openai::error(500, "oops", "server_error"));
    fake.push(openai::text(&["fine"], (1, 1)));
    let frames = ws.ask("three").await;
    assert_eq!(
        last(&frames)["answer"],
        "fine",
        "a 500 did no work: retried"
    );
    assert_eq!(fake.requests().len(), 4);
    server.stop().await;
}

#[tokio::test]
async fn the_api_key_never_follows_a_redirect_to_another_host() {
    let (fake, server) = start(ProviderKind::Anthropic, |_| {}).await;
    let elsewhere = FakeLlm::start().await;
    elsewhere.respond_with(|_| anthropic::text(&["stolen"], (1, 1)));
    let (_alice, mut ws) = user(&server, "alice").await;

    let port = elsewhere.addr.port();
    for location in [
        format!("http://localhost:{port}/v1/messages"),
        format!("http://127.0.0.1:{port}/v1/messages"),
    ] {
        fake.push(Reply::Redirect {
            status: 307,
            location,
        });
        let frames = ws.ask("hello").await;
        assert_failed(&frames, "llm_bad_response", "another host");
        assert_no_key(&frames);
    }
    assert!(
        elsewhere.requests().is_empty(),
        "the other host never saw a request, let alone the key"
    );

    fake.push(Reply::Redirect {
        status: 307,
        location: format!("{}/v1/messages", fake.base_url()),
    });
    fake.push(anthropic::text(&["same origin"], (1, 1)));
    let frames = ws.ask("hello again").await;
    assert_eq!(last(&frames)["answer"], "same origin", "{frames:#?}");
    let requests = fake.requests();
    assert_eq!(requests.last().unwrap().headers["x-api-key"], KEY);
    server.stop().await;
}

#[tokio::test]
async fn a_stream_cut_mid_answer_is_a_bad_response_not_a_retry() {
    let (fake, server) = start(ProviderKind::Openai, |_| {}).await;
    fake.push(Reply::Stream(vec![
        openai::chunk(json!({"content": "half an"}), None),
        StreamPiece::Pause(Duration::from_millis(20)),
    ]));
    let (_alice, mut ws) = user(&server, "alice").await;
    let frames = ws.ask("hello").await;
    failure(&frames, "llm_bad_response");
    assert_eq!(fake.requests().len(), 1);
    server.stop().await;
}

#[test]
fn a_real_key_over_plain_http_to_another_machine_is_refused_at_start_up() {
    let data_dir = tempfile::tempdir().unwrap();
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_cordon"))
        .args(["serve", "--addr", "127.0.0.1:0", "--llm", "openai"])
        .args(["--llm-base-url", "http://10.1.2.3:8000/v1"])
        .arg("--data-dir")
        .arg(data_dir.path())
        .env("OPENAI_API_KEY", KEY)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("refusing to send the API key over plain http to 10.1.2.3"),
        "{stderr}"
    );
    assert!(!stderr.contains(KEY), "{stderr}");
}
