//! Budgets and the admin role through the real server: a user's token and spend limits hold across concurrent runs, reset at the period boundary, reach the socket as `budget_exceeded`, and only admins (granted by `cordon admin`) change them.
#![allow(
    clippy::unwrap_used,
    reason = "a test should panic loudly on a broken assumption"
)]

mod llm_common;

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cordon_core::{BudgetLimits, Clock};
use cordon_llm::ProviderKind;
use cordon_test_support::fake_llm::{Reply, openai};
use cordon_test_support::is_terminal;
use llm_common::*;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::datetime;

/// Every model call of these tests costs 60 + 40 tokens.
const TOKENS_PER_CALL: u64 = 100;

/// A clock the test moves.
#[derive(Debug)]
struct ManualClock(Mutex<OffsetDateTime>);

impl ManualClock {
    fn set(&self, at: OffsetDateTime) {
        *self.0.lock().unwrap() = at;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap()
    }
}

/// The run-ending frames of a socket until `count` runs ended.
async fn run_ends(ws: &mut cordon_test_support::WsClient, count: usize) -> Vec<Value> {
    let mut ends = Vec::new();
    while ends.len() < count {
        let frame = ws.next_json().await;
        if is_terminal(&frame) {
            ends.push(frame);
        }
    }
    ends
}

#[tokio::test]
async fn concurrent_runs_never_go_more_than_one_call_over_the_daily_token_limit() {
    let (fake, server) = start_serving(
        ProviderKind::Openai,
        |_| {},
        |config| {
            config.engine.max_runs_per_user = 32;
            config.engine.budget = BudgetLimits {
                daily_tokens: Some(10 * TOKENS_PER_CALL),
                ..BudgetLimits::default()
            };
        },
    )
    .await;
    // Slow calls, so the runs' calls overlap.
    fake.respond_with(|_| {
        let answer = openai::text(&["fine"], (60, 40));
        Reply::Delayed(Duration::from_millis(200), Box::new(answer))
    });
    let (alice, mut ws) = user(&server, "alice").await;
    for index in 0..30 {
        let body = json!({"content": format!("question {index}")});
        let (status, answer) = server.post_json(&alice, "/api/messages", &body).await;
        assert_eq!(status, 202, "{answer}");
    }
    let ends = run_ends(&mut ws, 30).await;
    let completed = ends
        .iter()
        .filter(|f| f["type"] == "agent_completed")
        .count();
    let refused: Vec<_> = ends
        .iter()
        .filter(|f| f["code"] == "budget_exceeded")
        .collect();
    let calls = fake.requests().len();
    assert_eq!(completed + refused.len(), 30, "{ends:#?}");
    assert_eq!(completed, calls, "a refused run made no call");
    assert!(
        (10..=11).contains(&calls),
        "10 calls fit the limit, at most one more may be made: {calls}"
    );
    let message = refused[0]["message"].as_str().unwrap();
    assert!(
        message.contains("daily tokens budget of 1000") && message.contains("resets at"),
        "{message}"
    );
    let (status, budget) = server.get_json(&alice, "/api/me/budget").await;
    assert_eq!(status, 200, "{budget}");
    assert_eq!(budget["source"], "default");
    let day = &budget["periods"][0];
    assert_eq!(day["period"], "day");
    assert_eq!(day["used_tokens"], json!(calls as u64 * TOKENS_PER_CALL));
    assert_eq!(day["limit_tokens"], 1000);
    assert_eq!(day["remaining_tokens"], 0);
    server.stop().await;
}

