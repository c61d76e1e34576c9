//! Sign-out: `POST /api/auth/logout` ends every token of the user, on every request and socket, and nobody else's.
#![allow(
    clippy::unwrap_used,
    reason = "a test should panic loudly on a broken assumption"
)]

use std::time::{Duration, Instant};

use cordon_test_support::{PASSWORD, TestServer, is_terminal};
use futures_util::StreamExt;
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
    let phone = server.login("alice").await.token;
    let mut laptop_socket = server.connect(&alice).await;
    let mut bob_socket = server.connect(&bob).await;

    assert_eq!(logout(&server, &phone).await, 204);

    // Every token alice had is void: REST, the upgrade, and a second logout.
    for token in [&laptop, &phone] {
        assert_eq!(threads_status(&server, token).await, 401);
        assert_eq!(upgrade_status(&server, token).await, 401);
        assert_eq!(logout(&server, token).await, 401);
    }
    // The refusal says why, so a client can tell its user.
    let (status, body) = server.get_json(&alice, "/api/threads").await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (401, &json!("signed_out"))
    );

    // Her open socket is closed with 1008 and the reason.
    let closed = laptop_socket.closed(Duration::from_secs(5)).await;
    assert_eq!(closed, Some((1008, "signed out".to_owned())));

    // Bob is untouched: his socket still answers and his token still works.
    bob_socket.send_json(&json!({"type": "ping"})).await;
    assert_eq!(bob_socket.next_json().await["type"], "pong");
    assert_eq!(threads_status(&server, &bob.token).await, 200);

    // Signing in again gives a token that works everywhere.
    let alice_again = server.login("alice").await;
    assert_eq!(threads_status(&server, &alice_again.token).await, 200);
    let mut socket = server.connect(&alice_again).await;
    socket
        .send_json(&json!({"type": "user_message", "content": "What is 2 + 2?"}))
        .await;
    let frames = socket.collect_until(is_terminal).await;
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
    let fresh = server.login(&carol.username).await;
    assert_eq!(threads_status(&server, &fresh.token).await, 200);
}

/// Opens 40 sockets with `token` while signing it out; every socket that got
/// through the upgrade must be closed with 1008 (`None` when one stays open).
async fn sockets_racing_a_logout(server: &TestServer, token: &str) -> Option<usize> {
    let url = format!("{}?token={token}", server.ws_url());
    let openers: Vec<_> = (0..40)
        .map(|_| tokio::spawn(tokio_tungstenite::connect_async(url.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(logout(server, token).await, 204);
    let mut upgraded = 0;
    for opener in openers {
        // Refused at the upgrade (401), or upgraded and then closed with 1008.
        let Ok((mut socket, _)) = opener.await.unwrap() else {
            continue;
        };
        upgraded += 1;
        let closed = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(Ok(message)) = socket.next().await {
                if let tungstenite::Message::Close(frame) = message {
                    return frame.map(|f| u16::from(f.code));
                }
            }
            None
        })
        .await
        .ok()?;
        assert_eq!(closed, Some(1008));
    }
    Some(upgraded)
}

#[tokio::test]
async fn sockets_opening_while_a_logout_runs_are_closed_too() {
    // No heartbeat within the test: only the check right after registering can close them.
    let server = TestServer::start_with(|c| c.heartbeat_interval = Duration::from_secs(120)).await;
    let mut token = server.register("erin").await.token;
    for round in 0..10 {
        let upgraded = sockets_racing_a_logout(&server, &token).await;
        assert!(
            upgraded.is_some(),
            "round {round}: a socket opened with a signed-out token stayed open"
        );
        token = server.login("erin").await.token;
    }
}

/// Starts a login of `username`, then signs out with `old_token` while the
/// login is still hashing. Returns the login's token, or `None` when the login
/// answered first (the race did not happen).
async fn login_racing_a_logout(
    server: &TestServer,
    username: &str,
    old_token: &str,
) -> Option<String> {
    let http = server.http.clone();
    let url = server.url("/api/auth/login");
    let body = json!({"username": username, "password": PASSWORD});
    let login = tokio::spawn(async move {
        let response = http.post(url).json(&body).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        (body["token"].as_str().unwrap().to_owned(), Instant::now())
    });
    tokio::time::sleep(Duration::from_millis(2)).await;
    assert_eq!(logout(server, old_token).await, 204);
    let logged_out = Instant::now();
    let (token, logged_in) = login.await.unwrap();
    (logged_in > logged_out).then_some(token)
}

#[tokio::test]
async fn a_login_that_overlaps_a_logout_gets_a_working_token() {
    let server = TestServer::start().await;
    let mut token = server.register("frank").await.token;
    let mut raced = 0;
    for _ in 0..5 {
        let Some(fresh) = login_racing_a_logout(&server, "frank", &token).await else {
            // The login answered before the logout: its token is rightly void; try again.
            token = server.login("frank").await.token;
            continue;
        };
        raced += 1;
        assert_eq!(threads_status(&server, &token).await, 401);
        assert_eq!(
            threads_status(&server, &fresh).await,
            200,
            "a login that finishes after a logout must give a working token"
        );
        token = fresh;
    }
    assert!(
        raced > 0,
        "the logout never landed during a login's hashing"
    );
}
