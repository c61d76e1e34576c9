//! A smoke-size `cordon bench` run against a real server, so the load generator cannot rot.
#![allow(
    clippy::unwrap_used,
    reason = "a test should panic loudly on a broken assumption"
)]

use clap::Parser;
use cordon_bench::BenchArgs;
use cordon_test_support::TestServer;

#[derive(Parser)]
struct Wrapper {
    #[command(flatten)]
    bench: BenchArgs,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_users_complete_every_run_with_no_cross_user_event() {
    let server = TestServer::start().await;
    let url = format!("ws://{}", server.addr);
    let args = Wrapper::parse_from([
        "bench",
        "--url",
        &url,
        "--users",
        "50",
        "--connections-per-user",
        "2",
        "--messages",
        "2",
    ])
    .bench;
    let report = cordon_bench::run(args).await.unwrap();
    assert!(report.passed(), "{}", report.to_table());
    assert_eq!(report.connections_established, 100);
    assert_eq!(report.runs_completed, 100);
    // 8 logged events per run (thread_created and 7 run events), delivered
    // to both connections of the user.
    assert_eq!(report.run_events_received, 100 * 8 * 2);
    assert_eq!(report.time_to_agent_completed.count, 100);
    assert!(report.time_to_agent_started.p50_ms <= report.time_to_agent_completed.p50_ms);
    assert!(
        report.server_memory.before_bytes.is_some(),
        "RSS read from /metrics"
    );

    let metrics = server.metrics_text().await;
    for name in [
        "cordon_connections_active",
        "cordon_engines_active",
        "cordon_runs_started_total",
        "cordon_runs_completed_total",
        "cordon_event_send_seconds_bucket",
        "cordon_process_resident_memory_bytes",
        "cordon_process_cpu_seconds_total",
        "cordon_process_open_fds",
        "cordon_process_threads",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
}
