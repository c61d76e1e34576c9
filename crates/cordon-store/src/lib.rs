//! cordon-store: all SQL of cordon, behind `cordon_core::Store`.
//!
//! [`SqliteStore`] keeps everything in one embedded SQLite file (WAL mode,
//! `synchronous=NORMAL`). Reads go through a small sqlx connection pool;
//! every write goes through one [`writer`] thread (its own rusqlite
//! connection) that group-commits whatever has queued up while the previous
//! transaction was committing, so thousands of events per second cost a
//! handful of transactions. The queue to it is bounded ([`health`]): past
//! half its bound no new run is admitted, and once a batch fails every
//! write is refused until a probe write commits again. History searches run on
//! their own pool under a time budget ([`search`]). No sqlx or rusqlite type leaves this crate.

mod convert;
mod health;
mod options;
mod postgres;
mod queue;
mod sealing;
mod shared;
mod sqlite;
mod visibility;
mod writer;

pub use health::DEFAULT_WRITE_QUEUE_CAPACITY;
pub use options::StoreOptions;
pub use postgres::{Claimed, DEAD_PEER_BOUND, PgOwners, PgStore};
pub use sealing::SealingKey;
pub use sqlite::SqliteStore;
pub use sqlite::{DATABASE_FILE, DEFAULT_SEARCH_BUDGET};
