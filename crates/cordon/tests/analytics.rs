//! Analytics in a real ClickHouse (Debian's 18.16, started by the test): every finished run and model call is written through cordon and read back, the usage report answers admins over REST and `cordon analytics`, and an outage costs only the rows past the buffer's bound.
#![allow(
    clippy::unwrap_used,
    reason = "a test should panic loudly on a broken assumption"
)]

mod llm_common;

use std::process::Command;
use std::time::Duration;

use cordon_analytics::ClickHouseConfig;
use cordon_llm::ProviderKind;
use cordon_test_support::clickhouse::ClickHouse;
use cordon_test_support::fake_llm::{Reply, openai};
use cordon_test_support::{Account, TestServer};
use llm_common::*;
use serde_json::Value;

const DATABASE: &str = "cordon_analytics";

/// The analytics metrics are process-wide: the tests of this file take turns.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn analytics_config(clickhouse: &ClickHouse, buffer_rows: usize) -> ClickHouseConfig {
    let mut config = ClickHouseConfig::from_url(&clickhouse.url(DATABASE)).unwrap();
    config.flush_interval = Duration::from_millis(100);
    config.buffer_rows = buffer_rows;
    config
}

/// Rows in cordon's two tables.
async fn rows(clickhouse: &ClickHouse) -> (u64, u64) {
    let count = |table: &str| format!("SELECT count() FROM {DATABASE}.{table}");
    let runs = clickhouse.query(&count("cordon_runs")).await;
    let calls = clickhouse.query(&count("cordon_model_calls")).await;
    (runs.trim().parse().unwrap(), calls.trim().parse().unwrap())
}

/// Waits until the tables hold `expected` rows (runs, model calls).
async fn wait_rows(clickhouse: &ClickHouse, expected: (u64, u64)) {
    for _ in 0..200 {
        let tables = clickhouse
            .query(&format!(
                "SELECT count() FROM system.tables WHERE database = '{DATABASE}'"
            ))
            .await;
        if tables.trim() == "2" && rows(clickhouse).await == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "expected {expected:?} rows, found {:?}",
        rows(clickhouse).await
    );
}

fn grant_admin(server: &TestServer, username: &str) {
    let status = Command::new(env!("CARGO_BIN_EXE_cordon"))
        .args(["admin", "grant", username, "--data-dir"])
        .arg(server.data_dir.path())
        .env_remove("CORDON_DATABASE_URL")
        .status()
        .unwrap();
    assert!(status.success());
}

fn user_row<'a>(report: &'a Value, user: &Account) -> &'a Value {
    report["by_user"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["user_id"] == user.user_id)
        .unwrap_or_else(|| panic!("{} is not in {report:#}", user.username))
}

