//! Bounded work per request: `GET /api/threads` and `GET /api/threads/{id}/messages` come in pages, with cursors that walk the whole list exactly once.
#![allow(
    clippy::unwrap_used,
    reason = "a test should panic loudly on a broken assumption"
)]

use cordon_test_support::{Account, TestServer};
use serde_json::{Value, json};

fn ids(page: &Value) -> Vec<String> {
    page.as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Walks `path` page by page (`limit` each) until an empty page; returns every id.
async fn walk(
    server: &TestServer,
    account: &Account,
    path: &str,
    limit: u32,
    next: impl Fn(&[String]) -> String,
) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut cursor = String::new();
    loop {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = format!("{path}{sep}limit={limit}{cursor}");
        let (status, page) = server.get_json(account, &url).await;
        assert_eq!(status, 200, "{url}: {page}");
        let page = ids(&page);
        if page.is_empty() {
            return pages;
        }
        cursor = format!("&before={}", next(&page));
        pages.push(page);
    }
}

#[tokio::test]
async fn threads_and_messages_come_in_pages_that_cover_everything_once() {
    let server = TestServer::start().await;
    let lea = server.register("lea").await;
    let mut ws = server.connect(&lea).await;
    for i in 0..5 {
        ws.send_json(&json!({"type": "user_message", "content": format!("what is {i} + 1?")}))
            .await;
        ws.collect_until(|f| f["type"] == "agent_completed").await;
    }
    let (_, all) = server.get_json(&lea, "/api/threads").await;
    let all = ids(&all);
    assert_eq!(all.len(), 5);
    let pages = walk(&server, &lea, "/api/threads", 2, |page| {
        page.last().unwrap().clone()
    })
    .await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
    assert_eq!(pages.concat(), all, "newest first, each thread once");

    // One thread with three runs: six messages, read backwards two at a time.
    let thread = all.last().unwrap().clone();
    for i in 0..2 {
        ws.send_json(&json!({"type": "user_message", "thread_id": thread, "content": format!("and {i} * 2?")}))
            .await;
        ws.collect_until(|f| f["type"] == "agent_completed").await;
    }
    let path = format!("/api/threads/{thread}/messages");
    let (_, whole) = server.get_json(&lea, &path).await;
    let whole = ids(&whole);
    assert_eq!(whole.len(), 6);
    let pages = walk(&server, &lea, &path, 2, |page| {
        page.first().unwrap().clone()
    })
    .await;
    let mut oldest_first: Vec<String> = Vec::new();
    for page in pages.iter().rev() {
        oldest_first.extend(page.iter().cloned());
    }
    assert_eq!(
        oldest_first, whole,
        "each page oldest first, the pages newest first"
    );

    let (status, body) = server
        .get_json(&lea, &format!("{path}?before=undefined"))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_query");
    let (status, body) = server
        .get_json(&lea, &format!("{path}?before={thread}"))
        .await;
    assert_eq!(
        (status, body),
        (200, json!([])),
        "a cursor of nothing in the thread: an empty page"
    );
}
