//! The factory injects what it is given, keeps one engine per user, enforces limits and drops idle engines.
#![allow(
    clippy::unwrap_used,
    reason = "a test should panic loudly on a broken assumption"
)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use cordon_core::{
    ErrorCode, EventSink, EventSinks, LlmError, LlmObserver, LlmProvider, LlmRequest, LlmResponse,
    RequestId, RunEvent, RunEventKind, RunId, RunStatus, Store, Thread, ThreadId,
    UserExecutionContext, UserId,
};
use cordon_engine::{
    AgentRegistry, EngineConfig, EngineDeps, ExecutionEngineFactory, StartError, SubmitError,
    ToolDispatcher,
};
use cordon_store::SqliteStore;

/// Records every event per user, and which user's sink each event went to.
#[derive(Default)]
struct RecordingSinks {
    events: Mutex<Vec<(UserId, RunEvent)>>,
}

struct RecordingSink {
    user_id: UserId,
    all: Arc<RecordingSinks>,
    store: Arc<dyn Store>,
}

impl EventSink for RecordingSink {
    fn user_id(&self) -> &UserId {
        &self.user_id
    }
    fn publish(&self, event: &RunEvent) {
        self.store
            .append_event(&self.user_id, event, Arc::from("{}"));
        self.all
            .events
            .lock()
            .unwrap()
            .push((self.user_id.clone(), event.clone()));
    }
}

struct SinksHandle(Arc<RecordingSinks>, Arc<dyn Store>);
impl EventSinks for SinksHandle {
    fn for_user(&self, user_id: &UserId) -> Arc<dyn EventSink> {
        Arc::new(RecordingSink {
            user_id: user_id.clone(),
            all: Arc::clone(&self.0),
            store: Arc::clone(&self.1),
        })
    }
}

/// A model that answers at once and counts its calls, so the test can see it was the one injected.
#[derive(Default)]
struct CountingModel {
    calls: Mutex<u32>,
    delay: Duration,
}

#[async_trait]
impl LlmProvider for CountingModel {
    fn name(&self) -> &str {
        "counting"
    }
    async fn complete(&self, _: &LlmRequest, _: &dyn LlmObserver) -> Result<LlmResponse, LlmError> {
        *self.calls.lock().unwrap() += 1;
        tokio::time::sleep(self.delay).await;
        Ok(LlmResponse {
            text: "injected answer".into(),
            ..LlmResponse::default()
        })
    }
}

struct Fixture {
    factory: Arc<ExecutionEngineFactory>,
    model: Arc<CountingModel>,
    sinks: Arc<RecordingSinks>,
    store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

async fn fixture(config: EngineConfig, delay: Duration) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = SqliteStore::open(dir.path()).await.unwrap();
    let model = Arc::new(CountingModel {
        delay,
        ..CountingModel::default()
    });
    let sinks = Arc::new(RecordingSinks::default());
    let deps = EngineDeps {
        registry: Arc::new(AgentRegistry::builtin()),
        llm: model.clone(),
        tools: Arc::new(ToolDispatcher::builtin()),
        store: Arc::clone(&store),
    };
    let factory = Arc::new(ExecutionEngineFactory::new(
        deps,
        Arc::new(SinksHandle(sinks.clone(), Arc::clone(&store))),
        config,
    ));
    Fixture {
        factory,
        model,
        sinks,
        store,
        _dir: dir,
    }
}

async fn context(store: &Arc<dyn Store>, user: &str) -> UserExecutionContext {
    let user_id = UserId::parse(user).unwrap();
    let thread = Thread {
        id: ThreadId::generate(),
        user_id: user_id.clone(),
        title: "t".into(),
        created_at: cordon_core::now(),
        updated_at: cordon_core::now(),
    };
    store.create_thread(&thread).unwrap();
    UserExecutionContext::new(
        user_id,
        thread.id,
        RunId::generate(),
        RequestId::generate(),
        None,
    )
}

