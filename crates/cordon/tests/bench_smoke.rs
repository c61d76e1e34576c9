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

/// Runs `cordon bench --url <server> ARGS` in-process.
async fn bench(server: &TestServer, args: &[&str]) -> cordon_bench::BenchReport {
    let url = format!("ws://{}", server.addr);
    let mut argv = vec!["bench", "--url", url.as_str()];
    argv.extend_from_slice(args);
    let args = Wrapper::parse_from(argv).bench;
    cordon_bench::run(args).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_users_complete_every_run_with_no_cross_user_event() {
    let server = TestServer::start().await;
    let report = bench(
        &server,
        &[
            "--users",
            "50",
            "--connections-per-user",
            "2",
            "--messages",
            "2",
        ],
    )
    .await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_every_drops_and_resumes_every_socket_with_no_gap_or_duplicate() {
    // A model step of 5 ms keeps runs going while their sockets drop.
    let server =
        TestServer::start_with(|c| c.offline_step_delay = std::time::Duration::from_millis(5))
            .await;
    let report = bench(
        &server,
        &["--users", "30", "--messages", "3", "--reconnect-every", "3"],
    )
    .await;
    assert!(report.passed(), "{}", report.to_table());
    assert_eq!(report.runs_completed, 90);
    let reconnects = report.reconnect.as_ref().unwrap();
    // 8 events a run, a drop after every 3rd (the run's end excepted): 6 drops per user.
    assert!(reconnects.reconnects >= 30 * 6, "{}", report.to_table());
    assert_eq!(
        (
            reconnects.gaps,
            reconnects.duplicates,
            reconnects.log_mismatches
        ),
        (0, 0, 0)
    );
    assert_eq!(report.run_events_received, 90 * 8, "every event once");
    assert!(reconnects.reconnect_to_first_event.count > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_abuse_mode_measures_both_phases_and_the_limits_hold_the_noisy_tenant() {
    let server = TestServer::start().await;
    let report = bench(
        &server,
        &[
            "--users",
            "3",
            "--abuse",
            "--duration",
            "2",
            "--pace",
            "0.5",
            "--noisy-rate",
            "100",
            "--noisy-sockets",
            "10",
        ],
    )
    .await;
    assert!(report.passed(), "{}", report.to_table());
    let abuse = report.abuse.as_ref().unwrap();
    for phase in [&abuse.alone, &abuse.with_noisy] {
        assert!(phase.runs_completed >= 6, "{}", report.to_table());
        assert_eq!(phase.runs_failed, 0);
        assert!(phase.rest_threads.count > 10, "the REST probe ran");
    }
    let noisy = &abuse.noisy_tenant;
    assert_eq!(noisy.sockets_opened, 8, "the socket cap held");
    assert!(noisy.sockets_refused >= 2);
    assert!(noisy.rate_limited > 0, "{}", report.to_table());
    assert!(noisy.sign_ins_throttled > 0, "{}", report.to_table());
    assert!(report.to_table().contains("with the noisy tenant"));
}
