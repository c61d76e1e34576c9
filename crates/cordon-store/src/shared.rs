//! The one implementation of `Store` for both databases: a macro over a store's read pool, its searches, its writer and its SQL, so what each read waits for, what each write queues and how rows become domain types are written once.
//!
//! A generic implementation over `sqlx::Database` would need a bound for
//! every column type and executor; the two stores differ only in their
//! pools' types and their SQL text, which a macro takes as they are. Each
//! store supplies `reads` (a sqlx pool), `searches` (closed with the store),
//! `writes` (its `WriteQueue`), an inherent `search_history` and a [`Sql`].

/// One database's text of the queries the shared implementation makes.
pub struct Sql {
    pub find_user_by_name: &'static str,
    pub get_user: &'static str,
    pub find_thread: &'static str,
    /// Binds: thread, user, `before` message (or NULL), limit; one row of
    /// NULL message columns for an empty page of an existing thread.
    pub thread_messages: &'static str,
    /// Binds: user, `after` thread (or NULL), limit.
    pub list_threads: &'static str,
    pub get_run: &'static str,
    pub list_events: &'static str,
    pub log_bounds: &'static str,
    /// Each user's highest `seq` older than the bound.
    pub prune_floors: &'static str,
    pub unfinished_runs: &'static str,
    pub list_run_events: &'static str,
    pub run_usage: &'static str,
    pub usage_runs: &'static str,
    pub usage_by_model: &'static str,
    /// The `n`th bind parameter (from 1), for the queries built at run time.
    pub param: fn(usize) -> String,
    /// How `list_runs` orders: newest first, ties by insertion.
    pub runs_newest_first: &'static str,
    /// Binds: user, name.
    pub secret: &'static str,
    /// Binds: user.
    pub secret_names: &'static str,
    /// Binds: user, run.
    pub pause: &'static str,
    /// Binds: user.
    pub pauses: &'static str,
    /// Binds: the bound (micros); answers `user_id`, `run_id`.
    pub expired_pauses: &'static str,
    /// Binds: user.
    pub budget_override: &'static str,
    /// Binds: user, since (micros); answers `tokens`, `cost_usd`.
    pub spend_since: &'static str,
}

pub const RUN_COLUMNS: &str =
    "id, user_id, thread_id, agent, status, created_at, finished_at, error_code, error_message";

