//! The store conformance suite: one set of tests, run against `SqliteStore` and `PgStore`, for every method of `Store` and the rule that another user's row is indistinguishable from a missing one.
//!
//! PostgreSQL: `CORDON_TEST_DATABASE_URL` names a server the tests may
//! create databases on (`.ci/run` starts one); each test gets a database of
//! its own. Without it the PostgreSQL half is skipped, except under CI,
//! where it fails. Each test is an `async fn(Arc<dyn Store>)`.
#![allow(
    clippy::unwrap_used,
    reason = "a test should panic loudly on a broken assumption"
)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cordon_core::{
    BudgetLimits, EventSink, LlmCallRecord, Message, MessageId, MessagePage, Role, RunEvent,
    RunEventKind, RunFilter, RunId, RunOutcome, RunPause, RunRecord, RunStatus, SecretValue, Store,
    StoreError, Thread, ThreadId, User, UserId,
};
use cordon_store::{PgStore, SealingKey, SqliteStore, StoreOptions};
use cordon_test_support::on_each_database;
use cordon_test_support::postgres::{Database, Fresh};
use time::OffsetDateTime;

/// Opens a fresh store on `database` and runs `test` on it (skipped when
/// there is no PostgreSQL server outside CI).
async fn run_on_store<F, Fut>(database: Database, test: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let Some(fresh) = database.fresh().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        sealing_key: Some(SealingKey::new(&[42; 32])),
        ..StoreOptions::default()
    };
    let store: Arc<dyn Store> = match fresh {
        Fresh::Postgres(url) => PgStore::open(&url, options).await.unwrap(),
        Fresh::Sqlite => SqliteStore::open_with(dir.path(), options).await.unwrap(),
    };
    test(store).await;
}

on_each_database!(
    with = run_on_store;
    users_are_found_by_id_and_by_name_in_any_case,
    a_taken_username_is_refused_in_any_case,
    revoking_tokens_bumps_the_generation,
    threads_are_the_owners_only_and_listed_newest_first_in_pages,
    messages_page_oldest_first_and_another_users_thread_is_missing,
    runs_move_through_their_states_once,
    runs_are_listed_by_filter_and_unfinished_ones_for_recovery,
    events_are_published_after_commit_and_listed_per_user,
    a_taken_seq_is_never_published_twice,
    pruning_deletes_old_prefixes_and_keeps_the_head,
    a_run_ends_with_its_terminal_event_in_one_transaction,
    usage_is_summed_per_run_and_per_user,
    search_finds_the_users_own_messages_only,
    writes_queued_together_apply_in_queue_order,
    secrets_are_the_owners_only_replaced_listed_and_deleted,
    a_paused_run_keeps_its_checkpoint_until_taken_and_expires_by_time,
    admins_are_granted_and_revoked_by_name,
    budgets_are_the_users_own_and_spend_is_summed_from_a_time,
);

fn at(micros: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000).unwrap()
}

fn user(name: &str) -> User {
    User {
        id: UserId::generate(),
        username: name.to_owned(),
        password_hash: "$argon2id$not-a-real-hash".to_owned(),
        created_at: at(1_700_000_000_000_000),
        token_generation: 0,
        admin: false,
    }
}

async fn signed_up(store: &Arc<dyn Store>, name: &str) -> User {
    let user = user(name);
    store.create_user(&user).await.unwrap();
    user
}

fn thread(owner: &User, updated: i64) -> Thread {
    Thread {
        id: ThreadId::generate(),
        user_id: owner.id.clone(),
        title: format!("thread at {updated}"),
        created_at: at(updated),
        updated_at: at(updated),
    }
}

fn run(owner: &User, thread: &Thread, status: RunStatus, created: i64) -> RunRecord {
    RunRecord {
        id: RunId::generate(),
        user_id: owner.id.clone(),
        thread_id: thread.id.clone(),
        agent: "supervisor".to_owned(),
        status,
        created_at: at(created),
        finished_at: None,
        error_code: None,
        error_message: None,
    }
}

fn message(thread: &Thread, role: Role, content: &str, run: Option<&RunRecord>) -> Message {
    Message {
        id: MessageId::generate(),
        thread_id: thread.id.clone(),
        role,
        content: content.to_owned(),
        run_id: run.map(|run| run.id.clone()),
        created_at: at(1_700_000_000_000_000),
    }
}

fn completed(answer: Option<Message>) -> RunOutcome {
    RunOutcome {
        status: RunStatus::Completed,
        error_code: None,
        error_message: None,
        answer,
    }
}

fn event(run: &RunRecord, seq: u64, ts: i64) -> RunEvent {
    RunEvent {
        seq,
        ts: at(ts),
        run_id: run.id.clone(),
        thread_id: run.thread_id.clone(),
        kind: RunEventKind::AgentDelta {
            agent: "supervisor".to_owned(),
            text: format!("part {seq}"),
        },
    }
}

