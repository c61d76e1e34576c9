//! The Anthropic provider end to end: a real cordon calling a faithful fake of `/v1/messages` over loopback.
#![allow(
    clippy::unwrap_used,
    reason = "a test should panic loudly on a broken assumption"
)]

mod llm_common;

use std::time::{Duration, Instant};

use cordon_llm::ProviderKind;
use cordon_test_support::fake_llm::{Reply, StreamPiece, anthropic};
use cordon_test_support::is_terminal;
use llm_common::*;
use serde_json::json;

const PROVIDER: ProviderKind = ProviderKind::Anthropic;

#[tokio::test]
async fn text_deltas_stream_in_order_with_usage_from_start_and_delta_events() {
    let (fake, server) = start(PROVIDER, |_| {}).await;
    let mut frames = vec![anthropic::message_start(120), anthropic::ping()];
    let mut block = anthropic::text_block(0, &["Hello", ", ", "world", "!"]);
    block.insert(3, StreamPiece::Pause(Duration::from_millis(30)));
    frames.extend(block);
    frames.push(anthropic::message_delta("end_turn", 9));
    frames.push(anthropic::message_stop());
    fake.push(Reply::Stream(frames));
    let (alice, mut ws) = user(&server, "alice").await;

    let frames = ws.ask("Say hello").await;
    assert_eq!(last(&frames)["answer"], "Hello, world!", "{frames:#?}");
    assert_eq!(deltas(&frames), "Hello, world!");
    assert!(frames.iter().filter(|f| f["type"] == "agent_delta").count() >= 2);

    let request = &fake.requests()[0];
    assert_eq!(request.path, "/v1/messages");
    assert_eq!(request.headers["x-api-key"], KEY);
    assert_eq!(request.headers["anthropic-version"], "2023-06-01");
    assert_eq!(request.body["model"], "claude-3-5-haiku-latest");
    assert_eq!(request.body["stream"], true);
    assert_eq!(request.body["max_tokens"], 1024);
    assert!(
        request.body["system"]
            .as_str()
            .unwrap()
            .contains("assistant")
    );
    assert_eq!(
        request.body["messages"],
        json!([{"role": "user", "content": [{"type": "text", "text": "Say hello"}]}])
    );
    assert_eq!(request.body["tools"][0]["input_schema"]["type"], "object");

    let run_id = frames[1]["run_id"].as_str().unwrap();
    let (_, run) = server
        .get_json(&alice, &format!("/api/runs/{run_id}"))
        .await;
    assert_eq!(run["usage"]["model"], "claude-3-5-haiku-latest");
    assert_eq!(run["usage"]["input_tokens"], 120);
    assert_eq!(run["usage"]["output_tokens"], 9);
    let expected = (120.0 * 0.80 + 9.0 * 4.00) / 1e6;
    assert!((run["usage"]["cost_usd"].as_f64().unwrap() - expected).abs() < 1e-12);
    assert_no_key(&frames);
    server.stop().await;
}

#[tokio::test]
async fn tool_use_runs_the_tool_and_interim_text_is_reported_as_thinking() {
    let (fake, server) = start(PROVIDER, |_| {}).await;
    fake.push(anthropic::tool_use(
        "toolu_01",
        "calculator",
        &["{\"expression\":", " \"6 * 7\"}"],
        (40, 12),
    ));
    fake.push(anthropic::text(&["6 * 7 = ", "42."], (90, 6)));
    let (alice, mut ws) = user(&server, "alice").await;

    let frames = ws.ask("What is 6 * 7?").await;
    assert_eq!(
        types(&frames),
        [
            "thread_created",
            "agent_started",
            "agent_thinking",
            "agent_delta",
            "agent_thinking",
            "tool_executing",
            "tool_completed",
            "agent_delta",
            "agent_completed"
        ],
        "{frames:#?}"
    );
    assert_eq!(frames[3]["text"], "Let me check.");
    assert_eq!(
        frames[4]["text"], "Let me check.",
        "interim text is thinking"
    );
    assert_eq!(frames[5]["call_id"], "toolu_01");
    assert_eq!(frames[5]["arguments"], json!({"expression": "6 * 7"}));
    assert_eq!(frames[6]["result"]["value"], 42);
    assert_eq!(last(&frames)["answer"], "6 * 7 = 42.");

    let messages = fake.requests()[1].body["messages"].clone();
    assert_eq!(messages[1]["role"], "assistant");
    assert_eq!(
        messages[1]["content"][0],
        json!({"type": "text", "text": "Let me check."})
    );
    assert_eq!(messages[1]["content"][1]["type"], "tool_use");
    assert_eq!(
        messages[1]["content"][1]["input"],
        json!({"expression": "6 * 7"})
    );
    assert_eq!(messages[2]["role"], "user");
    assert_eq!(messages[2]["content"][0]["type"], "tool_result");
    assert_eq!(messages[2]["content"][0]["tool_use_id"], "toolu_01");

    let (_, usage) = server.get_json(&alice, "/api/usage").await;
    assert_eq!(usage["runs"], 1);
    assert_eq!(usage["calls"], 2);
    assert_eq!(usage["input_tokens"], 130);
    assert_eq!(usage["output_tokens"], 18);
    server.stop().await;
}

