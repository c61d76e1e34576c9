//! The standard streams, checked by the real client libraries against a real server (the `cordon serve` binary for the plain runs): the AI SDK's useChat engine against `POST /api/chat` and AG-UI's HttpAgent against `POST /api/agui`, tool calls, approvals (approve, reject, interrupt and resume), two users side by side, and `Last-Event-ID` resume.
//!
//! The clients are `crates/cordon/tests/streams/clients.mjs` on node, with the
//! packages `scripts/stream-test-clients.sh` installs (`.ci/run` runs it).
//! Without them these tests print why and pass, unless `CI` is set.
#![allow(
    clippy::unwrap_used,
    reason = "a test should panic loudly on a broken assumption"
)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cordon_server::ServerConfig;
use cordon_test_support::child::{ChildServer, free_port};
use cordon_test_support::{Account, TestServer, WsClient};
use futures_util::StreamExt;
use serde_json::{Value, json};

const CLIENTS: &str = include_str!("streams/clients.mjs");

/// Where the reference clients are installed; `None` skips (outside CI).
fn clients() -> Option<PathBuf> {
    match std::env::var_os("CORDON_TEST_STREAM_CLIENTS") {
        Some(dir) => Some(PathBuf::from(dir)),
        None => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CORDON_TEST_STREAM_CLIENTS must be set under CI (.ci/run runs scripts/stream-test-clients.sh)"
            );
            eprintln!(
                "skipped: the stream clients are not installed (scripts/stream-test-clients.sh)"
            );
            None
        }
    }
}

/// Runs the reference client `mode` (`aisdk` or `agui`) with `plan` against
/// the server at `base`; what it decoded.
async fn client(dir: &Path, base: &str, account: &Account, mode: &str, plan: Value) -> Value {
    let script = dir.join(format!("clients-{:x}.mjs", rand::random::<u64>()));
    std::fs::write(&script, CLIENTS).unwrap();
    let output = tokio::process::Command::new("node")
        .arg(&script)
        .arg(mode)
        .arg(base)
        .arg(&account.token)
        .arg(plan.to_string())
        .output()
        .await
        .unwrap();
    let _ = std::fs::remove_file(&script);
    assert!(
        output.status.success(),
        "{mode} client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("{error}: {}", String::from_utf8_lossy(&output.stdout)))
}

fn approving_calculator(config: &mut ServerConfig) {
    config.engine.approval_tools = ["calculator".to_owned()].into();
}

fn chunk_types(batch: &Value) -> Vec<&str> {
    batch
        .as_array()
        .unwrap()
        .iter()
        .map(|chunk| chunk["type"].as_str().unwrap_or("?"))
        .collect()
}

fn event_types(run: &Value) -> Vec<&str> {
    run["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["type"].as_str().unwrap())
        .collect()
}

/// The parts of the chat's last (assistant) message.
fn last_parts(chat: &Value) -> &Vec<Value> {
    chat["messages"].as_array().unwrap().last().unwrap()["parts"]
        .as_array()
        .unwrap()
}

fn part<'a>(parts: &'a [Value], kind: &str) -> &'a Value {
    parts
        .iter()
        .find(|p| p["type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} part in {parts:#?}"))
}

/// How many times the user's log shows a tool call executed.
async fn executions(server: &TestServer, account: &Account) -> usize {
    let log = server.event_log(account).await;
    log.iter().filter(|e| e["type"] == "tool_completed").count()
}

/// The real binary: `cordon serve` as a user starts it, on a fresh data dir.
async fn cordon_serve(data: &tempfile::TempDir) -> ChildServer {
    let args = [
        OsString::from("--data-dir"),
        data.path().into(),
        "--offline-delay-ms".into(),
        "0".into(),
    ];
    ChildServer::start(env!("CARGO_BIN_EXE_cordon"), free_port(), &args, &[]).await
}