/// Ends `run` with a terminal event at `seq` in `owner`'s log.
async fn end(
    store: &Arc<dyn Store>,
    owner: &User,
    run: &RunRecord,
    seq: u64,
    outcome: &RunOutcome,
) -> Result<(), StoreError> {
    let mut ended = event(run, seq, 3_000);
    ended.kind = RunEventKind::AgentCompleted {
        agent: "supervisor".to_owned(),
        answer: String::new(),
        duration_ms: 0,
    };
    let payload: Arc<str> = Arc::from(format!("{{\"seq\":{seq}}}"));
    store
        .end_run(&owner.id, &ended, payload, outcome, None)?
        .await
}

/// Records what the store published, in order.
struct Recorder {
    user_id: UserId,
    heard: Mutex<Vec<(u64, String)>>,
}

impl Recorder {
    fn new(user: &User) -> Arc<Self> {
        Arc::new(Self {
            user_id: user.id.clone(),
            heard: Mutex::new(Vec::new()),
        })
    }

    fn heard(&self) -> Vec<(u64, String)> {
        self.heard.lock().unwrap().clone()
    }
}

impl EventSink for Recorder {
    fn user_id(&self) -> &UserId {
        &self.user_id
    }

    fn publish(&self, seq: u64, payload: &Arc<str>) {
        self.heard.lock().unwrap().push((seq, payload.to_string()));
    }
}

fn append(store: &Arc<dyn Store>, owner: &User, event: &RunEvent, sink: &Arc<Recorder>) {
    let payload: Arc<str> = Arc::from(format!("{{\"seq\":{}}}", event.seq));
    store
        .append_event(
            &owner.id,
            event,
            payload,
            Arc::clone(sink) as Arc<dyn EventSink>,
        )
        .unwrap();
}

async fn users_are_found_by_id_and_by_name_in_any_case(store: Arc<dyn Store>) {
    let ada = signed_up(&store, "ada").await;
    let found = store.find_user_by_username("ADA").await.unwrap().unwrap();
    assert_eq!(
        (found.id, found.username),
        (ada.id.clone(), "ada".to_owned())
    );
    let by_id = store.get_user(&ada.id).await.unwrap().unwrap();
    assert_eq!(by_id.password_hash, ada.password_hash);
    assert_eq!(by_id.created_at, ada.created_at);
    assert!(store.find_user_by_username("bob").await.unwrap().is_none());
    assert!(store.get_user(&UserId::generate()).await.unwrap().is_none());
    store.ping().await.unwrap();
}

async fn a_taken_username_is_refused_in_any_case(store: Arc<dyn Store>) {
    signed_up(&store, "ada").await;
    let again = store.create_user(&user("Ada")).await;
    assert_eq!(again, Err(StoreError::UsernameTaken));
    // The refusal is the write's alone: the store goes on taking writes.
    signed_up(&store, "bob").await;
    store.sync().await.unwrap();
}

async fn revoking_tokens_bumps_the_generation(store: Arc<dyn Store>) {
    let ada = signed_up(&store, "ada").await;
    assert_eq!(store.revoke_tokens(&ada.id).await.unwrap(), Some(1));
    assert_eq!(store.revoke_tokens(&ada.id).await.unwrap(), Some(2));
    assert_eq!(
        store
            .get_user(&ada.id)
            .await
            .unwrap()
            .unwrap()
            .token_generation,
        2
    );
    assert_eq!(
        store.revoke_tokens(&UserId::generate()).await.unwrap(),
        None
    );
}

async fn threads_are_the_owners_only_and_listed_newest_first_in_pages(store: Arc<dyn Store>) {
    let ada = signed_up(&store, "ada").await;
    let bob = signed_up(&store, "bob").await;
    let threads: Vec<Thread> = (0..5).map(|i| thread(&ada, 1_000 + i)).collect();
    for t in &threads {
        store.create_thread(t).unwrap();
    }
    store.create_thread(&thread(&bob, 5_000)).unwrap();
    // Queued, not awaited: reads see them anyway.
    let listed = store.list_threads(&ada.id, 10, None).await.unwrap();
    let ids: Vec<_> = listed.iter().map(|t| t.id.clone()).collect();
    let newest_first: Vec<_> = threads.iter().rev().map(|t| t.id.clone()).collect();
    assert_eq!(ids, newest_first);
    assert_eq!(listed[0], threads[4]);
    let page = store
        .list_threads(&ada.id, 2, Some(&threads[3].id))
        .await
        .unwrap();
    let page: Vec<_> = page.iter().map(|t| t.id.clone()).collect();
    assert_eq!(page, vec![threads[2].id.clone(), threads[1].id.clone()]);
    assert_eq!(
        store.get_thread(&ada.id, &threads[0].id).await.unwrap(),
        Some(threads[0].clone())
    );
    // Bob's view of Ada's thread is a missing thread.
    assert_eq!(
        store.get_thread(&bob.id, &threads[0].id).await.unwrap(),
        None
    );
    assert_eq!(
        store.list_threads(&bob.id, 10, None).await.unwrap().len(),
        1
    );
    let foreign_cursor = store.list_threads(&bob.id, 10, Some(&threads[3].id)).await;
    assert_eq!(foreign_cursor.unwrap(), vec![]);
}

