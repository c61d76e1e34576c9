//! `/api/me/secrets`: each user's own, stored sealed (the plaintext is in no file of the data dir), listed by name only, never returned.
#![allow(
    clippy::unwrap_used,
    reason = "a test should panic loudly on a broken assumption"
)]

use cordon_test_support::TestServer;
use reqwest::Method;
use serde_json::json;

const VALUE: &str = "ghp_plaintext-that-must-never-be-stored-0123456789";

#[tokio::test]
async fn secrets_are_stored_sealed_listed_by_name_and_the_owners_only() {
    let server = TestServer::start().await;
    let (alice, bob) = (server.register("alice").await, server.register("bob").await);
    let put = |name: &str| format!("/api/me/secrets/{name}");
    let (status, _) = server
        .request_json(
            Method::PUT,
            &alice,
            &put("github"),
            Some(&json!({"value": VALUE})),
        )
        .await;
    assert_eq!(status, 204);

    let (status, listed) = server.get_json(&alice, "/api/me/secrets").await;
    assert_eq!(status, 200);
    assert_eq!(listed["secrets"][0]["name"], "github");
    assert!(listed["secrets"][0]["updated_at"].is_string());
    assert!(
        !listed.to_string().contains(VALUE),
        "values are never returned"
    );
    let (_, theirs) = server.get_json(&bob, "/api/me/secrets").await;
    assert_eq!(
        theirs,
        json!({"secrets": []}),
        "another user's secret is not listed"
    );
    let (status, _) = server
        .request_json(Method::DELETE, &bob, &put("github"), None)
        .await;
    assert_eq!(status, 404, "another user's secret is as missing as none");

    for (name, body, code) in [
        ("a.b", json!({"value": "x"}), "invalid_secret_name"),
        ("ok", json!({"value": ""}), "invalid_secret"),
        (
            "ok",
            json!({"value": "x".repeat(8 * 1024 + 1)}),
            "invalid_secret",
        ),
        ("ok", json!({"value": "x", "extra": 1}), "invalid_body"),
    ] {
        let (status, error) = server
            .request_json(Method::PUT, &alice, &put(name), Some(&body))
            .await;
        assert_eq!((status, error["error"]["code"].as_str()), (400, Some(code)));
    }
    let (status, _) = server
        .request_json(Method::PUT, &alice, &put("x"), Some(&json!({"value": "v"})))
        .await;
    assert_eq!(status, 204);
    let (status, _) = server
        .request_json(Method::DELETE, &alice, &put("x"), None)
        .await;
    assert_eq!(status, 204);
    let (_, listed) = server.get_json(&alice, "/api/me/secrets").await;
    assert_eq!(listed["secrets"].as_array().unwrap().len(), 1);

    let dir = server.stop().await;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap_or_default();
        assert!(
            !bytes.windows(VALUE.len()).any(|w| w == VALUE.as_bytes()),
            "{} holds the secret in plain text",
            path.display()
        );
    }
}