#[tokio::test]
async fn use_chat_streams_a_tool_calling_run_and_continues_its_thread() {
    let Some(dir) = clients() else { return };
    let data = tempfile::tempdir().unwrap();
    let server = cordon_serve(&data).await;
    let ada = server.register("ada").await;
    let chat = client(
        &dir,
        &server.url(""),
        &ada,
        "aisdk",
        json!({"texts": ["What is (2 + 3) * 4?", "And 6 * 7?"]}),
    )
    .await;
    assert_eq!(chat["status"], "ready", "{chat:#}");
    assert_eq!(chat["errors"], json!([]));
    assert_eq!(chat["warnings"], json!([]));
    let first = &chat["chunks"][0];
    let types = chunk_types(first);
    assert_eq!(types.first(), Some(&"start"));
    assert_eq!(types.last(), Some(&"finish"));
    for kind in [
        "reasoning-start",
        "tool-input-available",
        "tool-output-available",
        "text-delta",
    ] {
        assert!(types.contains(&kind), "{kind} missing from {types:?}");
    }
    let messages = chat["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 4, "two questions, two answers");
    let answer = messages[1]["parts"].as_array().unwrap();
    let tool = part(answer, "tool-calculator");
    assert_eq!(tool["state"], "output-available");
    assert_eq!(tool["input"]["expression"], "(2 + 3) * 4");
    assert_eq!(tool["output"]["value"], 20);
    assert_eq!(part(answer, "text")["text"], "(2 + 3) * 4 = 20.");
    assert_eq!(part(last_parts(&chat), "text")["text"], "6 * 7 = 42.");

    // The message ids are the runs; both runs are the user's, on one thread.
    let thread = messages[1]["metadata"]["thread_id"].as_str().unwrap();
    assert_eq!(
        messages[3]["metadata"]["thread_id"], thread,
        "the chat continues its thread"
    );
    let (_, runs) = server
        .get(&ada, &format!("/api/runs?thread_id={thread}"))
        .await;
    let ids: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&messages[1]["id"].as_str().unwrap()));
    assert!(ids.contains(&messages[3]["id"].as_str().unwrap()));
}

#[tokio::test]
async fn ag_ui_streams_a_tool_calling_run() {
    let Some(dir) = clients() else { return };
    let data = tempfile::tempdir().unwrap();
    let server = cordon_serve(&data).await;
    let bo = server.register("bob").await;
    let agent = client(
        &dir,
        &server.url(""),
        &bo,
        "agui",
        json!({"text": "What is 6 * 7?"}),
    )
    .await;
    assert_eq!(
        agent["warnings"],
        json!([]),
        "no field the client had to strip"
    );
    let run = &agent["runs"][0];
    assert!(run["failure"].is_null(), "{run:#}");
    let types = event_types(run);
    assert_eq!(types.first(), Some(&"RUN_STARTED"));
    assert_eq!(types.last(), Some(&"RUN_FINISHED"));
    for kind in [
        "TOOL_CALL_START",
        "TOOL_CALL_ARGS",
        "TOOL_CALL_END",
        "TOOL_CALL_RESULT",
        "TEXT_MESSAGE_CONTENT",
    ] {
        assert!(types.contains(&kind), "{kind} missing from {types:?}");
    }
    assert_eq!(run["result"]["answer"], "6 * 7 = 42.");
    let messages = agent["messages"].as_array().unwrap();
    let call = messages
        .iter()
        .find_map(|m| m["toolCalls"].as_array().and_then(|calls| calls.first()))
        .unwrap();
    assert_eq!(call["function"]["name"], "calculator");
    let tool = messages.iter().find(|m| m["role"] == "tool").unwrap();
    let content: Value = serde_json::from_str(tool["content"].as_str().unwrap()).unwrap();
    assert_eq!(content["value"], 42);
    assert_eq!(messages.last().unwrap()["content"], "6 * 7 = 42.");
}

#[tokio::test]
async fn use_chat_approves_and_rejects_a_call_that_needs_approval() {
    let Some(dir) = clients() else { return };
    let server = TestServer::start_with(approving_calculator).await;
    let cy = server.register("cyd").await;
    let chat = client(
        &dir,
        &server.url(""),
        &cy,
        "aisdk",
        json!({"texts": ["What is (2 + 3) * 4?"], "approve": true}),
    )
    .await;
    assert_eq!(chat["errors"], json!([]), "{chat:#}");
    let paused = chunk_types(&chat["chunks"][0]);
    assert_eq!(
        &paused[paused.len() - 3..],
        ["tool-input-available", "tool-approval-request", "finish"]
    );
    let tool = part(last_parts(&chat), "tool-calculator");
    assert_eq!(tool["approval"]["approved"], true);
    assert_eq!(tool["state"], "output-available", "{tool:#}");
    assert_eq!(tool["output"]["value"], 20);
    assert_eq!(part(last_parts(&chat), "text")["text"], "(2 + 3) * 4 = 20.");
    assert_eq!(executions(&server, &cy).await, 1);

    let chat = client(
        &dir,
        &server.url(""),
        &cy,
        "aisdk",
        json!({"texts": ["What is 1 + 1?"], "approve": false}),
    )
    .await;
    assert_eq!(chat["errors"], json!([]), "{chat:#}");
    let tool = part(last_parts(&chat), "tool-calculator");
    assert_eq!(tool["state"], "output-denied", "{tool:#}");
    assert!(
        part(last_parts(&chat), "text")["text"]
            .as_str()
            .unwrap()
            .contains("rejected")
    );
    assert_eq!(
        executions(&server, &cy).await,
        1,
        "the rejected call never ran"
    );
}