#[tokio::test]
async fn engines_use_the_injected_model_and_sink_of_their_own_user() {
    let f = fixture(EngineConfig::default(), Duration::ZERO).await;
    let alice = context(&f.store, "alice").await;
    let bob = context(&f.store, "bob").await;
    let a = f
        .factory
        .start_run(alice.clone(), "hello".into())
        .await
        .unwrap();
    let b = f.factory.start_run(bob.clone(), "hi".into()).await.unwrap();
    assert_eq!(a.done.await.unwrap(), RunStatus::Completed);
    assert_eq!(b.done.await.unwrap(), RunStatus::Completed);

    assert_eq!(
        *f.model.calls.lock().unwrap(),
        2,
        "the injected model answered both runs"
    );
    let events = f.sinks.events.lock().unwrap().clone();
    for (sink_user, event) in &events {
        let owner = if event.run_id == *alice.run_id() {
            alice.user_id()
        } else {
            bob.user_id()
        };
        assert_eq!(sink_user, owner, "an event reached another user's sink");
    }
    let completed: Vec<_> = events
        .iter()
        .filter_map(|(_, e)| match &e.kind {
            RunEventKind::AgentCompleted { answer, .. } => Some(answer.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(completed, ["injected answer", "injected answer"]);

    let engine_a = f.factory.engine_for(&alice).await.unwrap();
    assert!(!Arc::ptr_eq(
        &engine_a,
        &f.factory.engine_for(&bob).await.unwrap()
    ));
    assert!(
        Arc::ptr_eq(&engine_a, &f.factory.engine_for(&alice).await.unwrap()),
        "one engine per user"
    );
    assert_eq!(engine_a.stats().runs_completed, 1);
    assert_eq!(engine_a.history().len(), 1);
    assert_eq!(engine_a.history()[0].run_id, *alice.run_id());
    // An engine refuses a context of another user outright.
    assert_eq!(
        engine_a.submit(bob, "x".into()).unwrap_err(),
        SubmitError::WrongUser
    );
}

#[tokio::test]
async fn per_user_and_global_limits_reject_with_their_codes() {
    let config = EngineConfig {
        max_runs_per_user: 1,
        max_runs_global: 2,
        ..EngineConfig::default()
    };
    let f = fixture(config, Duration::from_millis(300)).await;
    let first = context(&f.store, "u1").await;
    let _running = f
        .factory
        .start_run(first.clone(), "a".into())
        .await
        .unwrap();
    let mut second = context(&f.store, "u1").await;
    second = UserExecutionContext::new(
        second.user_id().clone(),
        first.thread_id().clone(),
        RunId::generate(),
        RequestId::generate(),
        None,
    );
    let error = f.factory.start_run(second, "b".into()).await.unwrap_err();
    assert!(matches!(
        error,
        StartError::Submit(SubmitError::Rejected(ErrorCode::UserConcurrencyLimit))
    ));

    let _other = f
        .factory
        .start_run(context(&f.store, "u2").await, "c".into())
        .await
        .unwrap();
    let error = f
        .factory
        .start_run(context(&f.store, "u3").await, "d".into())
        .await
        .unwrap_err();
    assert!(matches!(
        error,
        StartError::Submit(SubmitError::Rejected(ErrorCode::GlobalConcurrencyLimit))
    ));
    assert_eq!(f.factory.counts().active_runs, 2);
}

#[tokio::test]
async fn idle_engines_are_cleaned_up_and_rebuilt_with_their_seq() {
    let config = EngineConfig {
        engine_idle_ttl: Duration::from_millis(50),
        ..EngineConfig::default()
    };
    let f = fixture(config, Duration::ZERO).await;
    let ctx = context(&f.store, "carol").await;
    let run = f
        .factory
        .start_run(ctx.clone(), "hello".into())
        .await
        .unwrap();
    run.done.await.unwrap();
    assert_eq!(f.factory.counts().active_engines, 1);
    assert_eq!(f.factory.cleanup_idle(), 0, "not idle long enough yet");

    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(f.factory.cleanup_idle(), 1);
    let counts = f.factory.counts();
    assert_eq!((counts.active_engines, counts.engines_cleaned), (0, 1));

    // A rebuilt engine continues the user's seq from the stored log.
    let last = f.sinks.events.lock().unwrap().last().unwrap().1.seq;
    assert_eq!(f.store.last_event_seq(ctx.user_id()).await.unwrap(), last);
    let next = UserExecutionContext::new(
        ctx.user_id().clone(),
        ctx.thread_id().clone(),
        RunId::generate(),
        RequestId::generate(),
        None,
    );
    f.factory
        .start_run(next, "again".into())
        .await
        .unwrap()
        .done
        .await
        .unwrap();
    assert_eq!(f.factory.counts().engines_created, 2);
    let events = f.sinks.events.lock().unwrap().clone();
    let first_after = events.iter().find(|(_, e)| e.seq > last).unwrap();
    assert_eq!(first_after.1.seq, last + 1);
    assert!(matches!(
        first_after.1.kind,
        RunEventKind::AgentStarted { .. }
    ));
}
