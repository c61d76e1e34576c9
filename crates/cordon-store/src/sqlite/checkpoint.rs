//! Checkpoints: a thread that copies the WAL back into the database, so the writer rarely waits for a checkpoint's fsync, and the bound that keeps the WAL small.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use cordon_core::StoreError;
use rusqlite::Connection;

use crate::convert::rusqlite_backend as backend;

/// How often the WAL is checkpointed (without blocking the writer).
const INTERVAL: Duration = Duration::from_millis(100);
/// A WAL past this size is restarted by the writer itself. A background
/// checkpoint never catches up with a writer that never pauses, so the WAL
/// would never go back to its start (it grew by 3.5 GB in 25 s at full
/// load); the writer pausing for one checkpoint, whose pages the
/// checkpointer has mostly copied already, lets it.
const WAL_RESTART_BYTES: u64 = 64 * 1024 * 1024;
/// How often the writer looks at the WAL size.
const SIZE_CHECK: Duration = Duration::from_millis(250);

/// Stops the checkpointer when dropped (with the store).
pub struct Checkpointer {
    _stop: mpsc::Sender<()>,
}

impl Checkpointer {
    /// Starts checkpointing `database` (whose writer runs with
    /// `wal_autocheckpoint=0`) on a connection of its own.
    pub fn start(database: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(database).map_err(backend)?;
        conn.busy_timeout(Duration::from_secs(1)).map_err(backend)?;
        let (stop, stopped) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("cordon-store-checkpoint".into())
            .spawn(move || run(&conn, &stopped))
            .map_err(|error| {
                StoreError::Backend(format!("could not start the checkpointer: {error}"))
            })?;
        Ok(Self { _stop: stop })
    }
}

fn run(conn: &Connection, stopped: &mpsc::Receiver<()>) {
    while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
        // A failure (a full disk, a busy reader) is retried on the next tick.
        if let Err(error) = checkpoint(conn, "PASSIVE") {
            tracing::debug!(%error, "checkpoint failed; retrying");
        }
    }
    // One last complete checkpoint, so a clean stop leaves a small WAL.
    let _ = checkpoint(conn, "TRUNCATE");
}

/// Runs a checkpoint; `Ok(false)` when it could not finish (a reader or
/// another checkpoint was in the way: SQLite reports that as a row, not an error).
fn checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<bool> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
        row.get::<_, i64>(0)
    })
    .map(|busy| busy == 0)
}

/// Kept by the writer: once the WAL is past `WAL_RESTART_BYTES` the writer
/// checkpoints it to the end between two batches, so the next transaction
/// writes the WAL from its start again (the file keeps its size, reused);
/// looked at every `SIZE_CHECK`, and again soon after an attempt that could
/// not finish.
pub struct WalBound {
    wal: PathBuf,
    next_check: Instant,
}

impl WalBound {
    pub fn new(database: &Path) -> Self {
        Self {
            wal: database.with_extension("db-wal"),
            next_check: Instant::now() + SIZE_CHECK,
        }
    }

    pub fn after_batch(&mut self, conn: &Connection) {
        let now = Instant::now();
        if now < self.next_check {
            return;
        }
        self.next_check = now + SIZE_CHECK;
        let size = std::fs::metadata(&self.wal).map_or(0, |m| m.len());
        if size <= WAL_RESTART_BYTES {
            return;
        }
        match checkpoint(conn, "RESTART") {
            Ok(true) => tracing::debug!(size, "the WAL was checkpointed and restarted"),
            Ok(false) | Err(_) => self.next_check = now + RETRY,
        }
    }
}

/// How soon the writer tries again when a checkpoint could not finish.
const RETRY: Duration = Duration::from_millis(50);
