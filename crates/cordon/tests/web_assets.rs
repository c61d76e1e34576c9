//! The web chat's HTTP side without a browser: embedded assets, content types, caching, security headers, the size budget, and no token in the logs.
#![allow(
    clippy::unwrap_used,
    reason = "tests panic loudly on a broken assumption"
)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use cordon_server::web::{CONTENT_SECURITY_POLICY_VALUE, asset_sizes};
use cordon_test_support::TestServer;
use serde_json::Value;

const ASSET_BUDGET_BYTES: usize = 150 * 1024;

async fn get(server: &TestServer, path: &str) -> reqwest::Response {
    server.http.get(server.url(path)).send().await.unwrap()
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .map_or("", |v| v.to_str().unwrap())
}

#[tokio::test]
async fn the_page_and_assets_are_served_with_types_caching_and_security_headers() {
    let server = TestServer::start().await;

    let page = get(&server, "/").await;
    assert_eq!(page.status(), 200);
    assert_eq!(header(&page, "content-type"), "text/html; charset=utf-8");
    assert_eq!(
        header(&page, "content-security-policy"),
        CONTENT_SECURITY_POLICY_VALUE
    );
    assert_eq!(header(&page, "x-content-type-options"), "nosniff");
    assert_eq!(header(&page, "cache-control"), "no-cache");
    let etag = header(&page, "etag").to_owned();
    assert!(etag.starts_with('"') && etag.len() > 2, "etag {etag}");
    let body = page.text().await.unwrap();
    assert!(body.contains(r#"<script type="module" src="/assets/app.js">"#));

    let revalidated = server
        .http
        .get(server.url("/"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(revalidated.status(), 304);

    for (path, content_type) in [
        ("/assets/app.js", "text/javascript; charset=utf-8"),
        ("/assets/socket.js", "text/javascript; charset=utf-8"),
        ("/assets/app.css", "text/css; charset=utf-8"),
    ] {
        let asset = get(&server, path).await;
        assert_eq!(asset.status(), 200, "{path}");
        assert_eq!(header(&asset, "content-type"), content_type, "{path}");
        assert_eq!(header(&asset, "x-content-type-options"), "nosniff");
    }

    // Unknown assets and unknown API paths stay JSON 404s, with the headers too.
    for path in ["/assets/nope.js", "/api/nope", "/assets/index.html"] {
        let missing = get(&server, path).await;
        assert_eq!(missing.status(), 404, "{path}");
        assert!(!header(&missing, "content-security-policy").is_empty());
        let body: Value = missing.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found", "{path}");
    }
    let api = get(&server, "/api/threads").await;
    assert_eq!(api.status(), 401);
    assert_eq!(
        header(&api, "content-security-policy"),
        CONTENT_SECURITY_POLICY_VALUE
    );
}

#[test]
fn the_assets_fit_the_budget_and_never_inject_html() {
    let sizes = asset_sizes();
    let total: usize = sizes.iter().map(|(_, size)| size).sum();
    assert!(
        total < ASSET_BUDGET_BYTES,
        "web assets are {total} bytes, over the {ASSET_BUDGET_BYTES} budget: {sizes:?}"
    );
    let web = concat!(env!("CARGO_MANIFEST_DIR"), "/../../web");
    for (name, _) in &sizes {
        let text = std::fs::read_to_string(format!("{web}/{name}")).unwrap();
        if name.ends_with(".js") {
            for sink in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
            ] {
                assert!(!text.contains(sink), "{name} uses {sink}");
            }
        }
        if name.ends_with(".html") {
            // CSP forbids inline script and style: the page must not need them.
            assert!(!text.contains(" style="), "{name} has an inline style");
            assert!(!text.contains("<style"), "{name} has a style element");
            assert!(
                text.matches("<script").count()
                    == text.matches("<script type=\"module\" src=").count(),
                "{name} has an inline script"
            );
            assert!(!text.contains(" onclick="), "{name} has an inline handler");
        }
    }
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Browsers put the token in the `/ws` query string; cordon's logs must never contain it.
#[tokio::test]
async fn a_token_in_the_query_string_never_reaches_the_logs() {
    let logs = Captured::default();
    let writer = logs.clone();
    // Everything the server side logs, at the most verbose level; the test's own
    // HTTP and WebSocket clients (which do see the URL) are left out.
    let filter = "trace,reqwest=off,hyper_util::client=off,tungstenite=off,tokio_tungstenite=off";
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let server = TestServer::start().await;
    let account = server.register("tokenlog").await;
    let threads = get(&server, &format!("/api/threads?token={}", account.token)).await;
    assert_eq!(
        threads.status(),
        401,
        "REST routes take no token in the URL"
    );
    let url = format!("{}?token={}", server.ws_url(), account.token);
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let _ = futures_util::StreamExt::next(&mut socket).await;
    drop(socket);
    server.stop().await;

    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("/api/threads") && logs.contains("/ws"),
        "the capture works: {logs}"
    );
    assert!(
        !logs.contains(&account.token),
        "the token leaked into the logs"
    );
    assert!(!logs.contains("token="), "a query string reached the logs");
}
