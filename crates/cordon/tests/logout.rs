//! Sign-out: `POST /api/auth/logout` ends every token of the user, on every request and socket, and nobody else's.
#![allow(
    clippy::unwrap_used,
    reason = "a test should panic loudly on a broken assumption"
)]

use std::time::Duration;

use cordon_test_support::{Account, TestServer};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite;

async fn status_with(server: &TestServer, method: reqwest::Method, path: &str, token: &str) -> u16 {
    server
        .http
        .request(method, server.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn threads_status(server: &TestServer, token: &str) -> u16 {
    status_with(server, reqwest::Method::GET, "/api/threads", token).await
}

async fn logout(server: &TestServer, token: &str) -> u16 {
    status_with(server, reqwest::Method::POST, "/api/auth/logout", token).await
}

/// A second token for the same account, as from another device.
async fn login(server: &TestServer, account: &Account) -> String {
    let response = server
        .http
        .post(server.url("/api/auth/login"))
        .json(&json!({"username": account.username, "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["token"].as_str().unwrap().to_owned()
}

async fn upgrade_status(server: &TestServer, token: &str) -> u16 {
    let url = format!("{}?token={token}", server.ws_url());
    match tokio_tungstenite::connect_async(url).await {
        Ok(_) => 101,
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("unexpected upgrade failure: {other}"),
    }
}

#[tokio::test]
async fn logout_ends_every_token_and_socket_of_the_user_and_nobody_elses() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let laptop = alice.token.clone();
    let phone = login(&server, &alice).await;
    let mut laptop_socket = server.connect(&alice).await;
    let mut bob_socket = server.connect(&bob).await;

    assert_eq!(logout(&server, &phone).await, 204);

    // Every token alice had is void: REST, the upgrade, and a second logout.
    for token in [&laptop, &phone] {
        assert_eq!(threads_status(&server, token).await, 401);
        assert_eq!(upgrade_status(&server, token).await, 401);
        assert_eq!(logout(&server, token).await, 401);
    }
    // Her open socket is closed with 1008 and the reason.
    let closed = laptop_socket.closed(Duration::from_secs(5)).await;
    assert_eq!(closed, Some((1008, "signed out".to_owned())));

    // Bob is untouched: his socket still answers and his token still works.
    bob_socket.send_json(&json!({"type": "ping"})).await;
    assert_eq!(bob_socket.next_json().await["type"], "pong");
    assert_eq!(threads_status(&server, &bob.token).await, 200);

    // Signing in again gives a token that works everywhere.
    let fresh = login(&server, &alice).await;
    assert_eq!(threads_status(&server, &fresh).await, 200);
    let alice_again = Account {
        token: fresh,
        ..alice.clone()
    };
    let mut socket = server.connect(&alice_again).await;
    socket
        .send_json(&json!({"type": "user_message", "content": "What is 2 + 2?"}))
        .await;
    let frames = socket
        .collect_until(|f| f["type"] == "agent_completed" || f["type"] == "agent_error")
        .await;
    assert_eq!(frames.last().unwrap()["type"], "agent_completed");
}

#[tokio::test]
async fn logout_needs_a_valid_token_and_survives_a_restart() {
    let server = TestServer::start().await;
    let carol = server.register("carol").await;
    assert_eq!(logout(&server, "not-a-token").await, 401);
    let response = server
        .http
        .post(server.url("/api/auth/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");

    assert_eq!(logout(&server, &carol.token).await, 204);
    let data_dir = server.stop().await;

    // The revocation is in the store, not only in the old process's memory.
    let server = TestServer::start_in(data_dir, |_| {}).await;
    assert_eq!(threads_status(&server, &carol.token).await, 401);
    let fresh = login(&server, &carol).await;
    assert_eq!(threads_status(&server, &fresh).await, 200);
}