async fn messages_page_oldest_first_and_another_users_thread_is_missing(store: Arc<dyn Store>) {
    let ada = signed_up(&store, "ada").await;
    let bob = signed_up(&store, "bob").await;
    let t = thread(&ada, 1_000);
    store.create_thread(&t).unwrap();
    let empty = store
        .list_messages(&ada.id, &t.id, &MessagePage::newest(10))
        .await;
    assert_eq!(empty.unwrap(), Some(vec![]));
    let mut said = Vec::new();
    for i in 0..3 {
        let r = run(&ada, &t, RunStatus::Running, 2_000 + i);
        let question = message(&t, Role::User, &format!("question {i}"), Some(&r));
        store.begin_run(&r, Some(&question)).unwrap();
        let mut answer = message(&t, Role::Assistant, &format!("answer {i}"), Some(&r));
        answer.created_at = at(9_000 + i);
        let seq = u64::try_from(i + 1).unwrap();
        end(&store, &ada, &r, seq, &completed(Some(answer.clone())))
            .await
            .unwrap();
        said.extend([question, answer]);
    }
    let all = store
        .list_messages(&ada.id, &t.id, &MessagePage::newest(10))
        .await
        .unwrap();
    assert_eq!(all, Some(said.clone()));
    let newest_two = store
        .list_messages(&ada.id, &t.id, &MessagePage::newest(2))
        .await
        .unwrap();
    assert_eq!(newest_two, Some(said[4..].to_vec()));
    let before = MessagePage {
        limit: 2,
        before: Some(said[4].id.clone()),
    };
    let older = store.list_messages(&ada.id, &t.id, &before).await.unwrap();
    assert_eq!(older, Some(said[2..4].to_vec()));
    let unknown_before = MessagePage {
        limit: 2,
        before: Some(MessageId::generate()),
    };
    let page = store
        .list_messages(&ada.id, &t.id, &unknown_before)
        .await
        .unwrap();
    assert_eq!(page, Some(vec![]));
    assert_eq!(
        store
            .list_messages(&bob.id, &t.id, &MessagePage::newest(10))
            .await
            .unwrap(),
        None
    );
    // A thread's `updated_at` is its last answer.
    let updated = store
        .get_thread(&ada.id, &t.id)
        .await
        .unwrap()
        .unwrap()
        .updated_at;
    assert_eq!(updated, at(9_002));
}

async fn runs_move_through_their_states_once(store: Arc<dyn Store>) {
    let ada = signed_up(&store, "ada").await;
    let bob = signed_up(&store, "bob").await;
    let t = thread(&ada, 1_000);
    store.create_thread(&t).unwrap();
    let r = run(&ada, &t, RunStatus::Queued, 2_000);
    store.begin_run(&r, None).unwrap();
    assert_eq!(
        store.get_run(&ada.id, &r.id).await.unwrap(),
        Some(r.clone())
    );
    // Bob can neither see nor move Ada's run.
    assert_eq!(store.get_run(&bob.id, &r.id).await.unwrap(), None);
    store.start_queued_run(&bob.id, &r.id).unwrap();
    store.sync().await.unwrap();
    assert_eq!(
        store.get_run(&ada.id, &r.id).await.unwrap().unwrap().status,
        RunStatus::Queued
    );
    store.start_queued_run(&ada.id, &r.id).unwrap();
    assert_eq!(
        store.get_run(&ada.id, &r.id).await.unwrap().unwrap().status,
        RunStatus::Running
    );
    let failed = RunOutcome {
        status: RunStatus::Failed,
        error_code: Some("llm_unavailable".to_owned()),
        error_message: Some("the provider could not be reached".to_owned()),
        answer: None,
    };
    end(&store, &bob, &r, 1, &completed(None)).await.unwrap();
    end(&store, &ada, &r, 1, &failed).await.unwrap();
    // Only the first end counts.
    end(&store, &ada, &r, 2, &completed(None)).await.unwrap();
    let ended = store.get_run(&ada.id, &r.id).await.unwrap().unwrap();
    assert_eq!(ended.status, RunStatus::Failed);
    assert_eq!(ended.error_code.as_deref(), Some("llm_unavailable"));
    assert_eq!(ended.error_message, failed.error_message);
    assert!(ended.finished_at.is_some());
}