#[tokio::test]
async fn budgets_reset_at_the_day_and_month_boundaries_of_the_clock() {
    let clock = Arc::new(ManualClock(Mutex::new(datetime!(2026-12-31 23:58 UTC))));
    let server_clock: Arc<dyn Clock> = clock.clone();
    let (fake, server) = start_serving(
        ProviderKind::Openai,
        |_| {},
        |config| {
            config.clock = server_clock;
            config.engine.budget = BudgetLimits {
                daily_tokens: Some(2 * TOKENS_PER_CALL),
                monthly_tokens: Some(3 * TOKENS_PER_CALL),
                ..BudgetLimits::default()
            };
        },
    )
    .await;
    fake.respond_with(|_| openai::text(&["fine"], (60, 40)));
    let (_alice, mut ws) = user(&server, "alice").await;
    for _ in 0..2 {
        assert_eq!(last(&ws.ask("hello").await)["type"], "agent_completed");
    }
    let frames = ws.ask("one more today?").await;
    assert_eq!(last(&frames)["code"], "budget_exceeded", "{frames:#?}");
    let message = last(&frames)["message"].as_str().unwrap();
    assert!(message.contains("2027-01-01T00:00:00Z"), "{message}");

    // A new day: the daily limit is fresh, the monthly one (3 calls) is
    // not, since 2026-12's calls do not count in 2027-01 either: a new month.
    clock.set(datetime!(2027-01-01 00:00:01 UTC));
    for _ in 0..3 {
        let frames = ws.ask("a new year").await;
        let end = last(&frames);
        if end["type"] == "agent_error" {
            assert_eq!(end["code"], "budget_exceeded");
            let message = end["message"].as_str().unwrap();
            assert!(message.contains("daily tokens budget of 200"), "{message}");
            assert!(message.contains("2027-01-02T00:00:00Z"), "{message}");
        }
    }
    assert_eq!(fake.requests().len(), 4, "two calls a day fit");
    clock.set(datetime!(2027-01-02 09:00 UTC));
    assert_eq!(last(&ws.ask("day two").await)["type"], "agent_completed");
    let frames = ws.ask("day two, again").await;
    let message = last(&frames)["message"].as_str().unwrap();
    assert!(
        message.contains("monthly tokens budget of 300")
            && message.contains("2027-02-01T00:00:00Z"),
        "{message}"
    );
    assert_eq!(fake.requests().len(), 5);
    server.stop().await;
}

/// Runs `cordon admin ACTION USERNAME --data-dir DIR`; its output and success.
fn cordon_admin(dir: &std::path::Path, action: &str, username: &str) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_cordon"))
        .args(["admin", action, username, "--data-dir"])
        .arg(dir)
        .env_remove("CORDON_DATABASE_URL")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

#[tokio::test]
async fn only_admins_granted_by_the_cli_set_a_users_budget_and_it_applies_at_once() {
    let (fake, server) = start_serving(ProviderKind::Openai, |_| {}, |_| {}).await;
    fake.respond_with(|_| openai::text(&["fine"], (60, 40)));
    let ada = server.register("ada").await;
    let (bob, mut bob_ws) = user(&server, "bob").await;
    let path = "/api/admin/users/bob/budget";
    let (status, body) = server.get_json(&ada, path).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (403, json!("admin_only"))
    );

    let dir = server.data_dir.path();
    let (granted, said) = cordon_admin(dir, "grant", "ada");
    assert!(granted, "{said}");
    assert!(said.contains("ada is now an admin"), "{said}");
    let (found, said) = cordon_admin(dir, "grant", "nobody");
    assert!(!found && said.contains("no user is named"), "{said}");

    let (status, body) = server.get_json(&ada, path).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["username"].clone(), body["source"].clone()),
        (json!("bob"), json!("default"))
    );
    assert_eq!(last(&bob_ws.ask("before").await)["type"], "agent_completed");

    let limits = json!({"daily_tokens": 0, "monthly_usd": 5.0});
    let (status, body) = server
        .request_json(reqwest::Method::PUT, &ada, path, Some(&limits))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["source"], "user");
    assert_eq!(
        body["limits"],
        json!({"daily_usd": null, "monthly_usd": 5.0, "daily_tokens": 0, "monthly_tokens": null})
    );
    let frames = bob_ws.ask("after").await;
    assert_eq!(last(&frames)["code"], "budget_exceeded", "{frames:#?}");
    assert_eq!(fake.requests().len(), 1, "no call was made over the budget");
    let (status, _) = server.get_json(&bob, path).await;
    assert_eq!(status, 403, "bob is no admin");
    let bad = json!({"daily_usd": -1});
    let (status, body) = server
        .request_json(reqwest::Method::PUT, &ada, path, Some(&bad))
        .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (400, json!("invalid_budget"))
    );

    let (status, body) = server
        .request_json(reqwest::Method::DELETE, &ada, path, None)
        .await;
    assert_eq!((status, body["source"].clone()), (200, json!("default")));
    assert_eq!(last(&bob_ws.ask("again").await)["type"], "agent_completed");

    let (revoked, said) = cordon_admin(dir, "revoke", "ada");
    assert!(revoked, "{said}");
    let (status, _) = server.get_json(&ada, path).await;
    assert_eq!(status, 403, "revoked at once");
    server.stop().await;
}