#[tokio::test]
async fn every_run_and_model_call_reaches_clickhouse_and_the_usage_report() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let Some(clickhouse) = ClickHouse::start().await else {
        return;
    };
    let config = analytics_config(&clickhouse, 1000);
    let (fake, server) = start_serving(
        ProviderKind::Openai,
        |_| {},
        |c| c.clickhouse = Some(config),
    )
    .await;
    fake.push(Reply::Status {
        status: 400,
        body: r#"{"error":{"message":"no"}}"#.into(),
        retry_after: None,
    });
    fake.respond_with(|_| openai::text(&["fine"], (60, 40)));
    let (alice, mut alice_ws) = user(&server, "alice").await;
    let (bob, mut bob_ws) = user(&server, "bob").await;
    assert_eq!(
        last(&alice_ws.ask("refused").await)["code"],
        "llm_bad_request"
    );
    for _ in 0..2 {
        assert_eq!(
            last(&alice_ws.ask("hello").await)["type"],
            "agent_completed"
        );
        assert_eq!(last(&bob_ws.ask("hi").await)["type"], "agent_completed");
    }
    wait_rows(&clickhouse, (5, 5)).await;

    let stored = clickhouse
        .query(&format!(
            "SELECT status, error_code, agent, model FROM {DATABASE}.cordon_runs \
             WHERE user_id = '{}' ORDER BY status",
            alice.user_id
        ))
        .await;
    assert_eq!(
        stored,
        "completed\t\tsupervisor\tgpt-4o-mini\ncompleted\t\tsupervisor\tgpt-4o-mini\n\
         failed\tllm_bad_request\tsupervisor\tgpt-4o-mini\n"
    );
    let calls = clickhouse
        .query(&format!(
            "SELECT agent, error_code, input_tokens, output_tokens, cost_usd > 0 \
             FROM {DATABASE}.cordon_model_calls WHERE user_id = '{}' ORDER BY error_code",
            bob.user_id
        ))
        .await;
    assert_eq!(calls, "assistant\t\t60\t40\t1\nassistant\t\t60\t40\t1\n");

    let ada = server.register("ada").await;
    let (status, refused) = server.get_json(&alice, "/api/admin/usage").await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (403, Some("admin_only"))
    );
    grant_admin(&server, "ada");
    let (status, report) = server.get_json(&ada, "/api/admin/usage").await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["runs"]["runs"], 5, "{report:#}");
    let alice_usage = user_row(&report, &alice);
    assert_eq!(
        (
            alice_usage["runs"].as_u64(),
            alice_usage["failed_runs"].as_u64()
        ),
        (Some(3), Some(1))
    );
    assert_eq!(
        alice_usage["model_calls"], 3,
        "the refused call is counted too"
    );
    assert_eq!(alice_usage["input_tokens"], 120);
    assert_eq!(user_row(&report, &bob)["output_tokens"], 80);
    assert_eq!(report["errors"][0]["code"], "llm_bad_request");
    assert_eq!(report["errors"][0]["rate"], 0.2);
    assert_eq!(report["by_model"][0]["model"], "gpt-4o-mini");
    let (status, _) = server
        .get_json(&ada, "/api/admin/usage?from=yesterday")
        .await;
    assert_eq!(status, 400);

    let output = Command::new(env!("CARGO_BIN_EXE_cordon"))
        .args([
            "analytics",
            "--json",
            "--clickhouse-url",
            &clickhouse.url(DATABASE),
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed["runs"]["runs"], 5);
    assert_eq!(user_row(&printed, &bob)["runs"], 2);
    server.stop().await;
}

/// The value of an unlabelled metric in `/metrics`.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .map_or(0.0, |value| value.trim().parse().unwrap())
}

#[tokio::test]
async fn while_clickhouse_is_down_runs_go_on_rows_wait_up_to_the_bound_and_are_delivered_after() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let Some(mut clickhouse) = ClickHouse::start().await else {
        return;
    };
    // Six rows: two runs' worth (the offline model answers in two calls: a
    // history search, then the answer; and the run's own row).
    let config = analytics_config(&clickhouse, 6);
    let server = TestServer::start_with(|c| c.clickhouse = Some(config)).await;
    let alice = server.register("alice").await;
    let mut ws = server.connect(&alice).await;
    assert_eq!(last(&ws.ask("before").await)["type"], "agent_completed");
    wait_rows(&clickhouse, (1, 2)).await;

    clickhouse.stop();
    for index in 0..10 {
        let frames = ws.ask(&format!("during the outage {index}")).await;
        assert_eq!(last(&frames)["type"], "agent_completed", "runs go on");
    }
    let metrics = server.metrics_text().await;
    assert_eq!(
        metric(&metrics, "cordon_analytics_rows_dropped_total"),
        24.0
    );
    assert_eq!(metric(&metrics, "cordon_analytics_buffered_rows"), 6.0);

    clickhouse.resume().await;
    wait_rows(&clickhouse, (3, 6)).await;
    assert_eq!(last(&ws.ask("after").await)["type"], "agent_completed");
    wait_rows(&clickhouse, (4, 8)).await;
    let metrics = server.metrics_text().await;
    assert!(
        metric(&metrics, "cordon_analytics_write_failures_total") >= 1.0,
        "{metrics}"
    );
    server.stop().await;
}