async fn runs_are_listed_by_filter_and_unfinished_ones_for_recovery(store: Arc<dyn Store>) {
    let ada = signed_up(&store, "ada").await;
    let bob = signed_up(&store, "bob").await;
    let (t1, t2) = (thread(&ada, 1_000), thread(&ada, 1_001));
    let tb = thread(&bob, 1_002);
    for t in [&t1, &t2, &tb] {
        store.create_thread(t).unwrap();
    }
    let r1 = run(&ada, &t1, RunStatus::Running, 2_000);
    let r2 = run(&ada, &t1, RunStatus::Running, 2_001);
    let r3 = run(&ada, &t2, RunStatus::Queued, 2_002);
    let rb = run(&bob, &tb, RunStatus::Running, 2_003);
    for r in [&r1, &r2, &r3, &rb] {
        store.begin_run(r, None).unwrap();
    }
    end(&store, &ada, &r1, 1, &completed(None)).await.unwrap();
    let ids = |runs: Vec<RunRecord>| runs.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let filter = |status, thread_id: Option<&Thread>, limit| RunFilter {
        status,
        thread_id: thread_id.map(|t| t.id.clone()),
        limit,
    };
    let all = store
        .list_runs(&ada.id, &filter(None, None, 10))
        .await
        .unwrap();
    assert_eq!(ids(all), vec![r3.id.clone(), r2.id.clone(), r1.id.clone()]);
    let newest = store
        .list_runs(&ada.id, &filter(None, None, 1))
        .await
        .unwrap();
    assert_eq!(ids(newest), vec![r3.id.clone()]);
    let on_t1 = store
        .list_runs(&ada.id, &filter(None, Some(&t1), 10))
        .await
        .unwrap();
    assert_eq!(ids(on_t1), vec![r2.id.clone(), r1.id.clone()]);
    let done = store
        .list_runs(&ada.id, &filter(Some(RunStatus::Completed), None, 10))
        .await;
    assert_eq!(ids(done.unwrap()), vec![r1.id.clone()]);
    let foreign = store
        .list_runs(&bob.id, &filter(None, Some(&t1), 10))
        .await
        .unwrap();
    assert_eq!(foreign, vec![]);
    let unfinished = store.unfinished_runs().await.unwrap();
    assert_eq!(ids(unfinished), vec![r2.id, r3.id, rb.id]);
}

async fn events_are_published_after_commit_and_listed_per_user(store: Arc<dyn Store>) {
    let ada = signed_up(&store, "ada").await;
    let bob = signed_up(&store, "bob").await;
    let t = thread(&ada, 1_000);
    store.create_thread(&t).unwrap();
    let r = run(&ada, &t, RunStatus::Running, 2_000);
    store.begin_run(&r, None).unwrap();
    let sink = Recorder::new(&ada);
    for seq in 1..=50 {
        append(&store, &ada, &event(&r, seq, 3_000), &sink);
    }
    store.sync().await.unwrap();
    let heard: Vec<u64> = sink.heard().into_iter().map(|(seq, _)| seq).collect();
    assert_eq!(
        heard,
        (1..=50).collect::<Vec<_>>(),
        "published once each, in seq order"
    );
    let page = store.list_events(&ada.id, 10, 5).await.unwrap();
    assert_eq!(
        page.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![11, 12, 13, 14, 15]
    );
    assert_eq!(&*page[0].payload, "{\"seq\":11}");
    assert_eq!(page[0].event_type, "agent_delta");
    assert_eq!(page[0].run_id, r.id);
    let of_run = store.list_run_events(&ada.id, &r.id, 45).await.unwrap();
    assert_eq!(
        of_run.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![46, 47, 48, 49, 50]
    );
    assert_eq!(store.log_bounds(&ada.id).await.unwrap().head, 50);
    assert_eq!(store.last_event_seq(&ada.id).await.unwrap(), 50);
    // Bob's log is empty, and Ada's run has no events for him.
    assert_eq!(store.list_events(&bob.id, 0, 100).await.unwrap(), vec![]);
    assert_eq!(
        store.list_run_events(&bob.id, &r.id, 0).await.unwrap(),
        vec![]
    );
    assert_eq!(store.log_bounds(&bob.id).await.unwrap().head, 0);
}

async fn a_taken_seq_is_never_published_twice(store: Arc<dyn Store>) {
    let ada = signed_up(&store, "ada").await;
    let t = thread(&ada, 1_000);
    store.create_thread(&t).unwrap();
    let r = run(&ada, &t, RunStatus::Running, 2_000);
    store.begin_run(&r, None).unwrap();
    let sink = Recorder::new(&ada);
    append(&store, &ada, &event(&r, 1, 3_000), &sink);
    store.sync().await.unwrap();
    let duplicate = Recorder::new(&ada);
    append(&store, &ada, &event(&r, 1, 3_001), &duplicate);
    append(&store, &ada, &event(&r, 2, 3_002), &duplicate);
    store.sync().await.unwrap();
    assert_eq!(
        duplicate
            .heard()
            .iter()
            .map(|(seq, _)| *seq)
            .collect::<Vec<_>>(),
        vec![2]
    );
    let stored = store.list_events(&ada.id, 0, 10).await.unwrap();
    assert_eq!(stored.len(), 2);
}

