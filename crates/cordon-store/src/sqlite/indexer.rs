//! The history-search indexer: copies committed user messages into the trigram index in `search.db`, on a thread and a database file of its own.
//!
//! Indexing 31 KB of text costs about 20 ms. Inside the writer's transaction
//! (an FTS5 trigger, until migration 0007) that held every tenant's commit,
//! and so every event, behind one tenant's long messages. Here the index is
//! derived data in its own file, with its own write lock, filled after the
//! fact by a thread of its own; `upto` (the last message rowid indexed)
//! makes it resumable after a crash and rebuildable from nothing. The thread
//! runs as SCHED_BATCH: its fair share of CPU (in the idle class it starved
//! whenever the machine was busy, and searches missed what had just been
//! said), but it never preempts a woken request thread.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::time::Duration;

use cordon_core::StoreError;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::Notify;

use crate::convert::rusqlite_backend as backend;
use cordon_core::background::{self, Background};

/// The index's file, beside the database.
pub const SEARCH_FILE: &str = "search.db";
/// Messages indexed per transaction.
const BATCH: i64 = 256;
/// A look for new messages even without a wake-up.
const POLL: Duration = Duration::from_millis(250);

const SCHEMA: &str = "
    CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts USING fts5(
        user_key, content, content = '', contentless_delete = 1, tokenize = 'trigram'
    );
    CREATE TABLE IF NOT EXISTS indexed (
        id INTEGER PRIMARY KEY CHECK (id = 0),
        upto INTEGER NOT NULL
    );
    INSERT OR IGNORE INTO indexed (id, upto) VALUES (0, 0);
";

/// How far the index has come; searches wait on it.
#[derive(Debug, Default)]
pub struct IndexProgress {
    upto: AtomicI64,
    advanced: Notify,
}

impl IndexProgress {
    /// The rowid of the last message indexed.
    pub fn upto(&self) -> i64 {
        self.upto.load(Ordering::Acquire)
    }

    /// Waits until the index holds message `rowid`, at most `limit`; false if it did not get there.
    pub async fn reached(&self, rowid: i64, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let advanced = self.advanced.notified();
            if self.upto() >= rowid {
                return true;
            }
            if tokio::time::timeout_at(deadline, advanced).await.is_err() {
                return self.upto() >= rowid;
            }
        }
    }

    fn advance(&self, upto: i64) {
        self.upto.store(upto, Ordering::Release);
        self.advanced.notify_waiters();
    }
}

/// Stops the indexer thread when dropped (with the store).
#[derive(Debug)]
pub struct Indexer {
    wake: SyncSender<()>,
    pub progress: Arc<IndexProgress>,
}

impl Indexer {
    /// Opens (creating or rebuilding as needed) `data_dir/search.db` and starts
    /// indexing the messages of `database` from where the index left off.
    pub fn start(database: &Path, data_dir: &Path) -> Result<Self, StoreError> {
        let path = data_dir.join(SEARCH_FILE);
        let main = Connection::open_with_flags(database, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(backend)?;
        main.busy_timeout(Duration::from_secs(5)).map_err(backend)?;
        let index = open_index(&path, &main)?;
        let progress = Arc::new(IndexProgress::default());
        progress.advance(upto(&index).map_err(backend)?);
        let (wake, woken) = mpsc::sync_channel(1);
        let shared = Arc::clone(&progress);
        std::thread::Builder::new()
            .name("cordon-store-index".into())
            .spawn(move || run(&main, &index, &shared, &woken))
            .map_err(|error| {
                StoreError::Backend(format!("could not start the search indexer: {error}"))
            })?;
        Ok(Self { wake, progress })
    }

    /// Asks for the messages committed so far to be indexed now.
    pub fn wake(&self) {
        let _ = self.wake.try_send(());
    }
}

/// The index file, emptied when it claims more than the database holds (a
/// database restored from a backup older than the index).
fn open_index(path: &Path, main: &Connection) -> Result<Connection, StoreError> {
    let index = Connection::open(path).map_err(backend)?;
    index
        .execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
        .map_err(backend)?;
    index
        .busy_timeout(Duration::from_secs(5))
        .map_err(backend)?;
    index.execute_batch(SCHEMA).map_err(backend)?;
    let newest: i64 = main
        .query_row("SELECT coalesce(max(rowid), 0) FROM messages", [], |row| {
            row.get(0)
        })
        .map_err(backend)?;
    if upto(&index).map_err(backend)? > newest {
        tracing::warn!("the search index is ahead of the database; rebuilding it");
        index
            .execute_batch("DROP TABLE messages_fts; DROP TABLE indexed;")
            .map_err(backend)?;
        index.execute_batch(SCHEMA).map_err(backend)?;
    }
    Ok(index)
}

fn run(
    main: &Connection,
    index: &Connection,
    progress: &IndexProgress,
    woken: &mpsc::Receiver<()>,
) {
    background::enter(Background::Batch { nice: 19 });
    loop {
        match catch_up(main, index, progress) {
            Ok(()) => {}
            // A busy or full disk: the next wake-up or poll tries again.
            Err(error) => tracing::warn!(%error, "indexing messages for search failed; retrying"),
        }
        if let Err(RecvTimeoutError::Disconnected) = woken.recv_timeout(POLL) {
            return;
        }
    }
}

/// Indexes every user message committed after `upto`, a batch per transaction.
fn catch_up(
    main: &Connection,
    index: &Connection,
    progress: &IndexProgress,
) -> rusqlite::Result<()> {
    let mut select = main.prepare_cached(
        "SELECT rowid, user_id, content, role = 'user' FROM messages \
         WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
    )?;
    loop {
        // Only this thread moves `upto`: the stored value and `progress` agree.
        let from = progress.upto();
        let rows = select
            .query_map([from, BATCH], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, bool>(3)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let Some(last) = rows.last().map(|row| row.0) else {
            return Ok(());
        };
        let tx = index.unchecked_transaction()?;
        for (rowid, user_id, content, from_user) in &rows {
            // Only the users' own words are searched; assistant answers only move `upto`.
            if *from_user {
                tx.execute(
                    "INSERT INTO messages_fts (rowid, user_key, content) VALUES (?1, ?2, ?3)",
                    rusqlite::params![rowid, user_id, content],
                )?;
            }
        }
        tx.execute("UPDATE indexed SET upto = ?1 WHERE id = 0", [last])?;
        tx.commit()?;
        progress.advance(last);
    }
}

fn upto(index: &Connection) -> rusqlite::Result<i64> {
    index.query_row("SELECT upto FROM indexed WHERE id = 0", [], |row| {
        row.get(0)
    })
}
