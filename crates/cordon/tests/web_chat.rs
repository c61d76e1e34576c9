//! The web chat end to end: a real headless Chromium (chromedriver + WebDriver) against a real `cordon serve` on a loopback port.
//!
//! Without chromedriver these tests print why and pass, unless `CI` is set:
//! then they fail, so CI cannot go green without running them.
#![allow(
    clippy::unwrap_used,
    reason = "tests panic loudly on a broken assumption"
)]

use std::path::PathBuf;
use std::time::Duration;

use cordon_test_support::{Browser, BrowserSession, PASSWORD, TestServer, WsClient};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);
const ENTER: &str = "\u{E007}";
const SHIFT: &str = "\u{E008}";
const RELEASE_MODIFIERS: &str = "\u{E000}";

/// Fills the sign-in form and presses `button` (`#sign-in` or `#sign-up`).
async fn submit_auth(page: &BrowserSession, username: &str, password: &str, button: &str) {
    page.wait_until(
        "the sign-in form",
        WAIT,
        "return !document.getElementById('auth-view').hidden;",
    )
    .await;
    page.js(
        "document.getElementById('auth-username').value = '';
         document.getElementById('auth-password').value = '';",
        vec![],
    )
    .await;
    let find = |id: &'static str| page.find(fantoccini::Locator::Id(id));
    find("auth-username")
        .await
        .unwrap()
        .send_keys(username)
        .await
        .unwrap();
    find("auth-password")
        .await
        .unwrap()
        .send_keys(password)
        .await
        .unwrap();
    page.find(fantoccini::Locator::Css(button))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Opens the chat and signs up (or in) `username`; returns when the socket is connected.
async fn open_as(page: &BrowserSession, server: &TestServer, username: &str, button: &str) {
    page.goto(&server.url("/")).await.unwrap();
    submit_auth(page, username, PASSWORD, button).await;
    wait_connected(page).await;
}

async fn wait_connected(page: &BrowserSession) {
    page.wait_until(
        "the chat, connected",
        WAIT,
        "return !document.getElementById('chat-view').hidden
             && document.getElementById('conn').dataset.state === 'connected';",
    )
    .await;
}

/// Types `text` into the composer and presses Enter.
async fn send(page: &BrowserSession, text: &str) {
    let composer = page.find(fantoccini::Locator::Id("message")).await.unwrap();
    composer.send_keys(&format!("{text}{ENTER}")).await.unwrap();
}

async fn wait_turns(page: &BrowserSession, status: &str, count: usize) {
    let script = format!(
        "return document.querySelectorAll('#messages .turn[data-status=\"{status}\"]').length >= {count};"
    );
    page.wait_until(&format!("{count} {status} run(s)"), WAIT, &script)
        .await;
}

async fn text_of(page: &BrowserSession, selector: &str) -> String {
    let script = "const n = document.querySelector(arguments[0]); return n ? n.textContent : null;";
    match page.js(script, vec![json!(selector)]).await {
        Value::String(text) => text,
        other => panic!("{selector} not found ({other})"),
    }
}

async fn thread_titles(page: &BrowserSession) -> Vec<String> {
    let titles = page
        .js(
            "return [...document.querySelectorAll('#thread-list .thread-link')].map(b => b.textContent);",
            vec![],
        )
        .await;
    serde_json::from_value(titles).unwrap()
}

/// Waits for a run in `status` whose summary says so.
async fn wait_summary(page: &BrowserSession, status: &str, label: &str) {
    let script = format!(
        "return [...document.querySelectorAll('#messages .turn[data-status={status}] summary')]
             .some(s => s.textContent.startsWith('{label}'));"
    );
    page.wait_until(&format!("a {status} run that says so"), WAIT, &script)
        .await;
}

/// The event-log cursor the page keeps in sessionStorage.
async fn cursor_of(page: &BrowserSession) -> Value {
    page.js(
        "return Number(Object.entries(sessionStorage).find(([k]) => k.startsWith('cordon.cursor.'))[1]);",
        vec![],
    )
    .await
}

fn target_file(name: &str) -> PathBuf {
    let target = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target");
    std::fs::create_dir_all(&target).unwrap();
    target.join(name)
}

#[tokio::test]
async fn sign_up_run_a_tool_see_it_live_and_after_a_reload() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server =
        TestServer::start_with(|c| c.offline_step_delay = Duration::from_millis(150)).await;
    let page = browser.session().await;
    open_as(&page, &server, "alice", "#sign-up").await;

    // Shift+Enter is a newline, not a send.
    let composer = page.find(fantoccini::Locator::Id("message")).await.unwrap();
    composer
        .send_keys(&format!("one{SHIFT}{ENTER}{RELEASE_MODIFIERS}two"))
        .await
        .unwrap();
    assert_eq!(composer.prop("value").await.unwrap().unwrap(), "one\ntwo");
    assert_eq!(
        page.js(
            "return document.querySelectorAll('#messages .turn').length;",
            vec![]
        )
        .await,
        json!(0)
    );
    composer.clear().await.unwrap();

    send(&page, "What is (2 + 3) * 4?").await;
    // The tool call shows while the run is still going.
    page.wait_until(
        "the tool call in the timeline",
        WAIT,
        "const t = document.querySelector('#messages .turn .step.tool .tool-name');
         return !!t && t.textContent === 'calculator';",
    )
    .await;
    wait_turns(&page, "completed", 1).await;
    let turn = text_of(&page, "#messages .turn").await;
    assert!(turn.contains("What is (2 + 3) * 4?"), "{turn}");
    assert!(
        turn.contains(r#"{"expression":"(2 + 3) * 4"}"#),
        "arguments: {turn}"
    );
    assert!(turn.contains(r#""value":20"#), "result: {turn}");
    assert!(turn.contains("done in"), "duration: {turn}");
    assert!(turn.contains("triage"), "thinking steps: {turn}");
    assert_eq!(
        text_of(&page, "#messages .turn .answer").await,
        "(2 + 3) * 4 = 20."
    );
    assert_eq!(thread_titles(&page).await, vec!["What is (2 + 3) * 4?"]);
    assert_eq!(
        text_of(&page, "#thread-title").await,
        "What is (2 + 3) * 4?"
    );

    let screenshot = page.screenshot().await.unwrap();
    std::fs::write(target_file("web-chat.png"), &screenshot).unwrap();

    // A reload keeps the session and reopens the thread from the REST API.
    page.refresh().await.unwrap();
    wait_connected(&page).await;
    wait_turns(&page, "completed", 1).await;
    let turn = text_of(&page, "#messages .turn").await;
    assert!(
        turn.contains("What is (2 + 3) * 4?") && turn.contains("calculator"),
        "{turn}"
    );
    assert_eq!(
        text_of(&page, "#messages .turn .answer").await,
        "(2 + 3) * 4 = 20."
    );
    assert_eq!(thread_titles(&page).await, vec!["What is (2 + 3) * 4?"]);

    // A 360 px phone: nothing overflows sideways, the threads are one tap away.
    page.set_window_size(360, 780).await.unwrap();
    page.wait_until(
        "the phone layout",
        WAIT,
        "return getComputedStyle(document.getElementById('toggle-sidebar')).display !== 'none';",
    )
    .await;
    let overflow = page
        .js(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
            vec![],
        )
        .await;
    assert_eq!(overflow, json!(0), "horizontal overflow at 360 px");
    let mobile = page.screenshot().await.unwrap();
    std::fs::write(target_file("web-chat-mobile.png"), &mobile).unwrap();

    // Sign out returns to the sign-in form and ends the token on the server.
    page.set_window_size(1280, 900).await.unwrap();
    let token = page
        .js(
            "return JSON.parse(localStorage.getItem('cordon.session')).token;",
            vec![],
        )
        .await;
    let token = token.as_str().unwrap().to_owned();
    page.find(fantoccini::Locator::Id("sign-out"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    page.wait_until(
        "the sign-in form after signing out",
        WAIT,
        "return !document.getElementById('auth-view').hidden
             && document.getElementById('chat-view').hidden;",
    )
    .await;
    let revoked = async {
        loop {
            let status = server
                .http
                .get(server.url("/api/threads"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .status();
            if status == 401 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(WAIT, revoked)
        .await
        .expect("the signed-out token is refused");
    page.close().await;
}

#[tokio::test]
async fn two_users_see_only_their_own_and_two_tabs_see_every_run() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server = TestServer::start().await;
    let alice = browser.session().await;
    let bob = browser.session().await;
    let alice2 = browser.session().await;
    open_as(&alice, &server, "alice", "#sign-up").await;
    open_as(&bob, &server, "bob", "#sign-up").await;
    open_as(&alice2, &server, "alice", "#sign-in").await;

    send(&alice, "What is 6 * 7?").await;
    send(&bob, "What is 1 + 1?").await;
    wait_turns(&alice, "completed", 1).await;
    wait_turns(&bob, "completed", 1).await;
    assert_eq!(text_of(&alice, "#messages .answer").await, "6 * 7 = 42.");
    assert_eq!(text_of(&bob, "#messages .answer").await, "1 + 1 = 2.");

    // alice's second tab got the new thread live; opening it loads the run.
    alice2
        .wait_until(
            "alice's thread in her second tab",
            WAIT,
            "return document.querySelectorAll('#thread-list .thread-link').length === 1;",
        )
        .await;
    alice2
        .find(fantoccini::Locator::Css("#thread-list .thread-link"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_turns(&alice2, "completed", 1).await;

    // A run started in one tab shows live in the other, user message included.
    send(&alice, "And what is 7 * 8?").await;
    wait_turns(&alice2, "completed", 2).await;
    let second = alice2
        .js(
            "const t = document.querySelectorAll('#messages .turn')[1]; return t.textContent;",
            vec![],
        )
        .await;
    let second = second.as_str().unwrap();
    assert!(
        second.contains("And what is 7 * 8?") && second.contains("7 * 8 = 56."),
        "{second}"
    );

    assert_eq!(thread_titles(&alice).await, vec!["What is 6 * 7?"]);
    assert_eq!(thread_titles(&alice2).await, vec!["What is 6 * 7?"]);
    assert_eq!(thread_titles(&bob).await, vec!["What is 1 + 1?"]);
    let bob_sees = text_of(&bob, "body").await;
    assert!(
        !bob_sees.contains("6 * 7") && !bob_sees.contains("7 * 8"),
        "{bob_sees}"
    );
    let alice_sees = text_of(&alice, "body").await;
    assert!(!alice_sees.contains("1 + 1"), "{alice_sees}");
    for page in [alice, bob, alice2] {
        page.close().await;
    }

    // Clear messages for a wrong password, a taken username and an expired session.
    let stranger = browser.session().await;
    stranger.goto(&server.url("/")).await.unwrap();
    submit_auth(&stranger, "alice", "not her password", "#sign-in").await;
    stranger
        .wait_until(
            "the wrong-password message",
            WAIT,
            "return document.getElementById('auth-error').textContent === 'Wrong username or password.';",
        )
        .await;
    submit_auth(&stranger, "alice", PASSWORD, "#sign-up").await;
    stranger
        .wait_until(
            "the taken-username message",
            WAIT,
            "return document.getElementById('auth-error').textContent.includes('already taken');",
        )
        .await;
    stranger
        .js(
            "localStorage.setItem('cordon.session', JSON.stringify({
                token: 'expired.or.revoked', expires_at: '2999-01-01T00:00:00Z',
                user: { id: 'x', username: 'ghost' } }));",
            vec![],
        )
        .await;
    stranger.refresh().await.unwrap();
    stranger
        .wait_until(
            "the expired-session message on the sign-in form",
            WAIT,
            "return !document.getElementById('auth-view').hidden
                 && document.getElementById('auth-error').textContent.includes('session expired');",
        )
        .await;
    stranger.close().await;
}

#[tokio::test]
async fn the_stop_button_cancels_a_slow_run_and_the_composer_stays_usable() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server =
        TestServer::start_with(|c| c.offline_step_delay = Duration::from_millis(1500)).await;
    let page = browser.session().await;
    open_as(&page, &server, "carol", "#sign-up").await;

    send(&page, "What is 2 + 2?").await;
    page.wait_until(
        "the stop button",
        WAIT,
        "return !document.getElementById('stop').hidden;",
    )
    .await;
    page.find(fantoccini::Locator::Id("stop"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_turns(&page, "cancelled", 1).await;
    let error = text_of(&page, "#messages .turn .run-error").await;
    assert!(error.contains("cancelled"), "{error}");
    assert_eq!(text_of(&page, "#messages .turn .answer").await, "");
    page.wait_until(
        "the stop button to go away",
        WAIT,
        "return document.getElementById('stop').hidden;",
    )
    .await;

    // The composer still works: the next message runs to the end.
    send(&page, "What is 3 + 3?").await;
    wait_turns(&page, "completed", 1).await;
    assert_eq!(
        page.js(
            "return document.querySelectorAll('#messages .answer')[1].textContent;",
            vec![]
        )
        .await,
        json!("3 + 3 = 6.")
    );
    page.close().await;
}

#[tokio::test]
async fn after_a_server_restart_the_page_reconnects_and_the_thread_is_complete() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server = TestServer::start().await;
    let addr = server.addr;
    let page = browser.session().await;
    open_as(&page, &server, "dave", "#sign-up").await;
    send(&page, "What is 5 * 5?").await;
    wait_turns(&page, "completed", 1).await;
    let thread_id = page.js("return location.hash.slice(1);", vec![]).await;
    let thread_id = thread_id.as_str().unwrap().to_owned();
    assert!(!thread_id.is_empty());

    // The server goes away (its sockets close): the page says so.
    let data_dir = server.stop().await;
    page.wait_until(
        "the reconnecting indicator",
        WAIT,
        "const s = document.getElementById('conn').dataset.state;
         return s === 'reconnecting' || s === 'offline';",
    )
    .await;
    assert_eq!(text_of(&page, "#conn-label").await, "Reconnecting…");

    // Back on the same port; a run happens in the thread from another client right away.
    let server = TestServer::start_on(addr, data_dir, |_| {}).await;
    let dave = server.login("dave").await;
    let mut other = WsClient::connect(&server.ws_url(), &dave.token).await;
    other
        .send_json(
            &json!({ "type": "user_message", "thread_id": thread_id, "content": "What is 9 - 4?" }),
        )
        .await;
    loop {
        let frame = other.next_json().await;
        if frame["type"] == "agent_completed" {
            break;
        }
        assert_ne!(frame["type"], "agent_error", "{frame}");
    }

    // The page recovers and shows both runs, whether it saw the second live or not.
    wait_connected(&page).await;
    wait_turns(&page, "completed", 2).await;
    let all = text_of(&page, "#messages").await;
    assert!(
        all.contains("What is 5 * 5?") && all.contains("5 * 5 = 25."),
        "{all}"
    );
    assert!(
        all.contains("What is 9 - 4?") && all.contains("9 - 4 = 5."),
        "{all}"
    );
    assert_eq!(thread_titles(&page).await, vec!["What is 5 * 5?"]);
    page.close().await;
    server.stop().await;
}

#[tokio::test]
async fn hostile_text_renders_as_text_under_a_strict_csp() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server = TestServer::start().await;
    let response = server.http.get(server.url("/")).send().await.unwrap();
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("default-src 'self'"),
        "{csp}"
    );
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");

    let page = browser.session().await;
    open_as(&page, &server, "mallory", "#sign-up").await;
    let hostile = "<img src=x onerror=alert(1)> <script>window.pwned = 1</script> **not bold**";
    send(&page, hostile).await;
    wait_turns(&page, "completed", 1).await;
    assert_eq!(text_of(&page, "#messages .bubble.user").await, hostile);
    assert_eq!(thread_titles(&page).await.len(), 1);
    let injected = page
        .js(
            "return document.querySelectorAll('#messages img, #messages script, #thread-list img').length;",
            vec![],
        )
        .await;
    assert_eq!(injected, json!(0));
    assert_eq!(
        page.js("return window.pwned === undefined;", vec![]).await,
        json!(true)
    );

    // `agent_delta` text streams into the answer as text; `agent_completed` replaces it
    // with the authoritative answer through the safe Markdown subset.
    let streamed = page
        .execute_async(
            "const done = arguments[arguments.length - 1];
             import('/assets/render.js').then((m) => {
               const view = new m.RunView({ userText: 'q' });
               document.body.append(view.root);
               const seen = [];
               view.apply({ type: 'agent_started', seq: 1 });
               view.apply({ type: 'agent_delta', seq: 2, agent: 'assistant', text: 'Hel' });
               seen.push(view.answer.textContent);
               view.apply({ type: 'agent_delta', seq: 3, agent: 'assistant', text: 'lo <b>x</b>' });
               seen.push(view.answer.textContent);
               view.apply({ type: 'agent_completed', seq: 4, answer: 'Hello `<b>x</b>`' });
               seen.push(view.answer.textContent);
               const result = { seen, code: view.answer.querySelectorAll('code').length,
                 b: view.answer.querySelectorAll('b').length, status: view.root.dataset.status,
                 live: view.answer.getAttribute('aria-live') };
               view.root.remove();
               done(result);
             }, (e) => done(String(e)));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        streamed,
        json!({ "seen": ["Hel", "Hello <b>x</b>", "Hello <b>x</b>"], "code": 1, "b": 0,
                "status": "completed", "live": "polite" })
    );

    // The CSP is enforced: an inline script added to the page does not run.
    let inline_ran = page
        .js(
            "const s = document.createElement('script');
             s.textContent = 'window.inlineRan = true';
             document.body.append(s);
             return window.inlineRan === true;",
            vec![],
        )
        .await;
    assert_eq!(inline_ran, json!(false), "the CSP let an inline script run");
    page.close().await;
}

#[tokio::test]
async fn a_busy_thread_queues_or_interrupts_and_a_reload_resumes_the_live_run() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server =
        TestServer::start_with(|c| c.offline_step_delay = Duration::from_millis(600)).await;
    let page = browser.session().await;
    open_as(&page, &server, "erin", "#sign-up").await;

    // A message sent while the thread's run is going is queued by default.
    send(&page, "What is 2 + 2?").await;
    wait_turns(&page, "running", 1).await;
    page.wait_until(
        "the double-texting choice",
        WAIT,
        "return !document.getElementById('multitask').hidden;",
    )
    .await;
    send(&page, "What is 3 + 3?").await;
    wait_summary(&page, "queued", "Queued").await;
    wait_turns(&page, "completed", 2).await;

    // Or it interrupts the run in progress, which says so.
    send(&page, "What is 5 + 5?").await;
    wait_turns(&page, "running", 1).await;
    page.js(
        "document.getElementById('multitask').value = 'interrupt';",
        vec![],
    )
    .await;
    send(&page, "What is 6 + 6?").await;
    wait_summary(&page, "interrupted", "Interrupted").await;
    wait_turns(&page, "completed", 3).await;

    // A reload mid-run resumes the log after the last seq seen: the run goes on live.
    send(&page, "What is 7 + 7?").await;
    wait_turns(&page, "running", 1).await;
    let cursor = cursor_of(&page).await;
    assert!(cursor.as_u64().unwrap() > 0, "the cursor is kept: {cursor}");
    page.js("location.reload();", vec![]).await;
    wait_connected(&page).await;
    let resumed = page
        .js(
            "return Number(document.getElementById('conn').dataset.resumedFrom);",
            vec![],
        )
        .await;
    assert!(
        resumed.as_u64() >= cursor.as_u64(),
        "the reloaded page resumed after {resumed}, not after {cursor}"
    );
    wait_turns(&page, "completed", 4).await;
    let all = text_of(&page, "#messages").await;
    assert!(all.contains("7 + 7 = 14."), "{all}");
    let after = cursor_of(&page).await;
    assert!(
        after.as_u64() > cursor.as_u64(),
        "resumed and advanced: {cursor} -> {after}"
    );
    page.close().await;
}

#[tokio::test]
async fn a_call_that_needs_approval_shows_its_arguments_and_runs_when_approved() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server = TestServer::start_with(|c| {
        c.engine.approval_tools = ["calculator".to_owned()].into();
    })
    .await;
    let page = browser.session().await;
    open_as(&page, &server, "quinn", "#sign-up").await;

    send(&page, "What is 6 * 7?").await;
    wait_summary(&page, "waiting_approval", "Waiting for your approval").await;
    let pending = text_of(&page, "#messages .step.approval").await;
    assert!(pending.contains("calculator"), "{pending}");
    assert!(
        pending.contains("6 * 7"),
        "the arguments are shown: {pending}"
    );
    assert!(pending.contains("needs your approval"), "{pending}");
    page.find(fantoccini::Locator::Css(
        "#messages .step.approval button[data-decision=approve]",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    wait_turns(&page, "completed", 1).await;
    assert_eq!(
        text_of(&page, "#messages .turn .answer").await,
        "6 * 7 = 42."
    );
    let resolved = text_of(&page, "#messages .step.approval .tool-state").await;
    assert_eq!(resolved, "approved");
    assert_eq!(
        page.js(
            "return document.querySelectorAll('#messages .approval-actions').length;",
            vec![]
        )
        .await,
        json!(0),
        "the buttons go once answered"
    );

    // Rejected: the tool never runs and the run still answers.
    send(&page, "What is 1 + 1?").await;
    wait_summary(&page, "waiting_approval", "Waiting for your approval").await;
    page.find(fantoccini::Locator::Css(
        "#messages .turn[data-status=waiting_approval] button[data-decision=reject]",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    wait_turns(&page, "completed", 2).await;
    assert_eq!(
        page.js(
            "return document.querySelectorAll('#messages .step.approval[data-state=rejected]').length;",
            vec![]
        )
        .await,
        json!(1)
    );
    page.close().await;
}

#[tokio::test]
async fn the_sidebar_shows_the_users_usage_and_what_is_left_of_the_budget() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server = TestServer::start_with(|config| {
        config.engine.budget.daily_tokens = Some(100_000);
        config.engine.budget.monthly_usd = Some(5.0);
    })
    .await;
    let page = browser.session().await;
    open_as(&page, &server, "alice", "#sign-up").await;
    page.wait_until(
        "the usage panel",
        WAIT,
        "const day = document.querySelector('#budget [data-period=day]');
         return !!day && day.textContent.includes('0 tokens');",
    )
    .await;
    send(&page, "hello there").await;
    wait_turns(&page, "completed", 1).await;
    // The panel reloads when the run ends: some tokens used, the rest left of 100,000.
    page.wait_until(
        "the usage after the run",
        WAIT,
        "const day = document.querySelector('#budget [data-period=day]').textContent;
         return !day.startsWith('Today: 0 tokens') && day.includes('of 100,000 tokens left');",
    )
    .await;
    let month = text_of(&page, "#budget [data-period=month]").await;
    assert!(month.contains("of $5.00 left"), "{month}");
    let day = text_of(&page, "#budget [data-period=day]").await;
    assert!(day.contains("resets"), "{day}");
    page.close().await;
}