async fn pruning_deletes_old_prefixes_and_keeps_the_head(store: Arc<dyn Store>) {
    let ada = signed_up(&store, "ada").await;
    let t = thread(&ada, 1_000);
    store.create_thread(&t).unwrap();
    let r = run(&ada, &t, RunStatus::Running, 2_000);
    store.begin_run(&r, None).unwrap();
    let sink = Recorder::new(&ada);
    for seq in 1..=10 {
        append(
            &store,
            &ada,
            &event(&r, seq, 1_000 * i64::try_from(seq).unwrap()),
            &sink,
        );
    }
    store.sync().await.unwrap();
    assert_eq!(store.prune_events(at(6_500)).await.unwrap(), 6);
    let bounds = store.log_bounds(&ada.id).await.unwrap();
    assert_eq!((bounds.floor, bounds.head), (6, 10));
    let left = store.list_events(&ada.id, 0, 100).await.unwrap();
    assert_eq!(left.first().map(|e| e.seq), Some(7));
    // Pruning everything keeps the head, so `seq` never restarts.
    assert_eq!(store.prune_events(at(1_000_000)).await.unwrap(), 4);
    let bounds = store.log_bounds(&ada.id).await.unwrap();
    assert_eq!((bounds.floor, bounds.head), (10, 10));
    assert_eq!(store.last_event_seq(&ada.id).await.unwrap(), 10);
    assert_eq!(store.prune_events(at(1_000_000)).await.unwrap(), 0);
}

async fn a_run_ends_with_its_terminal_event_in_one_transaction(store: Arc<dyn Store>) {
    let ada = signed_up(&store, "ada").await;
    let t = thread(&ada, 1_000);
    store.create_thread(&t).unwrap();
    let r = run(&ada, &t, RunStatus::Running, 2_000);
    store.begin_run(&r, None).unwrap();
    let mut ended = event(&r, 7, 3_000);
    ended.kind = RunEventKind::AgentError {
        agent: "supervisor".to_owned(),
        code: cordon_core::ErrorCode::Interrupted,
        message: "the server stopped".to_owned(),
    };
    let outcome = RunOutcome {
        status: RunStatus::Interrupted,
        error_code: Some("interrupted".to_owned()),
        error_message: Some("the server stopped".to_owned()),
        answer: None,
    };
    let listener = Recorder::new(&ada);
    let subscriber = Arc::clone(&listener) as Arc<dyn EventSink>;
    store
        .end_run(&ada.id, &ended, Arc::from("{}"), &outcome, Some(subscriber))
        .unwrap()
        .await
        .unwrap();
    assert_eq!(
        listener.heard(),
        vec![(7, "{}".to_owned())],
        "published once committed, before the end is acknowledged"
    );
    let stored = store.get_run(&ada.id, &r.id).await.unwrap().unwrap();
    assert_eq!(stored.status, RunStatus::Interrupted);
    let events = store.list_run_events(&ada.id, &r.id, 0).await.unwrap();
    assert_eq!(
        (events.len(), events[0].seq, events[0].event_type.as_str()),
        (1, 7, "agent_error")
    );
    assert_eq!(store.unfinished_runs().await.unwrap(), vec![]);
    // An end whose event cannot be stored (its seq is taken) ends nothing.
    let r2 = run(&ada, &t, RunStatus::Running, 2_001);
    store.begin_run(&r2, None).unwrap();
    let answer = message(&t, Role::Assistant, "never said", Some(&r2));
    let refused = end(&store, &ada, &r2, 7, &completed(Some(answer))).await;
    assert!(refused.is_err(), "{refused:?}");
    let still = store.get_run(&ada.id, &r2.id).await.unwrap().unwrap();
    assert_eq!(still.status, RunStatus::Running);
    let said = store
        .list_messages(&ada.id, &t.id, &MessagePage::newest(10))
        .await
        .unwrap();
    assert_eq!(said, Some(vec![]), "nor stores its answer");
}

async fn usage_is_summed_per_run_and_per_user(store: Arc<dyn Store>) {
    let ada = signed_up(&store, "ada").await;
    let bob = signed_up(&store, "bob").await;
    let t = thread(&ada, 1_000);
    store.create_thread(&t).unwrap();
    let (r1, r2) = (
        run(&ada, &t, RunStatus::Running, 2_000),
        run(&ada, &t, RunStatus::Running, 2_001),
    );
    let call = |run: &RunRecord, model: &str, input, output, cost| LlmCallRecord {
        run_id: run.id.clone(),
        model: model.to_owned(),
        input_tokens: input,
        output_tokens: output,
        cost_usd: cost,
        at: at(3_000),
    };
    store.record_llm_call(&ada.id, &call(&r1, "small", 100, 10, 0.25));
    store.record_llm_call(&ada.id, &call(&r1, "small", 50, 5, 0.25));
    store.record_llm_call(&ada.id, &call(&r1, "large", 10, 1, 2.0));
    store.record_llm_call(&ada.id, &call(&r2, "large", 20, 2, 4.0));
    let of_run = store.run_usage(&ada.id, &r1.id).await.unwrap();
    let of_run: Vec<_> = of_run
        .iter()
        .map(|m| (m.model.as_str(), m.calls, m.input_tokens, m.output_tokens))
        .collect();
    assert_eq!(of_run, vec![("small", 2, 150, 15), ("large", 1, 10, 1)]);
    let totals = store.usage_totals(&ada.id).await.unwrap();
    assert_eq!(
        (
            totals.runs,
            totals.calls,
            totals.input_tokens,
            totals.output_tokens
        ),
        (2, 4, 180, 18)
    );
    assert!((totals.cost_usd - 6.5).abs() < 1e-9, "{totals:?}");
    assert_eq!(totals.by_model[0].model, "large", "most expensive first");
    assert_eq!(store.run_usage(&bob.id, &r1.id).await.unwrap(), vec![]);
    assert_eq!(store.usage_totals(&bob.id).await.unwrap().calls, 0);
}

