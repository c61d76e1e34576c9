//! `Store`: persistence of users, threads, messages, runs and run events, always scoped by `UserId`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;

use crate::budget::{BudgetLimits, Spend};
use crate::event::RunEvent;
use crate::ids::{MessageId, RunId, ThreadId, UserId};
use crate::model::{Message, RunRecord, RunStatus, Thread, User};
use crate::secret::{SecretName, SecretValue};
use crate::sink::EventSink;

/// Resolves once a queued write is committed (or could not be).
pub type Committed = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("username is already taken")]
    UsernameTaken,
    #[error("the store is closed")]
    Closed,
    /// The queue to the writer is past its admission mark: storage is not
    /// keeping up, so no new run may start writing.
    #[error("storage cannot keep up with the writes queued")]
    Overloaded,
    /// A query a tenant made expensive ran past its time budget and was stopped.
    #[error("the query ran past its {} ms budget", .budget.as_millis())]
    OverBudget { budget: std::time::Duration },
    #[error("storage failure: {0}")]
    Backend(String),
}

/// A run event as persisted: its envelope and the exact wire payload sent to clients.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub seq: u64,
    pub run_id: RunId,
    pub event_type: String,
    pub payload: Arc<str>,
}

/// Which of a thread's messages to read: the newest `limit` of those before
/// the message `before` (all of them without it), returned oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessagePage {
    pub limit: u32,
    pub before: Option<MessageId>,
}

impl MessagePage {
    /// The newest `limit` messages.
    pub fn newest(limit: u32) -> Self {
        Self {
            limit,
            before: None,
        }
    }
}

/// Which of a user's runs `list_runs` returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    pub status: Option<RunStatus>,
    pub thread_id: Option<ThreadId>,
    /// Most runs returned, newest first.
    pub limit: u32,
}

/// The user's event log bounds: `floor` is the highest `seq` retention has
/// deleted (0 when none), `head` the highest `seq` stored or deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogBounds {
    pub floor: u64,
    pub head: u64,
}

/// How a run ended, written once when it finishes.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    pub status: RunStatus,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// The assistant's answer, stored as a message of the run's thread.
    pub answer: Option<Message>,
}

/// A run paused until a person answers its tool calls: what the engine
/// needs to go on, kept across restarts. `state` is the engine's own
/// checkpoint (JSON), opaque to the store.
#[derive(Debug, Clone, PartialEq)]
pub struct RunPause {
    pub run_id: RunId,
    pub thread_id: ThreadId,
    pub state: serde_json::Value,
    /// After this the calls still unanswered expire.
    pub expires_at: time::OffsetDateTime,
}

/// The token usage and cost of one model call, recorded as the call finishes.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmCallRecord {
    /// The root run the call belongs to.
    pub run_id: RunId,
    pub model: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// US dollars, from the provider's price table (0 when the model is unpriced).
    pub cost_usd: f64,
    /// When the call settled, by the engine's clock (budgets count by it).
    pub at: time::OffsetDateTime,
}

/// Usage summed over the calls to one model.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ModelUsage {
    pub model: String,
    pub calls: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
}

/// One user's usage over all of their runs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UsageTotals {
    /// Runs that made at least one model call.
    pub runs: u64,
    pub calls: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
    /// Per model, most expensive first.
    pub by_model: Vec<ModelUsage>,
}

impl UsageTotals {
    /// The totals of `runs` runs over their per-model usage (most expensive first).
    pub fn summed(runs: u64, by_model: Vec<ModelUsage>) -> Self {
        let mut totals = Self {
            runs,
            ..Self::default()
        };
        for model in &by_model {
            totals.calls += model.calls;
            totals.input_tokens += model.input_tokens;
            totals.output_tokens += model.output_tokens;
            totals.cost_usd += model.cost_usd;
        }
        totals.by_model = by_model;
        totals
    }
}

