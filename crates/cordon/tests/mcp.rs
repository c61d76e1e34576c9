//! MCP tool servers, through real ones: the reference `server-everything` over stdio and a Python SDK server over streamable HTTP, called by the fake OpenAI-compatible provider's tool calls.
#![allow(
    clippy::unwrap_used,
    reason = "a test should panic loudly on a broken assumption"
)]

mod llm_common;

use std::time::{Duration, Instant};

use cordon_llm::ProviderKind;
use cordon_mcp::McpServer;
use cordon_test_support::TestServer;
use cordon_test_support::fake_llm::{FakeLlm, RecordedRequest, openai};
use cordon_test_support::mcp::{McpFixtures, pids_marked};
use llm_common::*;
use serde_json::{Value, json};

async fn start_with(servers: Vec<McpServer>) -> (FakeLlm, TestServer) {
    start_serving(
        ProviderKind::Openai,
        |_| {},
        |config| {
            config.mcp_servers = servers;
        },
    )
    .await
}

/// The tool names a model request offered, as sent on the wire.
fn offered(request: &RecordedRequest) -> Vec<String> {
    request.body["tools"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|tool| tool["function"]["name"].as_str().unwrap().to_owned())
        .collect()
}

fn of_type<'a>(frames: &'a [Value], kind: &str) -> Vec<&'a Value> {
    frames.iter().filter(|f| f["type"] == kind).collect()
}

fn call(id: &str, tool: &str, arguments: &Value) -> cordon_test_support::fake_llm::Reply {
    openai::tool_call(id, tool, &[&arguments.to_string()], (5, 5))
}

/// Tells this test's server processes from the other tests'.
fn marker() -> String {
    format!("mcp-test-{:x}", rand::random::<u128>())
}

#[tokio::test]
async fn mcp_tools_are_offered_with_their_server_prefix_and_called() {
    let Some(fixtures) = McpFixtures::find() else {
        return;
    };
    let recorder = fixtures.recorder().await;
    let (fake, server) = start_with(vec![
        fixtures.everything("everything", &marker()),
        recorder.server(
            "recorder",
            &[("Authorization", "Bearer operator-token")],
            10.0,
        ),
    ])
    .await;
    fake.push(call(
        "c1",
        "everything__echo",
        &json!({"message": "hello mcp"}),
    ));
    fake.push(call("c2", "recorder__whoami", &json!({"caller": "alice"})));
    fake.push(openai::text(&["done"], (3, 1)));
    let (_alice, mut ws) = user(&server, "alice").await;

    let frames = ws.ask("use the tools").await;
    assert_eq!(last(&frames)["type"], "agent_completed", "{frames:#?}");
    let tools: Vec<&str> = of_type(&frames, "tool_executing")
        .iter()
        .map(|f| f["tool"].as_str().unwrap())
        .collect();
    assert_eq!(tools, ["everything.echo", "recorder.whoami"]);
    let completed = of_type(&frames, "tool_completed");
    assert_eq!(completed[0]["is_error"], false, "{:#}", completed[0]);
    assert!(completed[0]["result"].to_string().contains("hello mcp"));
    // The Python SDK answers a `str` tool with structured content `{"result": …}`.
    assert_eq!(completed[1]["result"]["result"], "Bearer operator-token");

    let offered = offered(&fake.requests()[0]);
    for name in ["calculator", "everything__echo", "recorder__whoami"] {
        assert!(
            offered.iter().any(|o| o == name),
            "{name} not in {offered:?}"
        );
    }
    // The model's second call saw the first tool's result.
    let second = fake.requests()[1].body.to_string();
    assert!(second.contains("hello mcp"), "{second}");
    let calls = recorder.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["authorization"], "Bearer operator-token");
    server.stop().await;
}