/// Implements `Store` for `$store` with the SQL `$sql`.
macro_rules! impl_store {
    ($store:ty, $sql:expr) => {
        impl $store {
            fn sealing(&self) -> Result<&$crate::SealingKey, cordon_core::StoreError> {
                self.sealing.as_ref().ok_or_else(|| {
                    cordon_core::StoreError::Backend("secrets need a sealing key".into())
                })
            }

            async fn find_thread(
                &self,
                user_id: &cordon_core::UserId,
                thread_id: &cordon_core::ThreadId,
            ) -> Result<Option<cordon_core::Thread>, cordon_core::StoreError> {
                sqlx::query($sql.find_thread)
                    .bind(thread_id.as_str())
                    .bind(user_id.as_str())
                    .fetch_optional(&self.reads)
                    .await
                    .map_err($crate::convert::backend)?
                    .map($crate::convert::thread_of)
                    .transpose()
            }

            /// One page of the thread's messages, oldest first; `None` when
            /// the thread is not the user's. The query reads the thread row
            /// (so "not yours" and "empty" differ) joined with the page,
            /// newest first; it is reversed here.
            async fn thread_messages(
                &self,
                user_id: &cordon_core::UserId,
                thread_id: &cordon_core::ThreadId,
                page: &cordon_core::MessagePage,
            ) -> Result<Option<Vec<cordon_core::Message>>, cordon_core::StoreError> {
                use sqlx::Row;
                let rows = sqlx::query($sql.thread_messages)
                    .bind(thread_id.as_str())
                    .bind(user_id.as_str())
                    .bind(page.before.as_ref().map(|id| id.as_str()))
                    .bind(i64::from(page.limit.max(1)))
                    .fetch_all(&self.reads)
                    .await
                    .map_err($crate::convert::backend)?;
                if rows.is_empty() {
                    return Ok(None);
                }
                let mut messages: Vec<cordon_core::Message> = rows
                    .into_iter()
                    .filter(|row| {
                        row.try_get::<Option<String>, _>("id")
                            .ok()
                            .flatten()
                            .is_some()
                    })
                    .map($crate::convert::message_of)
                    .collect::<Result<_, _>>()?;
                messages.reverse();
                Ok(Some(messages))
            }

            async fn runs(
                &self,
                sql: &str,
                binds: &[&str],
                limit: Option<u32>,
            ) -> Result<Vec<cordon_core::RunRecord>, cordon_core::StoreError> {
                let mut query = sqlx::query(sql);
                for bind in binds {
                    query = query.bind(*bind);
                }
                if let Some(limit) = limit {
                    query = query.bind(i64::from(limit));
                }
                query
                    .fetch_all(&self.reads)
                    .await
                    .map_err($crate::convert::backend)?
                    .into_iter()
                    .map($crate::convert::run_of)
                    .collect()
            }

            async fn usage(
                &self,
                sql: &str,
                user_id: &cordon_core::UserId,
                run_id: Option<&cordon_core::RunId>,
            ) -> Result<Vec<cordon_core::ModelUsage>, cordon_core::StoreError> {
                let mut query = sqlx::query(sql).bind(user_id.as_str());
                if let Some(run_id) = run_id {
                    query = query.bind(run_id.as_str());
                }
                query
                    .fetch_all(&self.reads)
                    .await
                    .map_err($crate::convert::backend)?
                    .into_iter()
                    .map($crate::convert::model_usage_of)
                    .collect()
            }

            async fn user_where(
                &self,
                sql: &str,
                key: &str,
            ) -> Result<Option<cordon_core::User>, cordon_core::StoreError> {
                sqlx::query(sql)
                    .bind(key)
                    .fetch_optional(&self.reads)
                    .await
                    .map_err($crate::convert::backend)?
                    .map($crate::convert::user_of)
                    .transpose()
            }

            async fn events(
                &self,
                sql: &str,
                user_id: &cordon_core::UserId,
                run_id: Option<&cordon_core::RunId>,
                after_seq: u64,
                limit: Option<u32>,
            ) -> Result<Vec<cordon_core::StoredEvent>, cordon_core::StoreError> {
                let mut query = sqlx::query(sql).bind(user_id.as_str());
                if let Some(run_id) = run_id {
                    query = query.bind(run_id.as_str());
                }
                query = query.bind($crate::convert::seq_param(after_seq));
                if let Some(limit) = limit {
                    query = query.bind(i64::from(limit));
                }
                query
                    .fetch_all(&self.reads)
                    .await
                    .map_err($crate::convert::backend)?
                    .into_iter()
                    .map($crate::convert::event_of)
                    .collect()
            }
        }

        $crate::shared::impl_store_trait!($store, $sql);
    };
}

