//! Accounts and tokens: register, login, and every route and the socket refusing bad tokens.
#![allow(
    clippy::unwrap_used,
    reason = "a test should panic loudly on a broken assumption"
)]

use cordon_test_support::TestServer;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite;

async fn post(server: &TestServer, path: &str, body: Value) -> (u16, Value) {
    let response = server
        .http
        .post(server.url(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn register_login_and_their_errors() {
    let server = TestServer::start().await;
    let account = server.register("lena").await;
    assert!(!account.token.is_empty());

    let (status, body) = post(
        &server,
        "/api/auth/register",
        json!({"username": "lena", "password": "another password"}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("username_taken"))
    );

    let (status, body) = post(
        &server,
        "/api/auth/login",
        json!({"username": "lena", "password": "correct horse battery"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["user"]["username"], "lena");
    assert_eq!(body["user_id"], account.user_id.as_str());
    assert_eq!(body["token_type"], "Bearer");

    let wrong = post(
        &server,
        "/api/auth/login",
        json!({"username": "lena", "password": "wrong password"}),
    )
    .await;
    let unknown = post(
        &server,
        "/api/auth/login",
        json!({"username": "nobody", "password": "wrong password"}),
    )
    .await;
    assert_eq!(wrong.0, 401);
    assert_eq!(
        wrong, unknown,
        "unknown user and wrong password look the same"
    );

    let (status, body) = post(
        &server,
        "/api/auth/register",
        json!({"username": "x", "password": "long enough"}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_username"))
    );
    let (status, body) = post(
        &server,
        "/api/auth/register",
        json!({"username": "maya", "password": "short"}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_password"))
    );
    let response = server
        .http
        .post(server.url("/api/auth/register"))
        .body("{oops")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_body");
}

#[tokio::test]
async fn bad_tokens_get_401_json_everywhere() {
    let server = TestServer::start().await;
    let account = server.register("nina").await;
    let tampered = format!("{}x", account.token);
    for token in [None, Some("garbage"), Some(tampered.as_str())] {
        let mut request = server.http.get(server.url("/api/threads"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401);
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body,
            json!({"error": {"code": "unauthorized", "message": "missing, invalid or expired token"}})
        );
    }
    // The socket refuses the upgrade with 401 too.
    let error = tokio_tungstenite::connect_async(format!("{}?token=garbage", server.ws_url()))
        .await
        .unwrap_err();
    match error {
        tungstenite::Error::Http(response) => assert_eq!(response.status(), 401),
        other => panic!("expected an HTTP 401, got {other:?}"),
    }
    // The query-parameter token works for browsers.
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("{}?token={}", server.ws_url(), account.token))
            .await
            .unwrap();
    use futures_util::StreamExt;
    let greeting = ws.next().await.unwrap().unwrap();
    assert!(
        greeting
            .to_text()
            .unwrap()
            .contains("connection_established")
    );
    // A cross-site page may not open a socket with the user's token.
    let mut request = tungstenite::client::IntoClientRequest::into_client_request(format!(
        "{}?token={}",
        server.ws_url(),
        account.token
    ))
    .unwrap();
    request
        .headers_mut()
        .insert("origin", "http://evil.example".parse().unwrap());
    match tokio_tungstenite::connect_async(request).await.unwrap_err() {
        tungstenite::Error::Http(response) => assert_eq!(response.status(), 403),
        other => panic!("expected an HTTP 403, got {other:?}"),
    }
}

#[tokio::test]
async fn health_and_readiness() {
    let server = TestServer::start().await;
    let health: Value = server
        .http
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    let ready = server.http.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let missing = server.http.get(server.url("/nope")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.headers()["x-content-type-options"], "nosniff");
}

#[tokio::test]
async fn repeated_failed_logins_are_throttled_per_account() {
    let server = TestServer::start().await;
    server.register("quinn").await;
    server.register("rosa").await;
    for _ in 0..5 {
        let (status, _) = post(
            &server,
            "/api/auth/login",
            json!({"username": "quinn", "password": "wrong password"}),
        )
        .await;
        assert_eq!(status, 401);
    }
    // Even the right password is refused now, without revealing whether it was right.
    let response = server
        .http
        .post(server.url("/api/auth/login"))
        .json(&json!({"username": "QUINN", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        retry_after > 0 && retry_after <= 60,
        "a delay, not a lockout"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_attempts");
    // Another account from the same address is not locked out by quinn's failures.
    let (status, _) = post(
        &server,
        "/api/auth/login",
        json!({"username": "rosa", "password": "correct horse battery"}),
    )
    .await;
    assert_eq!(status, 200);
}
