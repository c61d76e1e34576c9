//! The checkpointer: a thread that copies the WAL back into the database, so the writer never waits for a checkpoint's fsync.

use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use cordon_core::StoreError;
use rusqlite::Connection;

/// How often the WAL is checkpointed (without blocking the writer).
const INTERVAL: Duration = Duration::from_millis(200);
/// A WAL past this size is reset with a checkpoint that waits for readers,
/// so it cannot grow without bound while reads never pause.
const WAL_RESET_BYTES: u64 = 64 * 1024 * 1024;
/// How often the WAL's size is looked at.
const SIZE_CHECK: Duration = Duration::from_secs(5);

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
        let wal = database.with_extension("db-wal");
        let (stop, stopped) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("cordon-store-checkpoint".into())
            .spawn(move || run(&conn, &wal, &stopped))
            .map_err(|error| {
                StoreError::Backend(format!("could not start the checkpointer: {error}"))
            })?;
        Ok(Self { _stop: stop })
    }
}

fn run(conn: &Connection, wal: &Path, stopped: &mpsc::Receiver<()>) {
    let mut size_checked = Instant::now();
    while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
        let mode = if size_checked.elapsed() >= SIZE_CHECK {
            size_checked = Instant::now();
            let size = std::fs::metadata(wal).map_or(0, |m| m.len());
            if size > WAL_RESET_BYTES {
                "RESTART"
            } else {
                "PASSIVE"
            }
        } else {
            "PASSIVE"
        };
        // A failure (a full disk, a busy reader) is retried on the next tick.
        if let Err(error) =
            conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |_| Ok(()))
        {
            tracing::debug!(%error, mode, "checkpoint failed; retrying");
        }
    }
    // One last complete checkpoint, so a clean stop leaves a small WAL.
    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
}

fn backend(error: rusqlite::Error) -> StoreError {
    StoreError::Backend(error.to_string())
}
