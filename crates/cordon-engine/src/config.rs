//! Engine limits and timings, validated once at start-up.

use std::collections::BTreeSet;
use std::time::Duration;

use cordon_core::BudgetLimits;

/// How much work the engines may take on, and for how long.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Runs one user may have in flight; the next is rejected with `user_concurrency_limit`.
    pub max_runs_per_user: usize,
    /// Runs the whole process may have in flight (`global_concurrency_limit`).
    pub max_runs_global: usize,
    /// Longest one agent of the pipeline may run before the run ends with `timeout`.
    pub agent_timeout: Duration,
    /// An engine with no run for this long is dropped by the cleanup.
    pub engine_idle_ttl: Duration,
    /// How often the cleanup looks for idle engines.
    pub cleanup_interval: Duration,
    /// Finished runs each engine remembers.
    pub run_history_limit: usize,
    /// Model/tool rounds one agent may take before `step_limit`.
    pub max_steps: u32,
    /// Messages one user may send per minute (a token bucket: a burst of
    /// this many, then one every 60/N s); over it a message is refused
    /// with `rate_limited` and nothing of it is stored.
    pub messages_per_minute: u32,
    /// Tools (by full name: `calculator`, `github.create_issue`) a person must
    /// approve before each call; a run that calls one pauses.
    pub approval_tools: BTreeSet<String>,
    /// How long a paused run waits for its approvals before it ends
    /// `approval_expired`.
    pub approval_ttl: Duration,
    /// Every user's budget unless an admin set their own (none by default).
    pub budget: BudgetLimits,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_runs_per_user: 2,
            max_runs_global: 1024,
            agent_timeout: Duration::from_secs(25),
            engine_idle_ttl: Duration::from_secs(300),
            cleanup_interval: Duration::from_secs(30),
            run_history_limit: 100,
            max_steps: 8,
            messages_per_minute: 120,
            approval_tools: BTreeSet::new(),
            approval_ttl: Duration::from_secs(15 * 60),
            budget: BudgetLimits::default(),
        }
    }
}