#[tokio::test]
async fn ag_ui_interrupts_for_approval_and_resumes() {
    let Some(dir) = clients() else { return };
    let server = TestServer::start_with(approving_calculator).await;
    let dee = server.register("dee").await;
    let agent = client(
        &dir,
        &server.url(""),
        &dee,
        "agui",
        json!({"text": "What is 6 * 7?", "approve": true}),
    )
    .await;
    assert_eq!(agent["warnings"], json!([]));
    let paused = &agent["runs"][0];
    let finished = paused["events"].as_array().unwrap().last().unwrap();
    assert_eq!(finished["type"], "RUN_FINISHED", "{paused:#}");
    assert_eq!(finished["outcome"]["type"], "interrupt");
    let interrupt = &finished["outcome"]["interrupts"][0];
    assert_eq!(interrupt["toolCallId"], "call_calculator_1");
    assert_eq!(interrupt["metadata"]["arguments"]["expression"], "6 * 7");
    assert!(
        !event_types(paused).contains(&"TOOL_CALL_RESULT"),
        "nothing ran before approval"
    );

    let resumed = &agent["runs"][1];
    assert!(resumed["failure"].is_null(), "{resumed:#}");
    assert!(event_types(resumed).contains(&"TOOL_CALL_RESULT"));
    assert_eq!(resumed["result"]["answer"], "6 * 7 = 42.");
    let last = resumed["events"].as_array().unwrap().last().unwrap();
    assert_eq!(last["outcome"]["type"], "success");
    assert_eq!(executions(&server, &dee).await, 1);
}

#[tokio::test]
async fn two_users_on_the_adapters_never_see_each_others_runs() {
    let Some(dir) = clients() else { return };
    let server = TestServer::start().await;
    let eve = server.register("eve").await;
    let fay = server.register("fay").await;
    let base = server.url("");
    let (eve_chat, fay_chat, eve_agent, fay_agent) = tokio::join!(
        client(
            &dir,
            &base,
            &eve,
            "aisdk",
            json!({"texts": ["What is 2 + 2?", "What is 3 + 3?"]})
        ),
        client(
            &dir,
            &base,
            &fay,
            "aisdk",
            json!({"texts": ["What is 5 + 5?", "What is 7 + 7?"]})
        ),
        client(&dir, &base, &eve, "agui", json!({"text": "What is 9 * 9?"})),
        client(&dir, &base, &fay, "agui", json!({"text": "What is 8 * 8?"})),
    );
    for (account, chat, agent, answers) in [
        (
            &eve,
            &eve_chat,
            &eve_agent,
            ["2 + 2 = 4.", "3 + 3 = 6.", "9 * 9 = 81."],
        ),
        (
            &fay,
            &fay_chat,
            &fay_agent,
            ["5 + 5 = 10.", "7 + 7 = 14.", "8 * 8 = 64."],
        ),
    ] {
        let (_, runs) = server.get_json(account, "/api/runs").await;
        let own: Vec<&str> = runs
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap())
            .collect();
        assert_eq!(own.len(), 3);
        let messages = chat["messages"].as_array().unwrap();
        for message in messages.iter().filter(|m| m["role"] == "assistant") {
            assert!(
                own.contains(&message["id"].as_str().unwrap()),
                "a run that is not theirs"
            );
        }
        assert_eq!(
            part(messages[1]["parts"].as_array().unwrap(), "text")["text"],
            answers[0]
        );
        assert_eq!(
            part(messages[3]["parts"].as_array().unwrap(), "text")["text"],
            answers[1]
        );
        let run = &agent["runs"][0];
        assert!(own.contains(&run["result"]["run_id"].as_str().unwrap()));
        assert_eq!(run["result"]["answer"], answers[2]);
    }
    // A chat id naming another user's thread starts a thread of one's own.
    let eve_thread = eve_chat["messages"][1]["metadata"]["thread_id"]
        .as_str()
        .unwrap();
    let chat = client(
        &dir,
        &server.url(""),
        &fay,
        "aisdk",
        json!({"texts": ["What is 1 + 2?"], "chatId": eve_thread}),
    )
    .await;
    let fay_thread = chat["messages"][1]["metadata"]["thread_id"]
        .as_str()
        .unwrap();
    assert_ne!(fay_thread, eve_thread);
    let (status, _) = server
        .get_json(&fay, &format!("/api/threads/{eve_thread}/messages"))
        .await;
    assert_eq!(status, 404);
}

