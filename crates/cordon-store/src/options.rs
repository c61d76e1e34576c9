//! `StoreOptions`: how a store is run, whichever the database.

use std::time::Duration;

use crate::health::DEFAULT_WRITE_QUEUE_CAPACITY;
use crate::sealing::SealingKey;
use crate::sqlite::DEFAULT_SEARCH_BUDGET;

/// How the store is run.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Bound of the queue to the writer, in writes; new runs are refused
    /// (`overloaded`) past half of it.
    pub write_queue_capacity: usize,
    /// CPU time one history search may spend before it is stopped.
    pub search_budget: Duration,
    /// Several instances serve the database (`--broker-url`); without it a
    /// PostgreSQL store refuses a second instance on its database.
    pub shared: bool,
    /// Seals users' secrets at rest; without one, storing or reading a secret fails.
    pub sealing_key: Option<SealingKey>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            write_queue_capacity: DEFAULT_WRITE_QUEUE_CAPACITY,
            search_budget: DEFAULT_SEARCH_BUDGET,
            shared: false,
            sealing_key: None,
        }
    }
}
