//! The factory injects what it is given, keeps one engine per user, enforces limits and drops idle engines.
#![allow(
    clippy::unwrap_used,
    reason = "a test should panic loudly on a broken assumption"
)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use cordon_core::{
    ErrorCode, EventEncoder, EventSink, EventSinks, LlmError, LlmObserver, LlmProvider, LlmRequest,
    LlmResponse, Multitask, RequestId, RunEvent, RunEventKind, RunId, Store, Thread, ThreadId,
    UserExecutionContext, UserId,
};
use cordon_core::{RunRecord, RunStatus, StoreError};
use cordon_engine::{Accepted, ApprovalAnswer, ApprovalError, CancelOutcome, Resolved};
use cordon_engine::{
    AgentRegistry, Claim, EngineConfig, EngineDeps, ExecutionEngineFactory, ForwardError,
    Placement, RunRequest, Solo, StartError, SubmitError, ToolDispatcher,
};
use cordon_store::SqliteStore;
use serde_json::{Value, json};

/// Records every committed event per user, and which user's sink each went to.
#[derive(Default)]
struct RecordingSinks {
    events: Mutex<Vec<(UserId, Value)>>,
}

impl RecordingSinks {
    fn events(&self) -> Vec<(UserId, Value)> {
        self.events.lock().unwrap().clone()
    }

