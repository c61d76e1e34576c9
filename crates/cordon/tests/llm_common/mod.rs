//! Shared set-up of the real-provider tests: a fake provider, a cordon pointed at it, and frame helpers.
#![allow(dead_code, reason = "each test file uses a different subset")]

use std::sync::Arc;

use cordon_llm::{LlmConfig, ProviderKind};
use cordon_server::{Server, ServerConfig};
use cordon_test_support::fake_llm::FakeLlm;
use cordon_test_support::{Account, TestServer, WsClient};
use serde_json::Value;

/// The API key the tests give the provider; it must never reach a client.
pub const KEY: &str = "sk-test-secret-key-0123456789";

/// A fake provider and a real cordon configured by `configure` to call it.
pub async fn start(
    provider: ProviderKind,
    configure: impl FnOnce(&mut LlmConfig),
) -> (FakeLlm, TestServer) {
    start_serving(provider, configure, |_| {}).await
}

/// As [`start`], with the server's config adjusted by `serve`.
pub async fn start_serving(
    provider: ProviderKind,
    configure: impl FnOnce(&mut LlmConfig),
    serve: impl FnOnce(&mut ServerConfig),
) -> (FakeLlm, TestServer) {
    let fake = FakeLlm::start().await;
    let (base_url, model) = match provider {
        ProviderKind::Anthropic => (fake.base_url(), "claude-3-5-haiku-latest"),
        _ => (fake.openai_base_url(), "gpt-4o-mini"),
    };
    let mut llm = LlmConfig {
        provider: Some(provider),
        model: Some(model.into()),
        base_url: Some(base_url),
        api_key_env: Some("CORDON_TEST_LLM_KEY".into()),
        timeout_secs: Some(5.0),
        max_retries: Some(2),
        initial_backoff_ms: Some(10),
        max_backoff_ms: Some(40),
        ..LlmConfig::default()
    };
    configure(&mut llm);
    let model = llm
        .build(|name| (name == "CORDON_TEST_LLM_KEY").then(|| KEY.to_owned()))
        .expect("provider config")
        .expect("a real provider");
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let mut config = ServerConfig::new(dir.path());
    config.shutdown_grace = std::time::Duration::from_secs(2);
    if let Some(max_steps) = llm.max_steps {
        config.engine.max_steps = max_steps;
    }
    serve(&mut config);
    let server = TestServer::start_server(dir, Server::new(config).with_llm(model)).await;
    (fake, server)
}

pub fn types(frames: &[Value]) -> Vec<&str> {
    frames
        .iter()
        .map(|f| f["type"].as_str().unwrap_or("?"))
        .collect()
}

/// The `agent_delta` texts, in order, joined.
pub fn deltas(frames: &[Value]) -> String {
    frames
        .iter()
        .filter(|f| f["type"] == "agent_delta")
        .map(|f| f["text"].as_str().unwrap_or_default())
        .collect()
}

pub fn last(frames: &[Value]) -> &Value {
    frames.last().expect("at least one frame")
}

/// The run's error code, asserting the run failed.
pub fn error_code(frames: &[Value]) -> String {
    let end = last(frames);
    assert_eq!(end["type"], "agent_error", "{frames:#?}");
    end["code"].as_str().unwrap_or_default().to_owned()
}

/// No frame sent to the client contains the API key.
pub fn assert_no_key(frames: &[Value]) {
    for frame in frames {
        assert!(!frame.to_string().contains(KEY), "the key leaked: {frame}");
    }
}

pub async fn user(server: &TestServer, name: &str) -> (Account, WsClient) {
    let account = server.register(name).await;
    let ws = server.connect(&account).await;
    (account, ws)
}
