//! `/metrics`: the Prometheus recorder, the metric names, and the gauges read at scrape time.
//!
//! Counters and histograms are recorded where things happen (runs in the
//! engine, event latency in the session); gauges that are cheap to read
//! (connections, engines, runs in flight, and the process's memory, CPU time,
//! file descriptors and threads) are set when `/metrics` is scraped, so the
//! hot path pays nothing for them.

use std::sync::{LazyLock, OnceLock};

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use metrics_process::Collector;

use crate::state::AppState;

/// Time from an event being published to its frame being written to one socket.
pub const EVENT_SEND_SECONDS: &str = "cordon_event_send_seconds";

const EVENT_SEND_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// Spans the OpenTelemetry exporter could not deliver: refused when its
/// queue was full, or lost with a batch the collector did not take.
pub const OTEL_SPANS_DROPPED: &str = "cordon_otel_spans_dropped_total";

/// Spans the collector accepted.
pub const OTEL_SPANS_EXPORTED: &str = "cordon_otel_spans_exported_total";

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The standard Prometheus process metrics (`cordon_process_resident_memory_bytes`,
/// `cordon_process_cpu_seconds_total`, `cordon_process_open_fds`, ...).
static PROCESS: LazyLock<Collector> = LazyLock::new(|| Collector::new("cordon_"));

/// Installs the process-wide Prometheus recorder once; later calls reuse it.
/// `None` if another recorder was installed first (metrics then go there).
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(EVENT_SEND_SECONDS.into()),
                    EVENT_SEND_BUCKETS,
                )
                .ok()?;
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            spawn_upkeep(handle.clone());
            describe();
            Some(handle)
        })
        .clone()
}

/// Histogram samples are buffered until the exporter folds them into their
/// buckets, which it does on a scrape or an upkeep. Without a scraper the
/// buffer grew by ~20 MiB a minute under load, so a thread does upkeep.
fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("cordon-metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_INTERVAL);
                handle.run_upkeep();
            }
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "could not start metrics upkeep");
    }
}

const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

fn describe() {
    metrics::describe_gauge!("cordon_connections_active", "Open WebSocket connections.");
    metrics::describe_gauge!("cordon_engines_active", "Live per-user execution engines.");
    metrics::describe_gauge!("cordon_runs_active", "Runs in flight.");
    metrics::describe_counter!("cordon_runs_started_total", "Runs admitted.");
    metrics::describe_counter!(
        "cordon_runs_completed_total",
        "Runs that produced an answer."
    );
    metrics::describe_counter!(
        "cordon_runs_failed_total",
        "Runs that ended with agent_error, by reason."
    );
    metrics::describe_counter!(
        "cordon_limit_rejections_total",
        "Runs refused by a limit, by reason."
    );
    metrics::describe_counter!(
        "cordon_engines_created_total",
        "Per-user engines built (on a user's first socket or message)."
    );
    metrics::describe_counter!("cordon_engines_cleaned_total", "Idle engines dropped.");
    metrics::describe_counter!(
        OTEL_SPANS_DROPPED,
        "Trace spans dropped: the export queue was full or the collector refused or missed a batch."
    );
    metrics::describe_counter!(OTEL_SPANS_EXPORTED, "Trace spans the collector accepted.");
    metrics::describe_histogram!(EVENT_SEND_SECONDS, "Event publish-to-socket-write latency.");
    PROCESS.describe();
}

/// `GET /metrics` in the Prometheus text format.
pub async fn scrape(State(state): State<AppState>) -> impl IntoResponse {
    let counts = state.runs.factory().counts();
    metrics::gauge!("cordon_connections_active").set(state.hub.connection_count() as f64);
    metrics::gauge!("cordon_engines_active").set(counts.active_engines as f64);
    metrics::gauge!("cordon_runs_active").set(counts.active_runs as f64);
    metrics::counter!("cordon_engines_created_total").absolute(counts.engines_created);
    metrics::counter!("cordon_engines_cleaned_total").absolute(counts.engines_cleaned);
    PROCESS.collect();
    let body = install().map(|handle| handle.render()).unwrap_or_default();
    ([(CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}
