//! `ClickHouseAnalytics`: the engine's analytics sink. Rows wait in a bounded buffer that never blocks a run (past the bound new rows are dropped, counted and logged once a minute) and a flusher task writes them to ClickHouse in batches, keeping them until an insert succeeds and backing off while it fails.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use cordon_core::{AnalyticsSink, FinishedRun, ModelCall};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::rows::{CallRow, RunRow};
use crate::warehouse::{CALLS, RUNS};
use crate::{AnalyticsError, ClickHouseConfig, Warehouse};

const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// At most one log line a minute about dropped rows, and one about failing writes.
const LOG_EVERY: Duration = Duration::from_secs(60);
/// How long the last flush at shutdown may take.
const LAST_FLUSH: Duration = Duration::from_secs(3);

pub struct ClickHouseAnalytics {
    shared: Arc<Shared>,
}

struct Shared {
    buffered: Mutex<Buffered>,
    capacity: usize,
    batch_rows: usize,
    /// Rung when a batch is ready, so it is written before the interval ends.
    batch_ready: Notify,
    dropped_unlogged: AtomicU64,
    drop_logged: Mutex<Option<Instant>>,
}

#[derive(Default)]
struct Buffered {
    runs: VecDeque<RunRow>,
    calls: VecDeque<CallRow>,
}

impl Buffered {
    fn len(&self) -> usize {
        self.runs.len() + self.calls.len()
    }
}

impl ClickHouseAnalytics {
    /// Starts the flusher, which writes until `stop` and then tries once
    /// more (bounded) to write what is left.
    pub fn start(
        warehouse: Warehouse,
        config: &ClickHouseConfig,
        stop: CancellationToken,
    ) -> (Arc<Self>, JoinHandle<()>) {
        let shared = Arc::new(Shared {
            buffered: Mutex::default(),
            capacity: config.buffer_rows.max(1),
            batch_rows: config.batch_rows.max(1),
            batch_ready: Notify::new(),
            dropped_unlogged: AtomicU64::new(0),
            drop_logged: Mutex::new(None),
        });
        let flusher = Flusher {
            shared: Arc::clone(&shared),
            warehouse,
            interval: config.flush_interval,
            schema_ready: false,
        };
        let task = tokio::spawn(flusher.run(stop));
        (Arc::new(Self { shared }), task)
    }

    /// Rows waiting to be written.
    pub fn buffered(&self) -> usize {
        self.shared.lock().len()
    }

    fn push(&self, push: impl FnOnce(&mut Buffered)) {
        let mut buffered = self.shared.lock();
        if buffered.len() >= self.shared.capacity {
            drop(buffered);
            self.shared.dropped();
            return;
        }
        push(&mut buffered);
        let len = buffered.len();
        drop(buffered);
        metrics::gauge!("cordon_analytics_buffered_rows").set(len as f64);
        if len.is_multiple_of(self.shared.batch_rows) {
            self.shared.batch_ready.notify_one();
        }
    }
}

impl AnalyticsSink for ClickHouseAnalytics {
    fn run_finished(&self, run: FinishedRun) {
        self.push(|buffered| buffered.runs.push_back(run.into()));
    }

    fn model_called(&self, call: ModelCall) {
        self.push(|buffered| buffered.calls.push_back(call.into()));
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Buffered> {
        self.buffered.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a row dropped because the buffer is full, and says so at most once a minute.
    fn dropped(&self) {
        metrics::counter!("cordon_analytics_rows_dropped_total").increment(1);
        let unlogged = self.dropped_unlogged.fetch_add(1, Ordering::Relaxed) + 1;
        let mut logged = self
            .drop_logged
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if logged.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
            *logged = Some(Instant::now());
            self.dropped_unlogged.fetch_sub(unlogged, Ordering::Relaxed);
            tracing::warn!(
                dropped = unlogged,
                buffered = self.capacity,
                "the analytics buffer is full (ClickHouse is slow or away): rows are dropped"
            );
        }
    }
}

/// The task that writes the buffer to ClickHouse.
struct Flusher {
    shared: Arc<Shared>,
    warehouse: Warehouse,
    interval: Duration,
    schema_ready: bool,
}

impl Flusher {
    async fn run(mut self, stop: CancellationToken) {
        let mut backoff = FIRST_BACKOFF;
        let mut failure_logged: Option<Instant> = None;
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(self.interval) => {}
                () = self.shared.batch_ready.notified() => {}
            }
            let Err(error) = self.write_pending().await else {
                backoff = FIRST_BACKOFF;
                continue;
            };
            metrics::counter!("cordon_analytics_write_failures_total").increment(1);
            if failure_logged.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
                failure_logged = Some(Instant::now());
                tracing::warn!(%error, buffered = self.shared.lock().len(), "could not write analytics; retrying");
            }
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        let _ = tokio::time::timeout(LAST_FLUSH, self.write_pending()).await;
        let lost = self.shared.lock().len();
        if lost > 0 {
            tracing::warn!(lost, "analytics rows left unwritten at shutdown");
        }
    }

    /// Writes every buffered row, a batch at a time; a row leaves the buffer
    /// only once its insert succeeded.
    async fn write_pending(&mut self) -> Result<(), AnalyticsError> {
        if !self.schema_ready {
            self.warehouse.create_schema().await?;
            self.schema_ready = true;
        }
        let batch = self.shared.batch_rows;
        loop {
            let runs: Vec<RunRow> = self
                .shared
                .lock()
                .runs
                .iter()
                .take(batch)
                .cloned()
                .collect();
            if !runs.is_empty() {
                self.warehouse.insert_runs(&runs).await?;
                self.shared.lock().runs.drain(..runs.len());
                metrics::counter!("cordon_analytics_rows_written_total", "table" => RUNS)
                    .increment(runs.len() as u64);
            }
            let calls: Vec<CallRow> = self
                .shared
                .lock()
                .calls
                .iter()
                .take(batch)
                .cloned()
                .collect();
            if !calls.is_empty() {
                self.warehouse.insert_calls(&calls).await?;
                self.shared.lock().calls.drain(..calls.len());
                metrics::counter!("cordon_analytics_rows_written_total", "table" => CALLS)
                    .increment(calls.len() as u64);
            }
            let left = self.shared.lock().len();
            metrics::gauge!("cordon_analytics_buffered_rows").set(left as f64);
            if left == 0 || (runs.len() < batch && calls.len() < batch) {
                return Ok(());
            }
        }
    }
}