    /// Waits until `n` runs have ended (terminal events committed and published).
    async fn wait_for_terminal(&self, n: usize) {
        for _ in 0..500 {
            let ended = self
                .events()
                .iter()
                .filter(|(_, e)| e["type"] == "agent_completed" || e["type"] == "agent_error")
                .count();
            if ended >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("runs did not end: {:?}", self.events());
    }
}

struct RecordingSink {
    user_id: UserId,
    all: Arc<RecordingSinks>,
}

impl EventSink for RecordingSink {
    fn user_id(&self) -> &UserId {
        &self.user_id
    }
    fn publish(&self, _seq: u64, payload: &Arc<str>) {
        let value = serde_json::from_str(payload).unwrap();
        self.all
            .events
            .lock()
            .unwrap()
            .push((self.user_id.clone(), value));
    }
}

struct SinksHandle(Arc<RecordingSinks>);
impl EventSinks for SinksHandle {
    fn for_user(&self, user_id: &UserId) -> Arc<dyn EventSink> {
        Arc::new(RecordingSink {
            user_id: user_id.clone(),
            all: Arc::clone(&self.0),
        })
    }
}

/// Enough of an event to check ownership and order.
struct TestEncoder;
impl EventEncoder for TestEncoder {
    fn encode(&self, event: &RunEvent) -> Arc<str> {
        let answer = match &event.kind {
            RunEventKind::AgentCompleted { answer, .. } => answer.clone(),
            _ => String::new(),
        };
        let code = match &event.kind {
            RunEventKind::AgentError { code, .. } => code.as_str(),
            _ => "",
        };
        Arc::from(
            json!({
                "type": event.kind.type_name(),
                "run_id": event.run_id.as_str(),
                "seq": event.seq,
                "answer": answer,
                "code": code,
            })
            .to_string(),
        )
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
    placed_fixture(config, delay, Arc::new(Solo)).await
}

async fn placed_fixture(
    config: EngineConfig,
    delay: Duration,
    placement: Arc<dyn Placement>,
) -> Fixture {
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
        encoder: Arc::new(TestEncoder),
        clock: Arc::new(cordon_core::SystemClock),
        analytics: None,
    };
    let factory = Arc::new(
        ExecutionEngineFactory::new(deps, Arc::new(SinksHandle(sinks.clone())), config)
            .with_placement(placement),
    );
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

fn request(ctx: &UserExecutionContext, content: &str) -> RunRequest {
    RunRequest {
        ctx: ctx.clone(),
        content: content.into(),
        new_thread_title: None,
        client_request_id: None,
        multitask: Multitask::Reject,
    }
}

#[tokio::test]
async fn engines_use_the_injected_model_and_sink_of_their_own_user() {
    let f = fixture(EngineConfig::default(), Duration::ZERO).await;
    let alice = context(&f.store, "alice").await;
    let bob = context(&f.store, "bob").await;
    f.factory.submit(request(&alice, "hello")).await.unwrap();
    f.factory.submit(request(&bob, "hi")).await.unwrap();
    f.sinks.wait_for_terminal(2).await;

    assert_eq!(
        *f.model.calls.lock().unwrap(),
        2,
        "the injected model answered both runs"
    );
    let events = f.sinks.events();
    for (sink_user, event) in &events {
        let owner = if event["run_id"] == alice.run_id().as_str() {
            alice.user_id()
        } else {
            bob.user_id()
        };
        assert_eq!(sink_user, owner, "an event reached another user's sink");
    }
    let completed: Vec<_> = events
        .iter()
        .filter(|(_, e)| e["type"] == "agent_completed")
        .map(|(_, e)| e["answer"].as_str().unwrap())
        .collect();
    assert_eq!(completed, ["injected answer", "injected answer"]);

    let engine_a = f.factory.engine_for(&alice).await.unwrap().unwrap();
    assert!(!Arc::ptr_eq(
        &engine_a,
        &f.factory.engine_for(&bob).await.unwrap().unwrap()
    ));
    assert!(
        Arc::ptr_eq(
            &engine_a,
            &f.factory.engine_for(&alice).await.unwrap().unwrap()
        ),
        "one engine per user"
    );
    // The terminal event is published after the engine recorded the run.
    assert_eq!(engine_a.stats().runs_completed, 1);
    assert_eq!(engine_a.history().len(), 1);
    assert_eq!(engine_a.history()[0].run_id, *alice.run_id());
    // An engine refuses a context of another user outright.
    assert_eq!(
        engine_a.submit(request(&bob, "x")).unwrap_err(),
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
    f.factory.submit(request(&first, "a")).await.unwrap();
    // Same thread: refused by the thread's policy before any limit.
    let same_thread = UserExecutionContext::new(
        first.user_id().clone(),
        first.thread_id().clone(),
        RunId::generate(),
        RequestId::generate(),
        None,
    );
    let error = f
        .factory
        .submit(request(&same_thread, "b"))
        .await
        .unwrap_err();
    assert!(matches!(
        error,
        StartError::Submit(SubmitError::Rejected(ErrorCode::ThreadBusy))
    ));
    let second = context(&f.store, "u1").await;
    let error = f.factory.submit(request(&second, "b")).await.unwrap_err();
    assert!(matches!(
        error,
        StartError::Submit(SubmitError::Rejected(ErrorCode::UserConcurrencyLimit))
    ));

    let other = context(&f.store, "u2").await;
    f.factory.submit(request(&other, "c")).await.unwrap();
    let third = context(&f.store, "u3").await;
    let error = f.factory.submit(request(&third, "d")).await.unwrap_err();
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
    f.factory.submit(request(&ctx, "hello")).await.unwrap();
    f.sinks.wait_for_terminal(1).await;
    // The lane is freed just after the terminal event is published.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(f.factory.counts().active_engines, 1);
    assert_eq!(f.factory.cleanup_idle(), 0, "not idle long enough yet");

    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(f.factory.cleanup_idle(), 1);
    let counts = f.factory.counts();
    assert_eq!((counts.active_engines, counts.engines_cleaned), (0, 1));

    // A rebuilt engine continues the user's seq from the stored log.
    let last = f.sinks.events().last().unwrap().1["seq"].as_u64().unwrap();
    assert_eq!(f.store.last_event_seq(ctx.user_id()).await.unwrap(), last);
    let next = UserExecutionContext::new(
        ctx.user_id().clone(),
        ctx.thread_id().clone(),
        RunId::generate(),
        RequestId::generate(),
        None,
    );
    f.factory.submit(request(&next, "again")).await.unwrap();
    f.sinks.wait_for_terminal(2).await;
    assert_eq!(f.factory.counts().engines_created, 2);
    let events = f.sinks.events();
    let first_after = events
        .iter()
        .find(|(_, e)| e["seq"].as_u64().unwrap() > last)
        .unwrap();
    assert_eq!(first_after.1["seq"], last + 1);
    assert_eq!(first_after.1["type"], "agent_started");
}

/// Places every user on one answer, and records what was forwarded.
struct FixedPlacement {
    claim: Claim,
    reachable: bool,
    forwarded: Mutex<Vec<(String, String)>>,
}

impl FixedPlacement {
    fn new(claim: Claim, reachable: bool) -> Arc<Self> {
        Arc::new(Self {
            claim,
            reachable,
            forwarded: Mutex::new(Vec::new()),
        })
    }

    fn forward(&self, owner: &str, what: String) -> Result<(), ForwardError> {
        self.forwarded
            .lock()
            .unwrap()
            .push((owner.to_owned(), what));
        match self.reachable {
            true => Ok(()),
            false => Err(ForwardError::Unreachable("no broker".into())),
        }
    }
}

#[async_trait]
impl Placement for FixedPlacement {
    async fn claim(&self, _: &UserId) -> Result<Claim, StoreError> {
        Ok(self.claim.clone())
    }

    async fn submit_at(
        &self,
        owner: &str,
        request: RunRequest,
    ) -> Result<Result<Accepted, SubmitError>, ForwardError> {
        self.forward(owner, request.content.clone())?;
        Ok(Ok(Accepted {
            run_id: request.ctx.run_id().clone(),
            thread_id: request.ctx.thread_id().clone(),
            seq: 41,
            queued: None,
        }))
    }

    async fn cancel_at(
        &self,
        owner: &str,
        _: &UserId,
        run_id: &RunId,
    ) -> Result<CancelOutcome, ForwardError> {
        self.forward(owner, format!("cancel {run_id}"))?;
        Ok(CancelOutcome::Stopping)
    }

    async fn answer_at(
        &self,
        owner: &str,
        _: &UserId,
        answer: &ApprovalAnswer,
    ) -> Result<Result<Resolved, ApprovalError>, ForwardError> {
        self.forward(owner, format!("approve {}", answer.call_id))?;
        Ok(Err(ApprovalError::NotFound))
    }
}

#[tokio::test]
async fn a_user_owned_elsewhere_is_forwarded_and_never_built_here() {
    let placement = FixedPlacement::new(Claim::Elsewhere("instance-b".into()), true);
    let f = placed_fixture(EngineConfig::default(), Duration::ZERO, placement.clone()).await;
    let alice = context(&f.store, "alice").await;
    let accepted = f.factory.submit(request(&alice, "hello")).await.unwrap();
    assert_eq!(
        (accepted.run_id, accepted.seq),
        (alice.run_id().clone(), 41)
    );
    let outcome = f
        .factory
        .cancel(alice.user_id(), alice.run_id())
        .await
        .unwrap();
    assert_eq!(outcome, CancelOutcome::Stopping);
    assert_eq!(
        *placement.forwarded.lock().unwrap(),
        [
            ("instance-b".to_owned(), "hello".to_owned()),
            (
                "instance-b".to_owned(),
                format!("cancel {}", alice.run_id())
            ),
        ]
    );
    assert_eq!(
        f.factory.counts().active_engines,
        0,
        "no engine of a user owned elsewhere"
    );
    assert_eq!(*f.model.calls.lock().unwrap(), 0);
}

#[tokio::test]
async fn an_owner_that_cannot_be_reached_refuses_the_message() {
    let placement = FixedPlacement::new(Claim::Elsewhere("instance-b".into()), false);
    let f = placed_fixture(EngineConfig::default(), Duration::ZERO, placement).await;
    let alice = context(&f.store, "alice").await;
    let refused = f
        .factory
        .submit(request(&alice, "hello"))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, StartError::Submit(SubmitError::OwnerUnavailable)),
        "{refused:?}"
    );
    assert_eq!(
        f.store
            .get_run(alice.user_id(), alice.run_id())
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn taking_a_user_over_ends_the_runs_the_dead_owner_left_then_continues_seq() {
    let placement = FixedPlacement::new(Claim::Here { fresh: true }, true);
    let f = placed_fixture(EngineConfig::default(), Duration::ZERO, placement).await;
    let alice = context(&f.store, "alice").await;
    let left = RunRecord {
        id: RunId::generate(),
        user_id: alice.user_id().clone(),
        thread_id: alice.thread_id().clone(),
        agent: "supervisor".into(),
        status: RunStatus::Running,
        created_at: cordon_core::now(),
        finished_at: None,
        error_code: None,
        error_message: None,
    };
    f.store.begin_run(&left, None).unwrap();
    f.store.sync().await.unwrap();

    f.factory.prepare(alice.user_id()).await.unwrap();
    let ended = f
        .store
        .get_run(alice.user_id(), &left.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ended.status, RunStatus::Interrupted);
    let heard = f.sinks.events();
    assert_eq!(heard.len(), 1, "{heard:?}");
    assert_eq!(
        (&heard[0].1["code"], &heard[0].1["seq"]),
        (&json!("interrupted"), &json!(1))
    );
    let accepted = f.factory.submit(request(&alice, "hello")).await.unwrap();
    assert_eq!(
        accepted.seq, 2,
        "the new owner's engine continues after the take-over's event"
    );
}