#[tokio::test]
async fn a_stdio_server_killed_mid_call_is_a_tool_error_and_is_started_again() {
    let Some(fixtures) = McpFixtures::find() else {
        return;
    };
    let mark = marker();
    let (fake, server) = start_with(vec![fixtures.everything("everything", &mark)]).await;
    let long = json!({"duration": 30, "steps": 3});
    fake.push(call(
        "c1",
        "everything__trigger-long-running-operation",
        &long,
    ));
    fake.push(openai::text(&["the tool broke"], (3, 1)));
    let (_alice, mut ws) = user(&server, "alice").await;

    ws.send_json(&json!({"type": "user_message", "content": "take your time"}))
        .await;
    ws.collect_until(|f| f["type"] == "tool_executing").await;
    let killed = pids_marked(&mark);
    assert_eq!(killed.len(), 1, "one server process: {killed:?}");
    kill(killed[0]);
    let frames = ws.collect_until(cordon_test_support::is_terminal).await;
    assert_eq!(last(&frames)["type"], "agent_completed", "{frames:#?}");
    let completed = of_type(&frames, "tool_completed");
    assert_eq!(completed[0]["is_error"], true);
    assert!(
        completed[0]["result"]
            .to_string()
            .contains("MCP server `everything`"),
        "{:#}",
        completed[0]
    );

    let restarted = wait_for_new_process(&mark, killed[0]).await;
    assert!(restarted, "the server was started again");
    // The new process has finished its handshake once a call through it works.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        fake.push(call(
            "c2",
            "everything__echo",
            &json!({"message": "back again"}),
        ));
        fake.push(openai::text(&["fine"], (3, 1)));
        let frames = ws.ask("again").await;
        let completed = of_type(&frames, "tool_completed");
        if completed[0]["is_error"] == false {
            assert!(completed[0]["result"].to_string().contains("back again"));
            break;
        }
        assert!(Instant::now() < deadline, "never reconnected: {frames:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.stop().await;
}

#[tokio::test]
async fn cancelling_a_run_cancels_its_call_on_the_server() {
    let Some(fixtures) = McpFixtures::find() else {
        return;
    };
    let recorder = fixtures.recorder().await;
    let (fake, server) = start_with(vec![recorder.server("recorder", &[], 60.0)]).await;
    fake.push(call("c1", "recorder__sleep", &json!({"seconds": 60})));
    let (_alice, mut ws) = user(&server, "alice").await;

    let started = ws.start_run("sleep on it").await;
    ws.collect_until(|f| f["type"] == "tool_executing").await;
    assert!(
        recorder
            .wait_for(Duration::from_secs(5), |c| c["tool"] == "sleep")
            .await
    );
    let cancelled_at = Instant::now();
    ws.send_json(&json!({"type": "cancel", "run_id": started["run_id"]}))
        .await;
    let frames = ws.collect_until(cordon_test_support::is_terminal).await;
    assert_eq!(error_code(&frames), "cancelled");
    assert!(cancelled_at.elapsed() < Duration::from_secs(5));
    let heard = recorder
        .wait_for(Duration::from_secs(10), |c| c["tool"] == "sleep_cancelled")
        .await;
    assert!(
        heard,
        "the server never heard of the cancel: {:?}",
        recorder.calls()
    );
    server.stop().await;
}

#[tokio::test]
async fn a_call_past_its_timeout_is_a_tool_error_and_the_run_goes_on() {
    let Some(fixtures) = McpFixtures::find() else {
        return;
    };
    let recorder = fixtures.recorder().await;
    let (fake, server) = start_with(vec![recorder.server("slow", &[], 1.0)]).await;
    fake.push(call("c1", "slow__sleep", &json!({"seconds": 30})));
    fake.push(openai::text(&["too slow"], (3, 1)));
    let (_alice, mut ws) = user(&server, "alice").await;

    let asked = Instant::now();
    let frames = ws.ask("wait").await;
    assert_eq!(last(&frames)["answer"], "too slow", "{frames:#?}");
    let completed = of_type(&frames, "tool_completed");
    assert_eq!(completed[0]["is_error"], true);
    assert!(
        completed[0]["result"]
            .to_string()
            .contains("did not answer within 1.0 s"),
        "{:#}",
        completed[0]
    );
    assert!(asked.elapsed() < Duration::from_secs(10));
    server.stop().await;
}

