//! cordon-store: all SQL of cordon, behind `cordon_core::Store`.
//!
//! [`SqliteStore`] keeps everything in one embedded SQLite file (WAL mode,
//! `synchronous=NORMAL`). Reads go through a small connection pool; every
//! write goes through one [`writer`] task that group-commits whatever has
//! queued up while the previous transaction was committing, so thousands of
//! events per second cost a handful of transactions, and no sqlx type leaves
//! this crate.

mod convert;
mod sqlite;
mod writer;

pub use sqlite::SqliteStore;
