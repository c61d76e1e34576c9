//! `UserStore`: the store as one user's work sees it, every call bound to that user.

use std::sync::Arc;

use crate::budget::{BudgetLimits, Spend};
use crate::event::RunEvent;
use crate::ids::{RunId, ThreadId, UserId};
use crate::model::{Message, RunRecord, RunStatus, Thread};
use crate::secret::SecretValue;
use crate::sink::EventSink;
use crate::store::{
    Committed, LlmCallRecord, MessagePage, RunOutcome, RunPause, Store, StoreError,
};

/// A handle on the store that can only read and write one user's rows. The
/// engine, the agents and the tools get this, never the unbound `Store`, so
/// reading another user's data cannot be written by accident: there is no
/// `UserId` parameter to get wrong.
#[derive(Clone)]
pub struct UserStore {
    user_id: UserId,
    store: Arc<dyn Store>,
}

impl UserStore {
    pub fn new(user_id: UserId, store: Arc<dyn Store>) -> Self {
        Self { user_id, store }
    }

    pub fn user_id(&self) -> &UserId {
        &self.user_id
    }

    pub async fn thread(&self, thread_id: &ThreadId) -> Result<Option<Thread>, StoreError> {
        self.store.get_thread(&self.user_id, thread_id).await
    }

    /// One page of the thread's messages, oldest first; `None` when it is not this user's.
    pub async fn messages(
        &self,
        thread_id: &ThreadId,
        page: &MessagePage,
    ) -> Result<Option<Vec<Message>>, StoreError> {
        self.store
            .list_messages(&self.user_id, thread_id, page)
            .await
    }

    /// This user's own messages containing `query`, newest first.
    pub async fn search_messages(
        &self,
        query: &str,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        self.store
            .search_messages(&self.user_id, query, limit)
            .await
    }

    /// Stores a pause of one of this user's runs (it waits for approval).
    pub async fn put_pause(&self, pause: &RunPause) -> Result<(), StoreError> {
        self.store.put_pause(&self.user_id, pause).await
    }

    /// Ends the pause of one of this user's runs: it runs again.
    pub async fn take_pause(&self, run_id: &RunId) -> Result<(), StoreError> {
        self.store.take_pause(&self.user_id, run_id).await
    }

    pub async fn pause(&self, run_id: &RunId) -> Result<Option<RunPause>, StoreError> {
        self.store.pause(&self.user_id, run_id).await
    }

    /// This user's paused runs, oldest first.
    pub async fn pauses(&self) -> Result<Vec<RunPause>, StoreError> {
        self.store.pauses(&self.user_id).await
    }

    /// This user's secret `name` (e.g. the credential of their MCP server).
    pub async fn secret(&self, name: &str) -> Result<Option<SecretValue>, StoreError> {
        self.store.secret(&self.user_id, name).await
    }

    /// Queues one model call's usage for this user's run.
    pub fn record_llm_call(&self, call: &LlmCallRecord) {
        self.store.record_llm_call(&self.user_id, call);
    }

    /// This user's own budget limits, if an admin set them.
    pub async fn budget_override(&self) -> Result<Option<BudgetLimits>, StoreError> {
        self.store.budget_override(&self.user_id).await
    }

    /// This user's model use since `since`.
    pub async fn spend_since(&self, since: time::OffsetDateTime) -> Result<Spend, StoreError> {
        self.store.spend_since(&self.user_id, since).await
    }

    /// Queues a new thread of this user (reads of threads see it at once).
    pub fn create_thread(&self, thread_id: &ThreadId, title: &str) -> Result<(), StoreError> {
        let now = crate::now();
        self.store.create_thread(&Thread {
            id: thread_id.clone(),
            user_id: self.user_id.clone(),
            title: title.to_owned(),
            created_at: now,
            updated_at: now,
        })
    }

    /// Queues a new run of this user in `status`, with the message that started it.
    pub fn begin_run(
        &self,
        run_id: &RunId,
        thread_id: &ThreadId,
        agent: &str,
        status: RunStatus,
        message: Option<&Message>,
    ) -> Result<(), StoreError> {
        let record = RunRecord {
            id: run_id.clone(),
            user_id: self.user_id.clone(),
            thread_id: thread_id.clone(),
            agent: agent.to_owned(),
            status,
            created_at: crate::now(),
            finished_at: None,
            error_code: None,
            error_message: None,
        };
        self.store.begin_run(&record, message)
    }

    pub fn start_queued_run(&self, run_id: &RunId) -> Result<(), StoreError> {
        self.store.start_queued_run(&self.user_id, run_id)
    }

    /// Queues the end of one of this user's runs: its terminal event and its
    /// outcome, in one transaction (see `Store::end_run`).
    pub fn end_run(
        &self,
        event: &RunEvent,
        payload: Arc<str>,
        outcome: &RunOutcome,
        subscriber: Arc<dyn EventSink>,
    ) -> Result<Committed, StoreError> {
        self.store
            .end_run(&self.user_id, event, payload, outcome, Some(subscriber))
    }

    /// Queues one of this user's events; `subscriber` hears of it once committed.
    pub fn append_event(
        &self,
        event: &RunEvent,
        payload: Arc<str>,
        subscriber: Arc<dyn EventSink>,
    ) -> Result<(), StoreError> {
        self.store
            .append_event(&self.user_id, event, payload, subscriber)
    }

    /// Whether a new run may start writing (see `Store::admit_writes`).
    pub fn admit_writes(&self) -> Result<(), StoreError> {
        self.store.admit_writes()
    }

    /// Resolves once the write queue has room.
    pub async fn writable(&self) {
        self.store.writable().await;
    }

    /// See `Store::failure_epoch`.
    pub fn failure_epoch(&self) -> u64 {
        self.store.failure_epoch()
    }

    /// Whether the store answers and takes writes.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.store.ping().await
    }

    /// Whether `run_id` is one of this user's runs.
    pub async fn owns_run(&self, run_id: &RunId) -> Result<bool, StoreError> {
        Ok(self.store.get_run(&self.user_id, run_id).await?.is_some())
    }
}

impl std::fmt::Debug for UserStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserStore")
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}