#[tokio::test]
async fn a_server_that_announces_a_changed_list_has_it_listed_again() {
    let Some(fixtures) = McpFixtures::find() else {
        return;
    };
    let recorder = fixtures.recorder().await;
    let (fake, server) = start_with(vec![recorder.server("recorder", &[], 10.0)]).await;
    fake.push(call("c1", "recorder__grow", &json!({})));
    fake.push(openai::text(&["grown"], (3, 1)));
    let (_alice, mut ws) = user(&server, "alice").await;
    let frames = ws.ask("grow").await;
    assert_eq!(last(&frames)["answer"], "grown", "{frames:#?}");
    assert!(!offered(&fake.requests()[0]).contains(&"recorder__fresh".to_owned()));

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        fake.push(openai::text(&["looked"], (1, 1)));
        ws.ask("what can you do now?").await;
        if offered(fake.requests().last().unwrap()).contains(&"recorder__fresh".to_owned()) {
            break;
        }
        assert!(Instant::now() < deadline, "the new tool was never offered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    fake.push(call("c2", "recorder__fresh", &json!({})));
    fake.push(openai::text(&["used it"], (1, 1)));
    let frames = ws.ask("use the new one").await;
    assert_eq!(
        of_type(&frames, "tool_completed")[0]["result"]["result"],
        "fresh"
    );
    server.stop().await;
}

fn kill(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits until a process with `marker` other than `old` runs.
async fn wait_for_new_process(marker: &str, old: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if pids_marked(marker).iter().any(|pid| *pid != old) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// A model that calls `recorder.whoami` ten times for whoever the message
/// names (`as NAME`), then answers once it has the results.
fn whoami_ten_times(request: &RecordedRequest) -> cordon_test_support::fake_llm::Reply {
    let messages = request.body["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let last = messages.last().cloned().unwrap_or_default();
    if last["role"] == "tool" {
        return openai::text(&["ok"], (1, 1));
    }
    let content = last["content"].as_str().unwrap_or_default();
    let caller = content.rsplit("as ").next().unwrap_or_default().to_owned();
    let calls: Vec<Value> = (0..10)
        .map(|index| {
            json!({"index": index, "id": format!("call_{index}"), "type": "function",
                   "function": {"name": "recorder__whoami",
                                "arguments": json!({"caller": caller}).to_string()}})
        })
        .collect();
    cordon_test_support::fake_llm::Reply::Stream(vec![
        openai::chunk(json!({"role": "assistant", "tool_calls": calls}), None),
        openai::chunk(json!({}), Some("tool_calls")),
        openai::done(),
    ])
}

async fn put_secret(server: &TestServer, account: &cordon_test_support::Account, value: &str) {
    let (status, body) = server
        .request_json(
            reqwest::Method::PUT,
            account,
            "/api/me/secrets/ticket_token",
            Some(&json!({ "value": value })),
        )
        .await;
    assert_eq!(status, 204, "{body}");
}

#[tokio::test]
async fn a_per_user_server_carries_each_users_own_secret_and_nobody_elses() {
    let Some(fixtures) = McpFixtures::find() else {
        return;
    };
    let recorder = fixtures.recorder().await;
    let per_user = recorder.per_user_server(
        "recorder",
        &[("Authorization", "Bearer {secret.ticket_token}")],
    );
    let (fake, server) = start_with(vec![per_user]).await;
    fake.respond_with(whoami_ten_times);
    let secret_of = |name: &str| format!("{name}-token-{}", name.len() * 7919);
    let mut users = Vec::new();
    for name in ["alice", "bob"] {
        let account = server.register(name).await;
        put_secret(&server, &account, &secret_of(name)).await;
        users.push((name, server.connect(&account).await));
    }
    // 2 users × 50 runs × 10 calls, the two users' runs interleaved.
    let runs = users.into_iter().map(|(name, mut ws)| async move {
        for run in 0..50 {
            let frames = ws.ask(&format!("run {run} as {name}")).await;
            assert_eq!(last(&frames)["type"], "agent_completed", "{frames:#?}");
            for done in of_type(&frames, "tool_completed") {
                assert_eq!(done["tool"], "recorder.whoami");
                let expected = format!("Bearer {}", secret_of(name));
                assert_eq!(
                    done["result"]["result"],
                    expected.as_str(),
                    "{name}: {done:#}"
                );
            }
        }
    });
    futures_util::future::join_all(runs).await;

    let calls = recorder.calls();
    assert_eq!(calls.len(), 1_000);
    for call in &calls {
        let caller = call["caller"].as_str().unwrap();
        let expected = format!("Bearer {}", secret_of(caller));
        assert_eq!(call["authorization"], expected.as_str(), "{call}");
    }

    // Without the secret the server's tools are not offered at all.
    let carol = server.register("carol").await;
    let mut ws = server.connect(&carol).await;
    ws.ask("hello as carol").await;
    let offered = offered(fake.requests().last().unwrap());
    assert!(
        !offered.iter().any(|name| name.starts_with("recorder")),
        "{offered:?}"
    );

    // A changed secret is used from the next run on.
    let alice = server.login("alice").await;
    put_secret(&server, &alice, "alice-rotated").await;
    let mut ws = server.connect(&alice).await;
    let frames = ws.ask("once more as alice").await;
    let completed = of_type(&frames, "tool_completed");
    assert_eq!(completed[0]["result"]["result"], "Bearer alice-rotated");
    server.stop().await;
}

#[tokio::test]
async fn an_mcp_tool_that_needs_approval_runs_once_however_many_answers_race() {
    let Some(fixtures) = McpFixtures::find() else {
        return;
    };
    let recorder = fixtures.recorder().await;
    let declared = recorder.server("recorder", &[("Authorization", "Bearer t")], 10.0);
    let (fake, server) = start_serving(
        ProviderKind::Openai,
        |_| {},
        |config| {
            config.mcp_servers = vec![declared];
            config.engine.approval_tools = ["recorder.whoami".to_owned()].into();
        },
    )
    .await;
    fake.push(call("c1", "recorder__whoami", &json!({"caller": "alice"})));
    fake.push(openai::text(&["done"], (3, 1)));
    let (alice, mut ws) = user(&server, "alice").await;
    let mut second = server.connect(&alice).await;

    ws.send_json(&json!({"type": "user_message", "content": "who am I?"}))
        .await;
    let frames = ws.collect_until(|f| f["type"] == "approval_required").await;
    let required = last(&frames);
    assert_eq!(required["tool"], "recorder.whoami");
    assert!(
        recorder.calls().is_empty(),
        "nothing reaches the server before approval"
    );

    // Two sockets and REST answer at once: exactly one wins.
    let approve = json!({"type": "approve", "call_id": "c1"});
    let path = format!(
        "/api/runs/{}/approvals/c1",
        required["run_id"].as_str().unwrap()
    );
    let by_rest = json!({"decision": "approve"});
    let (_, _, (status, _)) = tokio::join!(
        ws.send_json(&approve),
        second.send_json(&approve),
        server.post_json(&alice, &path, &by_rest)
    );
    let (frames, others) = (until_end(&mut ws).await, until_end(&mut second).await);
    assert_eq!(of_type(&frames, "agent_completed").len(), 1, "{frames:#?}");
    let refusals = [&frames[..], &others[..]]
        .concat()
        .into_iter()
        .filter(|f| f["code"] == "already_resolved")
        .count();
    let rest_refused = usize::from(status == 409);
    assert_eq!(refusals + rest_refused, 2, "one answer won, {frames:#?}");
    assert_eq!(recorder.calls().len(), 1, "the side effect happened once");
    server.stop().await;
}

/// A socket's frames until its user's run ended, and whatever came within
/// half a second after (a late reply).
async fn until_end(ws: &mut cordon_test_support::WsClient) -> Vec<Value> {
    let mut frames = ws.collect_until(cordon_test_support::is_terminal).await;
    while let Some(frame) = ws.try_next_json(Duration::from_millis(500)).await {
        frames.push(frame);
    }
    frames
}