async fn search_finds_the_users_own_messages_only(store: Arc<dyn Store>) {
    let ada = signed_up(&store, "ada").await;
    let bob = signed_up(&store, "bob").await;
    let (ta, tb) = (thread(&ada, 1_000), thread(&bob, 1_001));
    store.create_thread(&ta).unwrap();
    store.create_thread(&tb).unwrap();
    let ask = |owner: &User, t: &Thread, text: &str| {
        let r = run(owner, t, RunStatus::Running, 2_000);
        let m = message(t, Role::User, text, Some(&r));
        store.begin_run(&r, Some(&m)).unwrap();
        (r, m)
    };
    let (_, first) = ask(&ada, &ta, "The Zebra crossing is closed");
    let (r2, second) = ask(&ada, &ta, "where is the nearest zebra?");
    ask(&bob, &tb, "bob also asks about a zebra");
    let answer = message(
        &ta,
        Role::Assistant,
        "zebra answers are not searched",
        Some(&r2),
    );
    end(&store, &ada, &r2, 1, &completed(Some(answer)))
        .await
        .unwrap();
    // No wait for the index: a search sees what was just said.
    let found = store.search_messages(&ada.id, "ZEBRA", 10).await.unwrap();
    let mut found: Vec<_> = found.into_iter().map(|m| m.id).collect();
    found.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    let mut expected = vec![first.id, second.id];
    expected.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    assert_eq!(found, expected);
    assert_eq!(
        store.search_messages(&ada.id, "giraffe", 10).await.unwrap(),
        vec![]
    );
    assert_eq!(
        store.search_messages(&ada.id, "ze", 10).await.unwrap(),
        vec![],
        "under 3 characters"
    );
    let bobs = store.search_messages(&bob.id, "zebra", 10).await.unwrap();
    assert_eq!(bobs.len(), 1);
    assert_eq!(
        store
            .search_messages(&ada.id, "zebra", 1)
            .await
            .unwrap()
            .len(),
        1
    );
    tokio::time::timeout(Duration::from_secs(10), store.close())
        .await
        .unwrap();
}

async fn secrets_are_the_owners_only_replaced_listed_and_deleted(store: Arc<dyn Store>) {
    let (ada, bob) = (
        signed_up(&store, "ada").await,
        signed_up(&store, "bob").await,
    );
    let token = SecretValue::new("ghp_first");
    store.put_secret(&ada.id, "github", &token).await.unwrap();
    assert_eq!(store.secret(&ada.id, "github").await.unwrap(), Some(token));
    // Another user's secret is indistinguishable from a missing one.
    assert_eq!(store.secret(&bob.id, "github").await.unwrap(), None);
    assert!(store.secret_names(&bob.id).await.unwrap().is_empty());
    assert!(!store.delete_secret(&bob.id, "github").await.unwrap());

    let replaced = SecretValue::new("ghp_second");
    store
        .put_secret(&ada.id, "github", &replaced)
        .await
        .unwrap();
    store
        .put_secret(&ada.id, "gitlab", &SecretValue::new("glpat"))
        .await
        .unwrap();
    assert_eq!(
        store.secret(&ada.id, "github").await.unwrap(),
        Some(replaced)
    );
    let names: Vec<String> = store
        .secret_names(&ada.id)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["github", "gitlab"]);
    assert!(store.delete_secret(&ada.id, "github").await.unwrap());
    assert_eq!(store.secret(&ada.id, "github").await.unwrap(), None);
    assert!(!store.delete_secret(&ada.id, "github").await.unwrap());
    assert_eq!(store.secret_names(&ada.id).await.unwrap().len(), 1);
}

