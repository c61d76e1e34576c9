//! `cordon healthcheck`, the container image's health check, run as a real child process against a real server and against a port nobody listens on.
#![allow(
    clippy::unwrap_used,
    reason = "a test should panic loudly on a broken assumption"
)]

use std::process::Command;

use cordon_test_support::TestServer;

fn healthcheck(url: &str) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_cordon"))
        .args(["healthcheck", "--url", url, "--timeout", "2"])
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_is_exit_0_and_anything_else_is_exit_1_with_the_reason() {
    let server = TestServer::start().await;
    let url = server.url("/healthz");
    let (code, _) = tokio::task::spawn_blocking(move || healthcheck(&url))
        .await
        .unwrap();
    assert_eq!(code, Some(0));

    let missing = server.url("/no-such-route");
    let (code, why) = tokio::task::spawn_blocking(move || healthcheck(&missing))
        .await
        .unwrap();
    assert_eq!(code, Some(1));
    assert!(why.contains("404"), "{why}");

    let stopped = server.url("/healthz");
    server.stop().await;
    let (code, why) = tokio::task::spawn_blocking(move || healthcheck(&stopped))
        .await
        .unwrap();
    assert_eq!(code, Some(1), "{why}");
}
