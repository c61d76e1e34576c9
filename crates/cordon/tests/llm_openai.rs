//! The OpenAI-compatible provider end to end: a real cordon calling a faithful fake of `/v1/chat/completions` over loopback.
#![allow(
    clippy::unwrap_used,
    reason = "a test should panic loudly on a broken assumption"
)]

mod llm_common;

use std::time::Duration;

use cordon_llm::ProviderKind;
use cordon_test_support::fake_llm::{Reply, StreamPiece, openai, pieces};
use cordon_test_support::is_terminal;
use llm_common::*;
use serde_json::{Value, json};

const PROVIDER: ProviderKind = ProviderKind::Openai;

/// A text answer whose pieces arrive `gap` apart.
fn slow_text(parts: &[&str], gap: Duration) -> Reply {
    let mut frames = vec![openai::chunk(
        json!({"role": "assistant", "content": ""}),
        None,
    )];
    for part in parts {
        frames.push(openai::chunk(json!({ "content": part }), None));
        frames.push(StreamPiece::Pause(gap));
    }
    frames.push(openai::chunk(json!({}), Some("stop")));
    frames.push(openai::usage(100, 20));
    frames.push(openai::done());
    Reply::Stream(frames)
}

#[tokio::test]
async fn answer_tokens_stream_as_agent_delta_in_order_and_usage_is_priced() {
    let (fake, server) = start(PROVIDER, |_| {}).await;
    fake.push(slow_text(
        &["The ", "answer ", "is ", "42."],
        Duration::from_millis(30),
    ));
    let (alice, mut ws) = user(&server, "alice").await;

    let frames = ws.ask("What is the answer?").await;
    assert_eq!(last(&frames)["type"], "agent_completed", "{frames:#?}");
    assert_eq!(last(&frames)["answer"], "The answer is 42.");
    assert_eq!(deltas(&frames), "The answer is 42.");
    let delta_frames: Vec<&Value> = frames
        .iter()
        .filter(|f| f["type"] == "agent_delta")
        .collect();
    assert!(
        delta_frames.len() >= 2,
        "pieces 30 ms apart are separate frames"
    );
    assert!(delta_frames.iter().all(|f| f["agent"] == "assistant"));
    let seqs: Vec<u64> = frames[1..]
        .iter()
        .map(|f| f["seq"].as_u64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");

    let request = &fake.requests()[0];
    assert_eq!(request.path, "/v1/chat/completions");
    assert_eq!(request.headers["authorization"], format!("Bearer {KEY}"));
    assert_eq!(request.body["model"], "gpt-4o-mini");
    assert_eq!(request.body["stream"], true);
    assert_eq!(request.body["stream_options"]["include_usage"], true);
    assert_eq!(request.body["messages"][0]["role"], "system");
    let last_message = request.body["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        last_message,
        json!({"role": "user", "content": "What is the answer?"})
    );
    let tools: Vec<&str> = request.body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert!(tools.contains(&"calculator") && tools.contains(&"search_history"));
    assert_eq!(
        request.body["tools"][0]["function"]["parameters"]["type"],
        "object"
    );

    let run_id = frames[1]["run_id"].as_str().unwrap();
    let (status, run) = server
        .get_json(&alice, &format!("/api/runs/{run_id}"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(run["usage"]["model"], "gpt-4o-mini");
    assert_eq!(run["usage"]["calls"], 1);
    assert_eq!(run["usage"]["input_tokens"], 100);
    assert_eq!(run["usage"]["output_tokens"], 20);
    let cost = run["usage"]["cost_usd"].as_f64().unwrap();
    let expected = (100.0 * 0.15 + 20.0 * 0.60) / 1e6;
    assert!((cost - expected).abs() < 1e-12, "{cost} vs {expected}");

    let (_, stored) = server
        .get_json(&alice, &format!("/api/runs/{run_id}/events"))
        .await;
    assert_eq!(
        stored.as_array().unwrap(),
        &frames[..],
        "deltas are stored too"
    );
    assert_no_key(&frames);
    server.stop().await;
}

#[tokio::test]
async fn tool_calls_split_across_chunks_run_the_tool_then_the_model_answers() {
    let (fake, server) = start(PROVIDER, |_| {}).await;
    fake.push(openai::tool_call(
        "call_abc",
        "calculator",
        &["{\"expr", "ession\": \"(2 + ", "3) * 4\"}"],
        (50, 10),
    ));
    fake.push(openai::text(&["(2 + 3) * 4 ", "= 20."], (80, 8)));
    let (alice, mut ws) = user(&server, "alice").await;

    let frames = ws.ask("What is (2 + 3) * 4?").await;
    assert_eq!(
        types(&frames),
        [
            "thread_created",
            "agent_started",
            "agent_thinking",
            "agent_thinking",
            "tool_executing",
            "tool_completed",
            "agent_delta",
            "agent_completed"
        ],
        "{frames:#?}"
    );
    assert_eq!(frames[3]["text"], "Calling the calculator tool.");
    assert_eq!(frames[4]["call_id"], "call_abc");
    assert_eq!(frames[4]["arguments"], json!({"expression": "(2 + 3) * 4"}));
    assert_eq!(frames[5]["result"]["value"], 20);
    assert_eq!(deltas(&frames), "(2 + 3) * 4 = 20.");
    assert_eq!(last(&frames)["answer"], "(2 + 3) * 4 = 20.");

    let second = &fake.requests()[1].body["messages"];
    let messages = second.as_array().unwrap();
    let assistant = &messages[messages.len() - 2];
    assert_eq!(assistant["role"], "assistant");
    assert_eq!(assistant["tool_calls"][0]["id"], "call_abc");
    assert_eq!(
        assistant["tool_calls"][0]["function"]["arguments"],
        json!({"expression": "(2 + 3) * 4"}).to_string()
    );
    let tool = &messages[messages.len() - 1];
    assert_eq!(tool["role"], "tool");
    assert_eq!(tool["tool_call_id"], "call_abc");
    assert!(tool["content"].as_str().unwrap().contains("20"));

    let run_id = frames[1]["run_id"].as_str().unwrap();
    let (_, run) = server
        .get_json(&alice, &format!("/api/runs/{run_id}"))
        .await;
    assert_eq!(run["usage"]["calls"], 2);
    assert_eq!(run["usage"]["input_tokens"], 130);
    assert_eq!(run["usage"]["output_tokens"], 18);
    let (status, usage) = server.get_json(&alice, "/api/usage").await;
    assert_eq!(status, 200);
    assert_eq!(usage["runs"], 1);
    assert_eq!(usage["input_tokens"], 130);
    assert_eq!(usage["by_model"][0]["model"], "gpt-4o-mini");
    server.stop().await;
}

#[tokio::test]
async fn a_model_that_never_stops_calling_tools_hits_the_step_limit() {
    let (fake, server) = start(PROVIDER, |llm| llm.max_steps = Some(3)).await;
    fake.respond_with(|_| {
        openai::tool_call(
            "call_x",
            "calculator",
            &["{\"expression\": \"1+1\"}"],
            (10, 5),
        )
    });
    let (alice, mut ws) = user(&server, "alice").await;
    let frames = ws.ask("loop forever").await;
    assert_eq!(error_code(&frames), "step_limit");
    assert_eq!(fake.requests().len(), 3);
    let tool_runs = frames
        .iter()
        .filter(|f| f["type"] == "tool_completed")
        .count();
    assert_eq!(tool_runs, 3);
    let run_id = frames[1]["run_id"].as_str().unwrap();
    let (_, run) = server
        .get_json(&alice, &format!("/api/runs/{run_id}"))
        .await;
    assert_eq!(run["status"], "failed");
    assert_eq!(run["usage"]["calls"], 3, "failed runs keep their usage");
    server.stop().await;
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried_honouring_retry_after() {
    let (fake, server) = start(PROVIDER, |_| {}).await;
    fake.push(openai::rate_limited("1"));
    fake.push(openai::error(503, "overloaded", "server_error"));
    fake.push(openai::text(&["fine"], (5, 1)));
    let (_alice, mut ws) = user(&server, "alice").await;
    let frames = ws.ask("hello").await;
    assert_eq!(last(&frames)["answer"], "fine", "{frames:#?}");
    let requests = fake.requests();
    assert_eq!(requests.len(), 3);
    let waited = requests[1].at - requests[0].at;
    assert!(
        waited >= Duration::from_millis(950),
        "Retry-After: 1 was honoured ({waited:?})"
    );
    assert!(
        requests[2].at - requests[1].at < Duration::from_millis(500),
        "backoff is short"
    );
    server.stop().await;
}

#[tokio::test]
async fn provider_errors_end_the_run_with_clear_codes_and_never_leak_the_key() {
    let (fake, server) = start(PROVIDER, |_| {}).await;
    let (_alice, mut ws) = user(&server, "alice").await;

    fake.require_key("some-other-key");
    let frames = ws.ask("one").await;
    assert_eq!(error_code(&frames), "llm_auth");
    assert_eq!(fake.requests().len(), 1, "401 is not retried");
    assert_no_key(&frames);
    fake.require_key(KEY);

    fake.push(openai::error(
        400,
        &format!("model `nope` does not exist (you sent {KEY})"),
        "invalid_request_error",
    ));
    let frames = ws.ask("two").await;
    assert_eq!(error_code(&frames), "llm_bad_request");
    assert!(
        last(&frames)["message"]
            .as_str()
            .unwrap()
            .contains("does not exist")
    );
    assert_no_key(&frames);

    let before = fake.requests().len();
    fake.respond_with(|_| openai::error(503, "overloaded", "server_error"));
    let frames = ws.ask("three").await;
    assert_eq!(error_code(&frames), "llm_unavailable");
    assert_eq!(
        fake.requests().len() - before,
        3,
        "first try and two retries"
    );

    fake.respond_with(|_| openai::rate_limited("0"));
    let frames = ws.ask("four").await;
    assert_eq!(error_code(&frames), "llm_rate_limited");
    server.stop().await;
}

#[tokio::test]
async fn cancelling_a_run_mid_stream_closes_the_provider_connection() {
    let (fake, server) = start(PROVIDER, |_| {}).await;
    fake.push(Reply::Stream(vec![
        openai::chunk(json!({"role": "assistant", "content": ""}), None),
        openai::chunk(json!({"content": "Once upon a time"}), None),
        StreamPiece::Pause(Duration::from_secs(20)),
        openai::chunk(json!({"content": " never sent"}), None),
    ]));
    let (_alice, mut ws) = user(&server, "alice").await;
    ws.send_json(&json!({"type": "user_message", "content": "tell a long story"}))
        .await;
    let started = ws.collect_until(|f| f["type"] == "agent_delta").await;
    assert_eq!(last(&started)["text"], "Once upon a time");
    let run_id = started[1]["run_id"].as_str().unwrap().to_owned();
    ws.send_json(&json!({"type": "cancel", "run_id": run_id}))
        .await;
    let rest = ws.collect_until(is_terminal).await;
    assert_eq!(error_code(&rest), "cancelled");
    assert!(
        fake.wait_disconnect(Duration::from_secs(2)).await,
        "the provider saw the stream closed"
    );
    assert_eq!(fake.completed_streams(), 0);
    server.stop().await;
}

#[tokio::test]
async fn malformed_chunks_end_the_run_with_llm_bad_response_and_the_server_stays_healthy() {
    let (fake, server) = start(PROVIDER, |_| {}).await;
    fake.push(Reply::Stream(vec![
        openai::chunk(json!({"content": "Hi"}), None),
        StreamPiece::Sse("data: {\"choices\": [{\"delta\": \n\n".into()),
    ]));
    fake.push(Reply::Stream(vec![openai::chunk(
        json!({"content": "cut short"}),
        None,
    )]));
    fake.push(openai::text(&["still ", "here"], (3, 2)));
    let (_alice, mut ws) = user(&server, "alice").await;

    let frames = ws.ask("one").await;
    assert_eq!(error_code(&frames), "llm_bad_response");
    assert!(
        last(&frames)["message"]
            .as_str()
            .unwrap()
            .contains("unreadable")
    );
    let frames = ws.ask("two").await;
    assert_eq!(
        error_code(&frames),
        "llm_bad_response",
        "a stream without an end is an error"
    );
    let frames = ws.ask("three").await;
    assert_eq!(last(&frames)["answer"], "still here");
    server.stop().await;
}

/// Echoes the last user message back, a few characters per chunk with pauses.
fn echo(request: &cordon_test_support::fake_llm::RecordedRequest) -> Reply {
    let messages = request.body["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let question = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_owned();
    let mut frames = Vec::new();
    for piece in pieces(&format!("echo: {question}"), 4) {
        frames.push(openai::chunk(json!({ "content": piece }), None));
        frames.push(StreamPiece::Pause(Duration::from_millis(3)));
    }
    frames.push(openai::chunk(json!({}), Some("stop")));
    frames.push(openai::done());
    Reply::Stream(frames)
}

#[tokio::test]
async fn two_users_streaming_at_once_never_see_each_others_deltas() {
    let (fake, server) = start(PROVIDER, |_| {}).await;
    fake.respond_with(echo);
    let (_alice, alice_ws) = user(&server, "alice").await;
    let (_bob, bob_ws) = user(&server, "bob").await;

    let talk = |mut ws: cordon_test_support::WsClient, who: &'static str| async move {
        for round in 0..4 {
            let question = format!("{who} asks question number {round} about {who}'s things");
            let frames = ws.ask(&question).await;
            let run_id = frames[1]["run_id"].as_str().unwrap().to_owned();
            for frame in &frames[1..] {
                assert_eq!(
                    frame["run_id"],
                    run_id.as_str(),
                    "{who} saw a foreign event"
                );
            }
            assert_eq!(deltas(&frames), format!("echo: {question}"));
            assert_eq!(last(&frames)["answer"], format!("echo: {question}"));
        }
    };
    tokio::join!(talk(alice_ws, "alice"), talk(bob_ws, "bob"));
    assert_eq!(fake.requests().len(), 8);
    server.stop().await;
}