async fn writes_queued_together_apply_in_queue_order(store: Arc<dyn Store>) {
    let ada = signed_up(&store, "ada").await;
    let t = thread(&ada, 1_000);
    let r = run(&ada, &t, RunStatus::Queued, 2_000);
    let sink = Recorder::new(&ada);
    // Nothing awaited in between: these go to the writer together.
    store.create_thread(&t).unwrap();
    store
        .begin_run(&r, Some(&message(&t, Role::User, "first", Some(&r))))
        .unwrap();
    store.start_queued_run(&ada.id, &r.id).unwrap();
    append(&store, &ada, &event(&r, 1, 3_000), &sink);
    let cancelled = RunOutcome {
        status: RunStatus::Cancelled,
        error_code: Some("cancelled".to_owned()),
        error_message: None,
        answer: Some(message(&t, Role::Assistant, "cut short", Some(&r))),
    };
    let done = completed(None);
    let (first, second) = tokio::join!(
        end(&store, &ada, &r, 2, &cancelled),
        end(&store, &ada, &r, 3, &done),
    );
    first.unwrap();
    second.unwrap();
    let ended = store.get_run(&ada.id, &r.id).await.unwrap().unwrap();
    assert_eq!(ended.status, RunStatus::Cancelled, "the first end wins");
    let said = store
        .list_messages(&ada.id, &t.id, &MessagePage::newest(10))
        .await
        .unwrap()
        .unwrap();
    let said: Vec<_> = said.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(said, vec!["first", "cut short"]);
    assert_eq!(sink.heard().len(), 1);
}

/// Several instances on one PostgreSQL database: a user has one live owner,
/// a dead instance's users are taken over, and a leaving one's are free.
#[tokio::test]
async fn postgres_owners_one_live_owner_per_user_and_dead_ones_taken_over() {
    use cordon_store::{Claimed, PgOwners};
    let Some(Fresh::Postgres(url)) = Database::Postgres.fresh().await else {
        return;
    };
    let shared = StoreOptions {
        shared: true,
        ..StoreOptions::default()
    };
    let store: Arc<dyn Store> = PgStore::open(&url, shared.clone()).await.unwrap();
    let second_store = PgStore::open(&url, shared).await;
    assert!(
        second_store.is_ok(),
        "a shared database takes a second instance"
    );
    let ada = signed_up(&store, "ada").await;
    let (a, b) = (
        PgOwners::join(&url, "instance-a").await.unwrap(),
        PgOwners::join(&url, "instance-b").await.unwrap(),
    );
    assert_eq!(
        a.claim(&ada.id).await.unwrap(),
        Claimed::Here { fresh: true }
    );
    assert_eq!(
        a.claim(&ada.id).await.unwrap(),
        Claimed::Here { fresh: false }
    );
    assert_eq!(
        b.claim(&ada.id).await.unwrap(),
        Claimed::Elsewhere("instance-a".into())
    );
    let t = thread(&ada, 1_000);
    store.create_thread(&t).unwrap();
    store
        .begin_run(&run(&ada, &t, RunStatus::Running, 2_000), None)
        .unwrap();
    store.sync().await.unwrap();
    assert_eq!(
        b.orphans(10).await.unwrap(),
        vec![],
        "a live owner's run is nobody's orphan"
    );

    drop(a); // the process dies: its session closes, PostgreSQL drops its lock
    let orphaned =
        wait_for(|| async { b.orphans(10).await.unwrap() == vec![ada.id.clone()] }).await;
    assert!(
        orphaned,
        "the dead instance's user with a run in progress is an orphan"
    );
    assert_eq!(
        b.claim(&ada.id).await.unwrap(),
        Claimed::Here { fresh: true }
    );
    assert_eq!(
        b.owner(&ada.id).await.unwrap().as_deref(),
        Some("instance-b")
    );

    let c = PgOwners::join(&url, "instance-c").await.unwrap();
    b.check().await.unwrap();
    b.leave().await.unwrap();
    assert_eq!(
        c.claim(&ada.id).await.unwrap(),
        Claimed::Here { fresh: true }
    );
}