/// The `Store` trait's methods, for `impl_store!`.
macro_rules! impl_store_trait {
    ($store:ty, $sql:expr) => {
        #[async_trait::async_trait]
        impl cordon_core::Store for $store {
            /// Ready means reads answer and writes are taken: while they
            /// fail, a probe write is tried, so readiness comes back by itself.
            async fn ping(&self) -> Result<(), cordon_core::StoreError> {
                self.writes.probe_if_failing().await?;
                sqlx::query("SELECT 1")
                    .execute(&self.reads)
                    .await
                    .map(drop)
                    .map_err($crate::convert::backend)
            }

            async fn create_user(
                &self,
                user: &cordon_core::User,
            ) -> Result<(), cordon_core::StoreError> {
                self.writes.create_user(user).await
            }

            async fn find_user_by_username(
                &self,
                username: &str,
            ) -> Result<Option<cordon_core::User>, cordon_core::StoreError> {
                self.user_where($sql.find_user_by_name, username).await
            }

            async fn get_user(
                &self,
                user_id: &cordon_core::UserId,
            ) -> Result<Option<cordon_core::User>, cordon_core::StoreError> {
                self.user_where($sql.get_user, user_id.as_str()).await
            }

            async fn revoke_tokens(
                &self,
                user_id: &cordon_core::UserId,
            ) -> Result<Option<u32>, cordon_core::StoreError> {
                self.writes.revoke_tokens(user_id).await?;
                Ok(self
                    .get_user(user_id)
                    .await?
                    .map(|user| user.token_generation))
            }

            async fn put_secret(
                &self,
                user_id: &cordon_core::UserId,
                name: &str,
                value: &cordon_core::SecretValue,
            ) -> Result<(), cordon_core::StoreError> {
                let sealed = self.sealing()?.seal(user_id.as_str(), name, value);
                self.writes.put_secret(user_id, name, sealed).await
            }

            async fn secret(
                &self,
                user_id: &cordon_core::UserId,
                name: &str,
            ) -> Result<Option<cordon_core::SecretValue>, cordon_core::StoreError> {
                use sqlx::Row;
                let row = sqlx::query($sql.secret)
                    .bind(user_id.as_str())
                    .bind(name)
                    .fetch_optional(&self.reads)
                    .await
                    .map_err($crate::convert::backend)?;
                let Some(row) = row else { return Ok(None) };
                let sealed: Vec<u8> = row.try_get("sealed").map_err($crate::convert::backend)?;
                self.sealing()?
                    .open(user_id.as_str(), name, &sealed)
                    .map(Some)
            }

            async fn secret_names(
                &self,
                user_id: &cordon_core::UserId,
            ) -> Result<Vec<cordon_core::SecretName>, cordon_core::StoreError> {
                use sqlx::Row;
                sqlx::query($sql.secret_names)
                    .bind(user_id.as_str())
                    .fetch_all(&self.reads)
                    .await
                    .map_err($crate::convert::backend)?
                    .into_iter()
                    .map(|row| {
                        let name = row.try_get("name").map_err($crate::convert::backend)?;
                        let at = row
                            .try_get("updated_at")
                            .map_err($crate::convert::backend)?;
                        Ok(cordon_core::SecretName {
                            name,
                            updated_at: $crate::convert::from_micros(at)?,
                        })
                    })
                    .collect()
            }

            async fn delete_secret(
                &self,
                user_id: &cordon_core::UserId,
                name: &str,
            ) -> Result<bool, cordon_core::StoreError> {
                let existed = self
                    .secret_names(user_id)
                    .await?
                    .iter()
                    .any(|s| s.name == name);
                if existed {
                    self.writes.delete_secret(user_id, name).await?;
                }
                Ok(existed)
            }

            async fn put_pause(
                &self,
                user_id: &cordon_core::UserId,
                pause: &cordon_core::RunPause,
            ) -> Result<(), cordon_core::StoreError> {
                self.writes.put_pause(user_id, pause).await
            }

            async fn take_pause(
                &self,
                user_id: &cordon_core::UserId,
                run_id: &cordon_core::RunId,
            ) -> Result<(), cordon_core::StoreError> {
                self.writes.take_pause(user_id, run_id).await
            }

            async fn pause(
                &self,
                user_id: &cordon_core::UserId,
                run_id: &cordon_core::RunId,
            ) -> Result<Option<cordon_core::RunPause>, cordon_core::StoreError> {
                sqlx::query($sql.pause)
                    .bind(user_id.as_str())
                    .bind(run_id.as_str())
                    .fetch_optional(&self.reads)
                    .await
                    .map_err($crate::convert::backend)?
                    .map($crate::convert::pause_of)
                    .transpose()
            }

            async fn pauses(
                &self,
                user_id: &cordon_core::UserId,
            ) -> Result<Vec<cordon_core::RunPause>, cordon_core::StoreError> {
                // Pauses are written acknowledged: nothing of them waits in the queue.
                sqlx::query($sql.pauses)
                    .bind(user_id.as_str())
                    .fetch_all(&self.reads)
                    .await
                    .map_err($crate::convert::backend)?
                    .into_iter()
                    .map($crate::convert::pause_of)
                    .collect()
            }

            async fn expired_pauses(
                &self,
                now: time::OffsetDateTime,
            ) -> Result<Vec<(cordon_core::UserId, cordon_core::RunId)>, cordon_core::StoreError>
            {
                use sqlx::Row;
                sqlx::query($sql.expired_pauses)
                    .bind($crate::convert::to_micros(now))
                    .fetch_all(&self.reads)
                    .await
                    .map_err($crate::convert::backend)?
                    .into_iter()
                    .map(|row| {
                        let user: String =
                            row.try_get("user_id").map_err($crate::convert::backend)?;
                        let run: String =
                            row.try_get("run_id").map_err($crate::convert::backend)?;
                        Ok((
                            $crate::convert::id(cordon_core::UserId::parse, user)?,
                            $crate::convert::id(cordon_core::RunId::parse, run)?,
                        ))
                    })
                    .collect()
            }

            fn create_thread(
                &self,
                thread: &cordon_core::Thread,
            ) -> Result<(), cordon_core::StoreError> {
                self.writes.create_thread(thread)
            }

            async fn get_thread(
                &self,
                user_id: &cordon_core::UserId,
                thread_id: &cordon_core::ThreadId,
            ) -> Result<Option<cordon_core::Thread>, cordon_core::StoreError> {
                // Threads are queued without waiting; a miss may be one still queued.
                self.writes
                    .read_own(user_id, || self.find_thread(user_id, thread_id))
                    .await
            }

            async fn list_threads(
                &self,
                user_id: &cordon_core::UserId,
                limit: u32,
                after: Option<&cordon_core::ThreadId>,
            ) -> Result<Vec<cordon_core::Thread>, cordon_core::StoreError> {
                self.writes.own_writes_settled(user_id).await?;
                sqlx::query($sql.list_threads)
                    .bind(user_id.as_str())
                    .bind(after.map(cordon_core::ThreadId::as_str))
                    .bind(i64::from(limit.max(1)))
                    .fetch_all(&self.reads)
                    .await
                    .map_err($crate::convert::backend)?
                    .into_iter()
                    .map($crate::convert::thread_of)
                    .collect()
            }

            async fn list_messages(
                &self,
                user_id: &cordon_core::UserId,
                thread_id: &cordon_core::ThreadId,
                page: &cordon_core::MessagePage,
            ) -> Result<Option<Vec<cordon_core::Message>>, cordon_core::StoreError> {
                self.writes
                    .read_own(user_id, || self.thread_messages(user_id, thread_id, page))
                    .await
            }

            async fn search_messages(
                &self,
                user_id: &cordon_core::UserId,
                query: &str,
                limit: u32,
            ) -> Result<Vec<cordon_core::Message>, cordon_core::StoreError> {
                // SQLite's trigram index cannot match shorter text; PostgreSQL
                // answers the same, so the stores agree.
                if query.chars().count() < 3 {
                    return Ok(Vec::new());
                }
                // The run's own message is queued with `begin_run`, not
                // awaited: a search from that run must find it.
                self.writes.own_writes_settled(user_id).await?;
                self.search_history(user_id, query, limit).await
            }

            fn begin_run(
                &self,
                run: &cordon_core::RunRecord,
                message: Option<&cordon_core::Message>,
            ) -> Result<(), cordon_core::StoreError> {
                self.writes.begin_run(run, message)
            }

            fn start_queued_run(
                &self,
                user_id: &cordon_core::UserId,
                run_id: &cordon_core::RunId,
            ) -> Result<(), cordon_core::StoreError> {
                self.writes.start_queued_run(user_id, run_id)
            }

            fn end_run(
                &self,
                user_id: &cordon_core::UserId,
                event: &cordon_core::RunEvent,
                payload: std::sync::Arc<str>,
                outcome: &cordon_core::RunOutcome,
                subscriber: Option<std::sync::Arc<dyn cordon_core::EventSink>>,
            ) -> Result<cordon_core::Committed, cordon_core::StoreError> {
                self.writes
                    .end_run(user_id, event, payload, outcome, subscriber)
            }

            async fn get_run(
                &self,
                user_id: &cordon_core::UserId,
                run_id: &cordon_core::RunId,
            ) -> Result<Option<cordon_core::RunRecord>, cordon_core::StoreError> {
                self.writes.own_writes_settled(user_id).await?;
                let binds = [run_id.as_str(), user_id.as_str()];
                Ok(self.runs($sql.get_run, &binds, None).await?.pop())
            }

            fn append_event(
                &self,
                user_id: &cordon_core::UserId,
                event: &cordon_core::RunEvent,
                payload: std::sync::Arc<str>,
                subscriber: std::sync::Arc<dyn cordon_core::EventSink>,
            ) -> Result<(), cordon_core::StoreError> {
                self.writes
                    .append_event(user_id, event, payload, subscriber)
            }

            async fn list_events(
                &self,
                user_id: &cordon_core::UserId,
                after_seq: u64,
                limit: u32,
            ) -> Result<Vec<cordon_core::StoredEvent>, cordon_core::StoreError> {
                // No wait: an event is published only after it committed, so
                // everything a client could have seen is already readable.
                self.events($sql.list_events, user_id, None, after_seq, Some(limit))
                    .await
            }

            async fn log_bounds(
                &self,
                user_id: &cordon_core::UserId,
            ) -> Result<cordon_core::LogBounds, cordon_core::StoreError> {
                let (floor, head): (i64, i64) = sqlx::query_as($sql.log_bounds)
                    .bind(user_id.as_str())
                    .fetch_one(&self.reads)
                    .await
                    .map_err($crate::convert::backend)?;
                let floor = u64::try_from(floor).unwrap_or(0);
                Ok(cordon_core::LogBounds {
                    floor,
                    head: u64::try_from(head).unwrap_or(0).max(floor),
                })
            }

            async fn prune_events(
                &self,
                before: time::OffsetDateTime,
            ) -> Result<u64, cordon_core::StoreError> {
                // The scan runs on a reader; the writer deletes by key.
                let floors: Vec<(String, i64)> = sqlx::query_as($sql.prune_floors)
                    .bind($crate::convert::to_micros(before))
                    .fetch_all(&self.reads)
                    .await
                    .map_err($crate::convert::backend)?;
                if floors.is_empty() {
                    return Ok(0);
                }
                self.writes.prune(floors).await
            }

            async fn list_runs(
                &self,
                user_id: &cordon_core::UserId,
                filter: &cordon_core::RunFilter,
            ) -> Result<Vec<cordon_core::RunRecord>, cordon_core::StoreError> {
                self.writes.own_writes_settled(user_id).await?;
                let param = $sql.param;
                let mut sql = format!(
                    "SELECT {} FROM runs WHERE user_id = {}",
                    $crate::shared::RUN_COLUMNS,
                    param(1)
                );
                let mut binds = vec![user_id.as_str()];
                if let Some(status) = filter.status {
                    binds.push(status.as_str());
                    sql.push_str(&format!(" AND status = {}", param(binds.len())));
                }
                if let Some(thread_id) = &filter.thread_id {
                    binds.push(thread_id.as_str());
                    sql.push_str(&format!(" AND thread_id = {}", param(binds.len())));
                }
                sql.push_str($sql.runs_newest_first);
                sql.push_str(&format!(" LIMIT {}", param(binds.len() + 1)));
                self.runs(&sql, &binds, Some(filter.limit)).await
            }

            async fn unfinished_runs(
                &self,
            ) -> Result<Vec<cordon_core::RunRecord>, cordon_core::StoreError> {
                self.writes.barrier().await?;
                self.runs($sql.unfinished_runs, &[], None).await
            }

            async fn list_run_events(
                &self,
                user_id: &cordon_core::UserId,
                run_id: &cordon_core::RunId,
                after_seq: u64,
            ) -> Result<Vec<cordon_core::StoredEvent>, cordon_core::StoreError> {
                self.writes.own_writes_settled(user_id).await?;
                self.events($sql.list_run_events, user_id, Some(run_id), after_seq, None)
                    .await
            }

            fn record_llm_call(
                &self,
                user_id: &cordon_core::UserId,
                call: &cordon_core::LlmCallRecord,
            ) {
                self.writes.record_llm_call(user_id, call);
            }

            async fn run_usage(
                &self,
                user_id: &cordon_core::UserId,
                run_id: &cordon_core::RunId,
            ) -> Result<Vec<cordon_core::ModelUsage>, cordon_core::StoreError> {
                self.writes.own_writes_settled(user_id).await?;
                self.usage($sql.run_usage, user_id, Some(run_id)).await
            }

            async fn usage_totals(
                &self,
                user_id: &cordon_core::UserId,
            ) -> Result<cordon_core::UsageTotals, cordon_core::StoreError> {
                self.writes.own_writes_settled(user_id).await?;
                let runs: i64 = sqlx::query_scalar($sql.usage_runs)
                    .bind(user_id.as_str())
                    .fetch_one(&self.reads)
                    .await
                    .map_err($crate::convert::backend)?;
                let by_model = self.usage($sql.usage_by_model, user_id, None).await?;
                Ok(cordon_core::UsageTotals::summed(
                    u64::try_from(runs).unwrap_or(0),
                    by_model,
                ))
            }

            async fn set_admin(
                &self,
                username: &str,
                admin: bool,
            ) -> Result<bool, cordon_core::StoreError> {
                let Some(user) = self.find_user_by_username(username).await? else {
                    return Ok(false);
                };
                self.writes.set_admin(&user.id, admin).await?;
                Ok(true)
            }

            async fn budget_override(
                &self,
                user_id: &cordon_core::UserId,
            ) -> Result<Option<cordon_core::BudgetLimits>, cordon_core::StoreError> {
                // No wait for the user's queued writes: a budget is written
                // only through an acknowledged write, committed before its
                // route answers, and this read precedes model calls.
                sqlx::query($sql.budget_override)
                    .bind(user_id.as_str())
                    .fetch_optional(&self.reads)
                    .await
                    .map_err($crate::convert::backend)?
                    .map($crate::convert::budget_limits_of)
                    .transpose()
            }

            async fn put_budget_override(
                &self,
                user_id: &cordon_core::UserId,
                limits: Option<&cordon_core::BudgetLimits>,
            ) -> Result<(), cordon_core::StoreError> {
                self.writes.put_budget(user_id, limits.copied()).await
            }

            async fn spend_since(
                &self,
                user_id: &cordon_core::UserId,
                since: time::OffsetDateTime,
            ) -> Result<cordon_core::Spend, cordon_core::StoreError> {
                self.writes.own_writes_settled(user_id).await?;
                sqlx::query($sql.spend_since)
                    .bind(user_id.as_str())
                    .bind($crate::convert::to_micros(since))
                    .fetch_one(&self.reads)
                    .await
                    .map_err($crate::convert::backend)
                    .and_then($crate::convert::spend_of)
            }

            async fn sync(&self) -> Result<(), cordon_core::StoreError> {
                self.writes.sync().await
            }

            fn admit_writes(&self) -> Result<(), cordon_core::StoreError> {
                self.writes.admit_writes()
            }

            async fn writable(&self) {
                self.writes.writable().await;
            }

            fn failure_epoch(&self) -> u64 {
                self.writes.failure_epoch()
            }

            async fn close(&self) {
                let _ = self.writes.barrier().await;
                self.reads.close().await;
                self.searches.close().await;
            }
        }
    };
}

pub(crate) use {impl_store, impl_store_trait};