/// Every read of user data takes the `UserId` it is for; a row of another
/// user is indistinguishable from a missing row (`None`).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    async fn ping(&self) -> Result<(), StoreError>;

    async fn create_user(&self, user: &User) -> Result<(), StoreError>;
    async fn find_user_by_username(&self, username: &str) -> Result<Option<User>, StoreError>;
    async fn get_user(&self, user_id: &UserId) -> Result<Option<User>, StoreError>;
    /// Ends every token issued to the user so far (sign-out everywhere);
    /// returns the new token generation, or `None` for an unknown user.
    async fn revoke_tokens(&self, user_id: &UserId) -> Result<Option<u32>, StoreError>;

    /// Stores the user's secret `name` sealed (encrypted, bound to the user
    /// and the name), replacing any; answers once committed.
    async fn put_secret(
        &self,
        user_id: &UserId,
        name: &str,
        value: &SecretValue,
    ) -> Result<(), StoreError>;
    /// The user's secret `name`, unsealed.
    async fn secret(&self, user_id: &UserId, name: &str)
    -> Result<Option<SecretValue>, StoreError>;
    /// The names of the user's secrets, by name.
    async fn secret_names(&self, user_id: &UserId) -> Result<Vec<SecretName>, StoreError>;
    /// Deletes the user's secret `name`; whether there was one.
    async fn delete_secret(&self, user_id: &UserId, name: &str) -> Result<bool, StoreError>;

    /// Queues a new thread without waiting for it to commit: later writes are
    /// applied after it, and reads of threads see it.
    fn create_thread(&self, thread: &Thread) -> Result<(), StoreError>;
    async fn get_thread(
        &self,
        user_id: &UserId,
        thread_id: &ThreadId,
    ) -> Result<Option<Thread>, StoreError>;
    /// At most `limit` threads, most recently active first, after the thread
    /// `after` in that order (from the top without it).
    async fn list_threads(
        &self,
        user_id: &UserId,
        limit: u32,
        after: Option<&ThreadId>,
    ) -> Result<Vec<Thread>, StoreError>;
    /// One page of the thread's messages, oldest first; `None` when the
    /// thread is not this user's. A `before` that is not a message of the
    /// thread gives an empty page.
    async fn list_messages(
        &self,
        user_id: &UserId,
        thread_id: &ThreadId,
        page: &MessagePage,
    ) -> Result<Option<Vec<Message>>, StoreError>;
    /// The user's own messages containing `query` (case-insensitive), newest first.
    async fn search_messages(
        &self,
        user_id: &UserId,
        query: &str,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError>;

    /// Queues a new run and the user message that started it, without waiting:
    /// the run's later writes are applied after it, and reads of runs wait on the queue.
    fn begin_run(&self, run: &RunRecord, message: Option<&Message>) -> Result<(), StoreError>;
    /// Queues the switch of a `queued` run to `running` (its turn came).
    fn start_queued_run(&self, user_id: &UserId, run_id: &RunId) -> Result<(), StoreError>;
    /// Queues the end of a run: its terminal `event` and its `outcome`, to be
    /// stored in one transaction, so no crash can leave a run ended without
    /// its end in the log (or the other way round). Queued in order with the
    /// user's events; once committed `subscriber` (if any) gets the event, and
    /// then the returned [`Committed`] resolves. Only the first end of a run
    /// changes its status.
    fn end_run(
        &self,
        user_id: &UserId,
        event: &RunEvent,
        payload: Arc<str>,
        outcome: &RunOutcome,
        subscriber: Option<Arc<dyn EventSink>>,
    ) -> Result<Committed, StoreError>;
    async fn get_run(
        &self,
        user_id: &UserId,
        run_id: &RunId,
    ) -> Result<Option<RunRecord>, StoreError>;

    /// Queues an event for storage without waiting (group commit); order is
    /// kept. Once its transaction has committed, `subscriber` gets it: nothing
    /// is published that is not stored.
    fn append_event(
        &self,
        user_id: &UserId,
        event: &RunEvent,
        payload: Arc<str>,
        subscriber: Arc<dyn EventSink>,
    ) -> Result<(), StoreError>;
    /// The user's log after `after_seq`, in `seq` order, at most `limit` events;
    /// sees every event already published.
    async fn list_events(
        &self,
        user_id: &UserId,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError>;
    /// What retention has deleted of the user's log, and its highest `seq`.
    async fn log_bounds(&self, user_id: &UserId) -> Result<LogBounds, StoreError>;
    /// Deletes every event older than `before` (whole prefixes of each user's
    /// log); returns how many.
    async fn prune_events(&self, before: time::OffsetDateTime) -> Result<u64, StoreError>;
    /// Events of one of the user's runs with `seq > after_seq`, in order; sees every
    /// event appended before the call.
    async fn list_run_events(
        &self,
        user_id: &UserId,
        run_id: &RunId,
        after_seq: u64,
    ) -> Result<Vec<StoredEvent>, StoreError>;
    /// The highest `seq` ever used for the user (0 when none), to continue
    /// numbering after a restart; retention never lowers it.
    async fn last_event_seq(&self, user_id: &UserId) -> Result<u64, StoreError> {
        Ok(self.log_bounds(user_id).await?.head)
    }

    /// Stores the run's pause (replacing an earlier one) and marks the run
    /// `waiting_approval`, in one transaction; answers once committed.
    async fn put_pause(&self, user_id: &UserId, pause: &RunPause) -> Result<(), StoreError>;
    /// Deletes the run's pause and marks the run `running` again, in one
    /// transaction; answers once committed.
    async fn take_pause(&self, user_id: &UserId, run_id: &RunId) -> Result<(), StoreError>;
    /// The pause of one of the user's runs.
    async fn pause(&self, user_id: &UserId, run_id: &RunId)
    -> Result<Option<RunPause>, StoreError>;
    /// Every pause of the user's runs, oldest first.
    async fn pauses(&self, user_id: &UserId) -> Result<Vec<RunPause>, StoreError>;
    /// Every user's pauses that expire before `now`, as (user, run); only the
    /// expiry sweep reads across users.
    async fn expired_pauses(
        &self,
        now: time::OffsetDateTime,
    ) -> Result<Vec<(UserId, RunId)>, StoreError>;

    /// The user's runs matching `filter`, newest first.
    async fn list_runs(
        &self,
        user_id: &UserId,
        filter: &RunFilter,
    ) -> Result<Vec<RunRecord>, StoreError>;
    /// Every run of every user that is not over (`queued` or `running`): the
    /// runs a crashed process left behind. Only recovery at start-up calls it;
    /// an instance taking over one user reads that user's with `list_runs`.
    async fn unfinished_runs(&self) -> Result<Vec<RunRecord>, StoreError>;

    /// Queues one model call's usage without waiting (group commit); it is
    /// committed before the run's outcome, which is written after it.
    fn record_llm_call(&self, user_id: &UserId, call: &LlmCallRecord);
    /// Usage of one of the user's runs, per model (empty when it made no model call).
    async fn run_usage(
        &self,
        user_id: &UserId,
        run_id: &RunId,
    ) -> Result<Vec<ModelUsage>, StoreError>;
    /// The user's usage summed over all of their runs.
    async fn usage_totals(&self, user_id: &UserId) -> Result<UsageTotals, StoreError>;

    /// Resolves once every write queued before the call is committed; an
    /// error while writes are failing.
    async fn sync(&self) -> Result<(), StoreError>;

    /// Whether a new run may start writing: `Overloaded` while the write queue
    /// is past its admission mark, the failure while writes fail.
    fn admit_writes(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Resolves once the write queue has room; runs in progress wait here
    /// instead of growing the queue without bound.
    async fn writable(&self) {}
    /// How many times writes have started failing since the store opened. A
    /// run that saw it change may have lost writes and cannot report success.
    fn failure_epoch(&self) -> u64 {
        0
    }

    /// Sets or clears the `admin` flag of the user named `username`;
    /// answers whether there is such a user.
    async fn set_admin(&self, username: &str, admin: bool) -> Result<bool, StoreError>;
    /// The user's own budget limits, replacing the configured defaults
    /// (`None`: the defaults apply).
    async fn budget_override(&self, user_id: &UserId) -> Result<Option<BudgetLimits>, StoreError>;
    /// Sets the user's own limits, or with `None` returns them to the defaults.
    async fn put_budget_override(
        &self,
        user_id: &UserId,
        limits: Option<&BudgetLimits>,
    ) -> Result<(), StoreError>;
    /// The user's model use over the calls made at or after `since`.
    async fn spend_since(
        &self,
        user_id: &UserId,
        since: time::OffsetDateTime,
    ) -> Result<Spend, StoreError>;

    /// Flushes queued writes; called on shutdown.
    async fn close(&self);
}
