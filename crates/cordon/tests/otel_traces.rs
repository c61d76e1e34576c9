//! Traces end to end: a real `cordon serve --otlp-endpoint` exports a tool-calling run's spans (GenAI conventions) to an OTLP/HTTP receiver in the test, under the caller's `traceparent`; a dead collector costs runs nothing and its drops are counted.
#![allow(
    clippy::unwrap_used,
    reason = "a test should panic loudly on a broken assumption"
)]

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use cordon_test_support::child::{ChildServer, free_port};
use cordon_test_support::fake_llm::{FakeLlm, openai};
use cordon_test_support::{Account, WsClient, is_terminal};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

const KEY: &str = "sk-test-secret-key-0123456789";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN: &str = "00f067aa0ba902b7";
const QUESTION: &str = "What is 2 + 3? Keep this sentence private.";

fn traceparent() -> String {
    format!("00-{TRACE_ID}-{PARENT_SPAN}-01")
}

/// An OTLP/HTTP receiver on loopback: every span it was sent.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Span>>>,
}

impl Collector {
    async fn start() -> (Self, String) {
        let collector = Self::default();
        let app = axum::Router::new()
            .route("/v1/traces", post(receive))
            .with_state(collector.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (collector, url)
    }

    /// The spans once at least `count` runs (`invoke_agent` spans) arrived.
    async fn runs(&self, count: usize) -> Vec<Span> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let spans = self.spans.lock().unwrap().clone();
            let runs = spans
                .iter()
                .filter(|s| s.name.starts_with("invoke_agent"))
                .count();
            if runs >= count {
                return spans;
            }
            assert!(
                Instant::now() < deadline,
                "{runs} of {count} runs exported: {spans:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn receive(
    State(collector): State<Collector>,
    body: Bytes,
) -> ([(&'static str, &'static str); 1], Vec<u8>) {
    let request = ExportTraceServiceRequest::decode(body).unwrap();
    let spans = request
        .resource_spans
        .into_iter()
        .flat_map(|r| r.scope_spans)
        .flat_map(|s| s.spans);
    collector.spans.lock().unwrap().extend(spans);
    let answer = ExportTraceServiceResponse::default().encode_to_vec();
    ([("content-type", "application/x-protobuf")], answer)
}

/// A span's attributes as JSON values.
fn attributes(span: &Span) -> BTreeMap<String, Value> {
    span.attributes
        .iter()
        .map(|kv| {
            let value = kv.value.as_ref().and_then(|v| v.value.as_ref());
            (kv.key.clone(), json_of(value))
        })
        .collect()
}

fn json_of(value: Option<&any_value::Value>) -> Value {
    match value {
        Some(any_value::Value::StringValue(s)) => json!(s),
        Some(any_value::Value::IntValue(i)) => json!(i),
        Some(any_value::Value::BoolValue(b)) => json!(b),
        Some(any_value::Value::DoubleValue(d)) => json!(d),
        Some(any_value::Value::ArrayValue(array)) => Value::Array(
            array
                .values
                .iter()
                .map(|v| json_of(v.value.as_ref()))
                .collect(),
        ),
        _ => Value::Null,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hashed(user_id: &str) -> String {
    hex(&Sha256::digest(user_id.as_bytes())[..8])
}

/// `cordon serve` with the fake provider as its model and `extra` flags,
/// exporting every 100 ms rather than the SDK's 5 s, so the tests are quick.
async fn serve(data: &tempfile::TempDir, fake: Option<&FakeLlm>, extra: &[&str]) -> ChildServer {
    serve_exporting_every(data, fake, extra, "100").await
}

async fn serve_exporting_every(
    data: &tempfile::TempDir,
    fake: Option<&FakeLlm>,
    extra: &[&str],
    delay_ms: &str,
) -> ChildServer {
    let mut args: Vec<OsString> = vec![
        "--data-dir".into(),
        data.path().into(),
        "--offline-delay-ms".into(),
        "0".into(),
    ];
    if let Some(fake) = fake {
        for arg in ["--llm", "openai", "--llm-model", "gpt-4o-mini"] {
            args.push(arg.into());
        }
        args.push("--llm-base-url".into());
        args.push(fake.openai_base_url().into());
        args.push("--llm-api-key-env".into());
        args.push("CORDON_TEST_LLM_KEY".into());
    }
    args.extend(extra.iter().map(OsString::from));
    let envs = [
        ("CORDON_TEST_LLM_KEY", KEY),
        ("OTEL_BSP_SCHEDULE_DELAY", delay_ms),
    ];
    ChildServer::start(env!("CARGO_BIN_EXE_cordon"), free_port(), &args, &envs).await
}

/// A socket opened with a `traceparent` on its upgrade.
async fn socket_with_traceparent(server: &ChildServer, account: &Account) -> WsClient {
    let mut request = server.ws_url().into_client_request().unwrap();
    let headers = request.headers_mut();
    let bearer = HeaderValue::from_str(&format!("Bearer {}", account.token)).unwrap();
    headers.insert("authorization", bearer);
    headers.insert(
        "traceparent",
        HeaderValue::from_str(&traceparent()).unwrap(),
    );
    let (stream, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    WsClient::from_stream(stream).await
}

/// `POST path` of a message with a `traceparent`; the `202`'s body.
async fn post_with_traceparent(server: &ChildServer, account: &Account, path: &str) -> Value {
    let response = reqwest::Client::new()
        .post(server.url(path))
        .bearer_auth(&account.token)
        .header("traceparent", traceparent())
        .json(&json!({ "content": QUESTION }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
    response.json().await.unwrap()
}

/// A fake provider scripted for one tool-calling run: the calculator, then the answer.
async fn calculator_run() -> FakeLlm {
    let fake = FakeLlm::start().await;
    fake.push(openai::tool_call(
        "call-1",
        "calculator",
        &[r#"{"expression":"2 + 3"}"#],
        (11, 7),
    ));
    fake.push(openai::text(&["It is 5."], (13, 2)));
    fake
}

/// The span of one run of the built-in agent.
const RUN_SPAN: &str = "invoke_agent supervisor";

/// The run these frames belong to completed; the frames show what happened if not.
fn assert_completed(frames: &[Value]) {
    assert_eq!(
        frames.last().unwrap()["type"],
        "agent_completed",
        "{frames:#?}"
    );
}

fn named<'a>(spans: &'a [Span], name: &str) -> Vec<&'a Span> {
    let mut found: Vec<&Span> = spans.iter().filter(|s| s.name == name).collect();
    found.sort_by_key(|s| s.start_time_unix_nano);
    found
}

#[tokio::test]
async fn a_tool_calling_run_is_one_span_tree_under_the_rest_requests_traceparent() {
    let (collector, endpoint) = Collector::start().await;
    let fake = calculator_run().await;
    let data = tempfile::tempdir().unwrap();
    let server = serve(&data, Some(&fake), &["--otlp-endpoint", &endpoint]).await;
    let alice = server.register("alice").await;
    let mut ws = WsClient::connect(&server.ws_url(), &alice.token).await;

    let accepted = post_with_traceparent(&server, &alice, "/api/messages").await;
    let frames = ws.collect_until(is_terminal).await;
    assert_completed(&frames);

    let spans = collector.runs(1).await;
    let run = named(&spans, RUN_SPAN);
    let chats = named(&spans, "chat gpt-4o-mini");
    let tools = named(&spans, "execute_tool calculator");
    assert_eq!(
        (run.len(), chats.len(), tools.len()),
        (1, 2, 1),
        "{spans:#?}"
    );
    let run = run[0];
    assert_eq!(hex(&run.trace_id), TRACE_ID);
    assert_eq!(hex(&run.parent_span_id), PARENT_SPAN);
    let order = [chats[0], tools[0], chats[1]];
    assert!(
        order
            .windows(2)
            .all(|w| w[0].end_time_unix_nano <= w[1].start_time_unix_nano)
    );
    for child in order {
        assert_eq!(child.trace_id, run.trace_id);
        assert_eq!(
            child.parent_span_id, run.span_id,
            "{} is the run's child",
            child.name
        );
    }

    let ids = json!({
        "cordon.user_id": hashed(&alice.user_id),
        "cordon.thread_id": accepted["thread_id"],
        "cordon.run_id": accepted["run_id"],
    });
    for span in [run, chats[0], tools[0], chats[1]] {
        assert_ids_and_no_content(span, &ids, &alice.user_id);
    }
    let run_attrs = attributes(run);
    assert_eq!(run_attrs["gen_ai.operation.name"], "invoke_agent");
    assert_eq!(run_attrs["gen_ai.agent.name"], "supervisor");
    assert_chats(&chats);
    let tool = attributes(tools[0]);
    assert_eq!(tool["gen_ai.operation.name"], "execute_tool");
    assert_eq!(tool["gen_ai.tool.name"], "calculator");
    assert_eq!(tool["gen_ai.tool.call.id"], "call-1");
    assert!(!tool.contains_key("gen_ai.tool.call.arguments"));
}

/// cordon's ids on `span`, the user's hashed, and none of the message's words.
fn assert_ids_and_no_content(span: &Span, ids: &Value, user_id: &str) {
    let attrs = attributes(span);
    for (key, value) in ids.as_object().unwrap() {
        assert_eq!(&attrs[key], value, "{key} on {}", span.name);
    }
    assert!(!attrs.contains_key("otel.status_code"), "{attrs:#?}");
    let everything = format!("{attrs:?}");
    assert!(
        !everything.contains("private"),
        "content is off by default: {everything}"
    );
    assert!(!everything.contains(user_id), "the user id is hashed");
}

/// The two model calls of the tool-calling run: a tool call, then the answer.
fn assert_chats(chats: &[&Span]) {
    let first = attributes(chats[0]);
    assert_eq!(first["gen_ai.operation.name"], "chat");
    assert_eq!(first["gen_ai.provider.name"], "openai");
    assert_eq!(first["gen_ai.system"], "openai");
    assert_eq!(first["gen_ai.request.model"], "gpt-4o-mini");
    assert_eq!(first["gen_ai.usage.input_tokens"], 11);
    assert_eq!(first["gen_ai.usage.output_tokens"], 7);
    assert_eq!(
        first["gen_ai.response.finish_reasons"],
        json!(["tool_calls"])
    );
    assert!(!first.contains_key("gen_ai.input.messages"));
    let second = attributes(chats[1]);
    assert_eq!(second["gen_ai.usage.input_tokens"], 13);
    assert_eq!(second["gen_ai.response.finish_reasons"], json!(["stop"]));
}

#[tokio::test]
async fn every_run_of_a_socket_is_a_child_of_its_upgrades_traceparent() {
    let (collector, endpoint) = Collector::start().await;
    let fake = FakeLlm::start().await;
    fake.push(openai::text(&["one"], (3, 1)));
    fake.push(openai::text(&["two"], (3, 1)));
    let data = tempfile::tempdir().unwrap();
    let flags = [
        "--otlp-endpoint",
        &endpoint,
        "--otlp-user-ids",
        "plain",
        "--otlp-content",
    ];
    let server = serve(&data, Some(&fake), &flags).await;
    let bob = server.register("bob").await;
    let mut ws = socket_with_traceparent(&server, &bob).await;
    for question in [QUESTION, "And again?"] {
        let frames = ws.ask(question).await;
        assert_completed(&frames);
    }

    let spans = collector.runs(2).await;
    let runs = named(&spans, RUN_SPAN);
    assert_eq!(runs.len(), 2);
    for run in &runs {
        assert_eq!(hex(&run.trace_id), TRACE_ID);
        assert_eq!(hex(&run.parent_span_id), PARENT_SPAN);
        assert_eq!(attributes(run)["cordon.user_id"], bob.user_id.as_str());
    }
    assert_ne!(runs[0].span_id, runs[1].span_id);
    let chat = attributes(named(&spans, "chat gpt-4o-mini")[0]);
    let input = chat["gen_ai.input.messages"].as_str().unwrap();
    assert!(input.contains("Keep this sentence private"), "{input}");
    assert!(
        chat["gen_ai.output.messages"]
            .as_str()
            .unwrap()
            .contains("one")
    );
}

/// The value of `name` in a `/metrics` text, 0 when absent.
fn metric(text: &str, name: &str) -> f64 {
    cordon_bench::parse_gauge(text, name).unwrap_or(0.0)
}

#[tokio::test]
async fn a_dead_collector_fails_no_run_and_its_dropped_spans_are_counted() {
    let dead = format!("http://127.0.0.1:{}", free_port());
    let data = tempfile::tempdir().unwrap();
    let server = serve(&data, None, &["--otlp-endpoint", &dead]).await;
    let carol = server.register("carol").await;
    let mut ws = WsClient::connect(&server.ws_url(), &carol.token).await;
    let started = Instant::now();
    for n in 0..5 {
        let frames = ws.ask(&format!("question {n}")).await;
        assert_completed(&frames);
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "runs were slowed"
    );

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = reqwest::get(server.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let dropped = metric(&text, "cordon_otel_spans_dropped_total");
        if dropped >= 5.0 {
            assert_eq!(metric(&text, "cordon_otel_spans_exported_total"), 0.0);
            break;
        }
        assert!(Instant::now() < deadline, "drops not counted: {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_failed_run_and_its_failed_call_carry_error_status_and_code() {
    let (collector, endpoint) = Collector::start().await;
    let fake = FakeLlm::start().await;
    fake.push(openai::error(400, "no such model", "invalid_request_error"));
    let data = tempfile::tempdir().unwrap();
    let server = serve(&data, Some(&fake), &["--otlp-endpoint", &endpoint]).await;
    let dave = server.register("dave").await;
    let mut ws = WsClient::connect(&server.ws_url(), &dave.token).await;
    let frames = ws.ask("Hello?").await;
    let end = frames.last().unwrap();
    assert_eq!(end["type"], "agent_error", "{frames:#?}");

    let spans = collector.runs(1).await;
    let run = named(&spans, RUN_SPAN)[0];
    let chat = named(&spans, "chat gpt-4o-mini")[0];
    for span in [run, chat] {
        let status = span.status.as_ref().unwrap();
        assert_eq!(status.code, 2, "{} is an error: {status:?}", span.name);
        assert_eq!(attributes(span)["error.type"], end["code"], "{}", span.name);
    }
    // Unconnected sockets start traces of their own.
    assert_ne!(hex(&run.trace_id), TRACE_ID);
    assert!(run.parent_span_id.is_empty());
}

#[tokio::test]
async fn the_traceparent_of_a_standard_stream_and_of_a_thread_message_parents_their_runs() {
    let (collector, endpoint) = Collector::start().await;
    let data = tempfile::tempdir().unwrap();
    let server = serve(&data, None, &["--otlp-endpoint", &endpoint]).await;
    let erin = server.register("erin").await;
    let ask = json!({"messages": [{"role": "user", "parts": [{"type": "text", "text": "What is 1 + 1?"}]}]});
    let response = reqwest::Client::new()
        .post(server.url("/api/chat"))
        .bearer_auth(&erin.token)
        .header("traceparent", traceparent())
        .json(&ask)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    // The stream ends with its run.
    let stream = response.text().await.unwrap();
    assert!(stream.contains("finish"), "{stream}");

    let spans = collector.runs(1).await;
    let run = named(&spans, RUN_SPAN)[0];
    assert_eq!(hex(&run.trace_id), TRACE_ID);
    assert_eq!(hex(&run.parent_span_id), PARENT_SPAN);
    let chat = named(&spans, "chat offline")[0];
    assert_eq!(chat.parent_span_id, run.span_id);
    assert_eq!(attributes(chat)["gen_ai.provider.name"], "offline");

    // And a message to that thread over REST.
    let thread = attributes(run)["cordon.thread_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/threads/{thread}/messages");
    let accepted = post_with_traceparent(&server, &erin, &path).await;
    let spans = collector.runs(2).await;
    let second = named(&spans, RUN_SPAN)[1];
    assert_eq!(attributes(second)["cordon.run_id"], accepted["run_id"]);
    assert_eq!(hex(&second.parent_span_id), PARENT_SPAN);
}

#[tokio::test]
async fn a_graceful_stop_flushes_the_spans_still_queued() {
    let (collector, endpoint) = Collector::start().await;
    let data = tempfile::tempdir().unwrap();
    // A batch would wait ten minutes: only the shutdown's flush can send it.
    let flags = ["--otlp-endpoint", &endpoint];
    let server = serve_exporting_every(&data, None, &flags, "600000").await;
    let fay = server.register("fay").await;
    let mut ws = WsClient::connect(&server.ws_url(), &fay.token).await;
    let frames = ws.ask("Hello?").await;
    assert_eq!(frames.last().unwrap()["type"], "agent_completed");
    // Not sent before the stop (given time to be, had the batch not waited).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(collector.spans.lock().unwrap().is_empty());
    drop(ws);
    let status = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
    let spans = collector.runs(1).await;
    assert_eq!(named(&spans, RUN_SPAN).len(), 1);
}

#[tokio::test]
async fn a_collector_that_never_answers_fills_the_bounded_queue_and_the_rest_is_dropped() {
    // Takes connections and never answers: each export waits out its timeout.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let data = tempfile::tempdir().unwrap();
    let flags = ["--otlp-endpoint", &silent, "--otlp-queue-size", "2"];
    let server = serve(&data, None, &flags).await;
    let gus = server.register("gus").await;
    let mut ws = WsClient::connect(&server.ws_url(), &gus.token).await;
    let started = Instant::now();
    for n in 0..4 {
        let frames = ws.ask(&format!("question {n}")).await;
        assert_eq!(frames.last().unwrap()["type"], "agent_completed");
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "runs waited on export"
    );
    // At most two spans wait on the silent collector; the rest were refused at once.
    let text = reqwest::get(server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metric(&text, "cordon_otel_spans_dropped_total") >= 6.0,
        "{text}"
    );
}

#[tokio::test]
async fn a_run_that_goes_on_after_an_approval_stays_under_the_callers_traceparent() {
    let (collector, endpoint) = Collector::start().await;
    let fake = calculator_run().await;
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("cordon.toml");
    std::fs::write(
        &config,
        "[tools.\"calculator\"]\nrequires_approval = true\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let flags = ["--otlp-endpoint", &endpoint, "--config", config];
    let server = serve(&data, Some(&fake), &flags).await;
    let alice = server.register("alice").await;
    let mut ws = WsClient::connect(&server.ws_url(), &alice.token).await;

    let accepted = post_with_traceparent(&server, &alice, "/api/messages").await;
    let asked = ws.collect_until(|f| f["type"] == "approval_required").await;
    let call_id = asked.last().unwrap()["call_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!(
        "/api/runs/{}/approvals/{call_id}",
        accepted["run_id"].as_str().unwrap()
    );
    let answer = reqwest::Client::new()
        .post(server.url(&path))
        .bearer_auth(&alice.token)
        .json(&json!({"decision": "approve"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    let frames = ws.collect_until(is_terminal).await;
    assert_completed(&frames);

    // The pause ends the first span; the continuation is a second one, in the
    // same trace and under the same caller's span.
    let spans = collector.runs(2).await;
    let runs = named(&spans, RUN_SPAN);
    assert_eq!(runs.len(), 2, "{spans:#?}");
    for run in runs {
        assert_eq!(hex(&run.trace_id), TRACE_ID);
        assert_eq!(hex(&run.parent_span_id), PARENT_SPAN);
    }
    assert_eq!(named(&spans, "execute_tool calculator").len(), 1);
    server.kill();
}