/// Polls `check` for up to 5 s.
async fn wait_for<F, Fut>(check: F) -> bool
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn a_paused_run_keeps_its_checkpoint_until_taken_and_expires_by_time(store: Arc<dyn Store>) {
    let ada = signed_up(&store, "ada").await;
    let bob = signed_up(&store, "bob").await;
    let t = thread(&ada, 1_000);
    store.create_thread(&t).unwrap();
    let (r1, r2) = (
        run(&ada, &t, RunStatus::Running, 2_000),
        run(&ada, &t, RunStatus::Running, 2_001),
    );
    store.begin_run(&r1, None).unwrap();
    store.begin_run(&r2, None).unwrap();
    let pause = |run: &RunRecord, expires: i64, step: u32| RunPause {
        run_id: run.id.clone(),
        thread_id: t.id.clone(),
        state: serde_json::json!({"step": step, "calls": ["call_1"]}),
        expires_at: at(expires),
    };
    store
        .put_pause(&ada.id, &pause(&r1, 5_000, 1))
        .await
        .unwrap();
    store
        .put_pause(&ada.id, &pause(&r2, 9_000, 1))
        .await
        .unwrap();
    let status = |run: &RunRecord| {
        let (store, ada, id) = (Arc::clone(&store), ada.id.clone(), run.id.clone());
        async move { store.get_run(&ada, &id).await.unwrap().unwrap().status }
    };
    assert_eq!(status(&r1).await, RunStatus::WaitingApproval);
    assert_eq!(
        store.pause(&ada.id, &r1.id).await.unwrap(),
        Some(pause(&r1, 5_000, 1))
    );
    // Another user's pause is indistinguishable from a missing one.
    assert_eq!(store.pause(&bob.id, &r1.id).await.unwrap(), None);
    assert!(store.pauses(&bob.id).await.unwrap().is_empty());
    store.put_pause(&bob.id, &pause(&r1, 1, 9)).await.unwrap();
    assert_eq!(
        store.pause(&ada.id, &r1.id).await.unwrap(),
        Some(pause(&r1, 5_000, 1))
    );
    store.take_pause(&bob.id, &r2.id).await.unwrap();
    assert_eq!(status(&r2).await, RunStatus::WaitingApproval);

    // A pause is replaced in place; the run stays waiting.
    store
        .put_pause(&ada.id, &pause(&r1, 5_000, 2))
        .await
        .unwrap();
    let pauses = store.pauses(&ada.id).await.unwrap();
    assert_eq!(pauses, [pause(&r1, 5_000, 2), pause(&r2, 9_000, 1)]);
    // Bob's stray pause (of a run that is not his) expires with the rest.
    let expired = store.expired_pauses(at(6_000)).await.unwrap();
    assert_eq!(expired.len(), 2, "{expired:?}");
    assert!(expired.contains(&(ada.id.clone(), r1.id.clone())));
    assert!(!expired.contains(&(ada.id.clone(), r2.id.clone())));

    // Taken: the run runs again, and no longer expires.
    store.take_pause(&ada.id, &r1.id).await.unwrap();
    assert_eq!(status(&r1).await, RunStatus::Running);
    assert_eq!(store.pause(&ada.id, &r1.id).await.unwrap(), None);
    assert!(
        !store
            .expired_pauses(at(6_000))
            .await
            .unwrap()
            .contains(&(ada.id.clone(), r1.id.clone()))
    );
    // Recovery leaves waiting runs alone: they are not in flight.
    let unfinished = store.unfinished_runs().await.unwrap();
    assert!(unfinished.iter().any(|run| run.id == r1.id));
    assert!(!unfinished.iter().any(|run| run.id == r2.id));
}

async fn admins_are_granted_and_revoked_by_name(store: Arc<dyn Store>) {
    let ada = signed_up(&store, "ada").await;
    let bob = signed_up(&store, "bob").await;
    assert!(!store.get_user(&ada.id).await.unwrap().unwrap().admin);
    assert!(store.set_admin("ada", true).await.unwrap());
    assert!(store.get_user(&ada.id).await.unwrap().unwrap().admin);
    assert!(!store.get_user(&bob.id).await.unwrap().unwrap().admin);
    assert!(!store.set_admin("nobody", true).await.unwrap());
    assert!(store.set_admin("ada", false).await.unwrap());
    assert!(
        !store
            .find_user_by_username("ada")
            .await
            .unwrap()
            .unwrap()
            .admin
    );
}

async fn budgets_are_the_users_own_and_spend_is_summed_from_a_time(store: Arc<dyn Store>) {
    let ada = signed_up(&store, "ada").await;
    let bob = signed_up(&store, "bob").await;
    let limits = BudgetLimits {
        daily_usd: Some(1.5),
        monthly_usd: None,
        daily_tokens: None,
        monthly_tokens: Some(10_000),
    };
    assert_eq!(store.budget_override(&ada.id).await.unwrap(), None);
    store
        .put_budget_override(&ada.id, Some(&limits))
        .await
        .unwrap();
    assert_eq!(store.budget_override(&ada.id).await.unwrap(), Some(limits));
    assert_eq!(store.budget_override(&bob.id).await.unwrap(), None);
    store.put_budget_override(&ada.id, None).await.unwrap();
    assert_eq!(store.budget_override(&ada.id).await.unwrap(), None);

    let t = thread(&ada, 1_000);
    store.create_thread(&t).unwrap();
    let r = run(&ada, &t, RunStatus::Running, 2_000);
    let call = |tokens: u64, cost_usd, when| LlmCallRecord {
        run_id: r.id.clone(),
        model: "small".to_owned(),
        input_tokens: tokens,
        output_tokens: 1,
        cost_usd,
        at: at(when),
    };
    store.record_llm_call(&ada.id, &call(99, 0.5, 10_000));
    store.record_llm_call(&ada.id, &call(9, 0.25, 20_000));
    store.record_llm_call(&bob.id, &call(999, 9.0, 20_000));
    let since = store.spend_since(&ada.id, at(20_000)).await.unwrap();
    assert_eq!(since.tokens, 10, "calls before the time are not counted");
    assert!((since.cost_usd - 0.25).abs() < 1e-9, "{since:?}");
    let all = store.spend_since(&ada.id, at(0)).await.unwrap();
    assert_eq!(all.tokens, 110);
    let none = store.spend_since(&ada.id, at(30_000)).await.unwrap();
    assert_eq!((none.tokens, none.cost_usd), (0, 0.0));
}