#[tokio::test]
async fn step_limit_applies_to_tool_use_loops() {
    let (fake, server) = start(PROVIDER, |llm| llm.max_steps = Some(2)).await;
    fake.respond_with(|_| {
        anthropic::tool_use(
            "toolu_x",
            "calculator",
            &["{\"expression\": \"1+1\"}"],
            (5, 5),
        )
    });
    let (_alice, mut ws) = user(&server, "alice").await;
    let frames = ws.ask("loop").await;
    assert_eq!(error_code(&frames), "step_limit");
    assert_eq!(fake.requests().len(), 2);
    server.stop().await;
}

#[tokio::test]
async fn rate_limits_and_overload_are_retried_then_errors_map_to_codes() {
    let (fake, server) = start(PROVIDER, |_| {}).await;
    let (_alice, mut ws) = user(&server, "alice").await;

    fake.push(anthropic::rate_limited("1"));
    fake.push(anthropic::error(529, "overloaded_error", "Overloaded"));
    fake.push(anthropic::text(&["ok"], (1, 1)));
    let frames = ws.ask("one").await;
    assert_eq!(last(&frames)["answer"], "ok", "{frames:#?}");
    let requests = fake.requests();
    assert!(requests[1].at - requests[0].at >= Duration::from_millis(950));

    fake.push(anthropic::error(
        401,
        "authentication_error",
        &format!("invalid x-api-key {KEY}"),
    ));
    let frames = ws.ask("two").await;
    assert_eq!(error_code(&frames), "llm_auth");
    assert_no_key(&frames);

    fake.push(anthropic::error(
        400,
        "invalid_request_error",
        "max_tokens: must be positive",
    ));
    let frames = ws.ask("three").await;
    assert_eq!(error_code(&frames), "llm_bad_request");
    assert!(
        last(&frames)["message"]
            .as_str()
            .unwrap()
            .contains("max_tokens")
    );

    fake.respond_with(|_| anthropic::error(500, "api_error", "Internal server error"));
    let frames = ws.ask("four").await;
    assert_eq!(error_code(&frames), "llm_unavailable");
    server.stop().await;
}

#[tokio::test]
async fn errors_and_garbage_inside_the_stream_end_the_run_cleanly() {
    let (fake, server) = start(PROVIDER, |_| {}).await;
    let (_alice, mut ws) = user(&server, "alice").await;

    fake.push(Reply::Stream(vec![
        anthropic::message_start(3),
        anthropic::event(&json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})),
    ]));
    let frames = ws.ask("one").await;
    assert_eq!(error_code(&frames), "llm_unavailable");

    fake.push(Reply::Stream(vec![
        anthropic::message_start(3),
        StreamPiece::Sse(
            "event: content_block_delta\ndata: {\"type\": \"content_block_delta\", \"index\"\n\n"
                .into(),
        ),
    ]));
    let frames = ws.ask("two").await;
    assert_eq!(error_code(&frames), "llm_bad_response");

    fake.push(anthropic::text(&["recovered"], (1, 1)));
    let frames = ws.ask("three").await;
    assert_eq!(last(&frames)["answer"], "recovered");
    server.stop().await;
}

#[tokio::test]
async fn cancel_mid_stream_closes_the_provider_stream_and_keeps_the_partial_answer_and_usage() {
    let (fake, server) = start(PROVIDER, |_| {}).await;
    let mut frames = vec![anthropic::message_start(37)];
    frames.extend(anthropic::text_block(0, &["Chapter one: ", "it was dark"]));
    frames.insert(4, StreamPiece::Pause(Duration::from_secs(20)));
    fake.push(Reply::Stream(frames));
    let (alice, mut ws) = user(&server, "alice").await;
    ws.send_json(&json!({"type": "user_message", "content": "a long story"}))
        .await;
    let streamed = ws
        .collect_until(|f| deltas(std::slice::from_ref(f)).contains("dark"))
        .await;
    let run_id = streamed.last().unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let thread_id = streamed.last().unwrap()["thread_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let cancelled_at = Instant::now();
    ws.send_json(&json!({"type": "cancel", "run_id": run_id}))
        .await;
    let rest = ws.collect_until(is_terminal).await;
    assert_eq!(error_code(&rest), "cancelled");
    assert!(fake.wait_disconnect(Duration::from_secs(2)).await);
    let closed_after = fake.disconnected_at().unwrap() - cancelled_at;
    assert!(
        closed_after < Duration::from_millis(100),
        "the provider's stream closed {closed_after:?} after the cancel"
    );

    let (_, run) = server
        .get_json(&alice, &format!("/api/runs/{run_id}"))
        .await;
    assert_eq!(run["status"], "cancelled");
    assert_eq!(
        run["usage"]["calls"], 1,
        "the cancelled call is metered: {run}"
    );
    assert_eq!(run["usage"]["input_tokens"], 37, "{run}");
    let (_, messages) = server
        .get_json(&alice, &format!("/api/threads/{thread_id}/messages"))
        .await;
    let answer = messages.as_array().unwrap().last().unwrap();
    assert_eq!(answer["role"], "assistant");
    assert_eq!(
        answer["content"], "Chapter one: it was dark",
        "the streamed text is kept"
    );
    server.stop().await;
}