/// Reads an SSE response into `(id, data)` pairs until `[DONE]` or the end.
async fn sse_events(response: reqwest::Response) -> Vec<(Option<u64>, String)> {
    let mut events = Vec::new();
    let mut buffer = String::new();
    let mut body = response.bytes_stream();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while let Ok(Some(chunk)) = tokio::time::timeout_at(deadline, body.next()).await {
        buffer.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let id = block
                .lines()
                .find_map(|line| line.strip_prefix("id: "))
                .and_then(|id| id.parse().ok());
            let Some(data) = block.lines().find_map(|line| line.strip_prefix("data: ")) else {
                continue;
            };
            events.push((id, data.to_owned()));
            if data == "[DONE]" {
                return events;
            }
        }
    }
    events
}

#[tokio::test]
async fn a_chat_stream_resumes_from_its_start_or_after_last_event_id() {
    let server =
        TestServer::start_with(|c| c.offline_step_delay = Duration::from_millis(300)).await;
    let gus = server.register("gus").await;
    let (status, accepted) = server
        .post_json(&gus, "/api/messages", &json!({"content": "What is 4 * 4?"}))
        .await;
    assert_eq!(status, 202, "{accepted}");
    let path = format!(
        "/api/chat/{}/stream",
        accepted["thread_id"].as_str().unwrap()
    );
    let resume = |last_event_id: Option<u64>| {
        let mut request = server.http.get(server.url(&path)).bearer_auth(&gus.token);
        if let Some(seq) = last_event_id {
            request = request.header("last-event-id", seq.to_string());
        }
        request.send()
    };
    let whole = resume(None).await.unwrap();
    assert_eq!(whole.status(), 200);
    assert_eq!(whole.headers()["x-vercel-ai-ui-message-stream"], "v1");
    let whole = sse_events(whole).await;
    let first: Value = serde_json::from_str(&whole[0].1).unwrap();
    assert_eq!(first["type"], "start");
    assert_eq!(first["messageId"], accepted["run_id"]);
    assert_eq!(whole.last().unwrap().1, "[DONE]");
    let ids: Vec<u64> = whole.iter().filter_map(|(id, _)| *id).collect();
    assert!(ids.windows(2).all(|pair| pair[0] <= pair[1]), "{ids:?}");

    // The run is over: nothing to resume.
    assert_eq!(resume(None).await.unwrap().status(), 204);

    // While a run goes, Last-Event-ID skips what the client has.
    let (_, accepted) = server
        .post_json(
            &gus,
            &format!(
                "/api/threads/{}/messages",
                accepted["thread_id"].as_str().unwrap()
            ),
            &json!({"content": "What is 5 * 5?"}),
        )
        .await;
    let cut = accepted["seq"].as_u64().unwrap() + 1;
    let later = sse_events(resume(Some(cut)).await.unwrap()).await;
    assert!(
        later.iter().filter_map(|(id, _)| *id).all(|id| id > cut),
        "{later:?}"
    );
    assert!(later.iter().any(|(_, data)| data.contains("5 * 5 = 25.")));
}

#[tokio::test]
async fn front_ends_on_an_allowed_origin_may_call_the_streams_and_others_may_not() {
    let server = TestServer::start_with(|c| {
        c.allowed_origins = vec!["http://app.example:3000".to_owned()];
    })
    .await;
    let preflight = |origin: &'static str| {
        server
            .http
            .request(reqwest::Method::OPTIONS, server.url("/api/chat"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };
    let allowed = preflight("http://app.example:3000").await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "http://app.example:3000"
    );
    let methods = allowed.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap();
    assert!(methods.contains("POST"), "{methods}");
    let headers = allowed.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap();
    assert!(headers.contains("authorization"), "{headers}");
    let refused = preflight("http://evil.example").await.unwrap();
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    // The other routes are same-origin only.
    let other = server
        .http
        .request(reqwest::Method::OPTIONS, server.url("/api/threads"))
        .header("origin", "http://app.example:3000")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn a_client_that_leaves_a_waiting_stream_frees_its_socket_slot() {
    let server = TestServer::start_with(|c| {
        c.max_sockets_per_user = 1;
        c.offline_step_delay = Duration::from_secs(3);
    })
    .await;
    let hal = server.register("hal").await;
    let ask = json!({"messages": [{"role": "user", "parts": [{"type": "text", "text": "What is 1 + 1?"}]}]});
    let post = || {
        server
            .http
            .post(server.url("/api/chat"))
            .bearer_auth(&hal.token)
            .json(&ask)
            .send()
    };
    let open = post().await.unwrap();
    assert_eq!(open.status(), 200);
    // The one slot is taken while the stream is open...
    let (status, body) = server.post_json(&hal, "/api/chat", &ask).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (429, &json!("too_many_connections"))
    );
    // ...and free again soon after the client leaves, while its run still waits on the model.
    drop(open);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        let socket = WsClient::connect_or_refusal(&server.ws_url(), &hal.token).await;
        if socket.is_ok() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slot stayed taken"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
