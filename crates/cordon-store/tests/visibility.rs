//! Read-your-writes per user, on the real SQLite file: a read waits for its own user's queued writes, never for another's.

use std::time::Duration;

use cordon_core::{
    Message, MessageId, Role, RunId, RunRecord, RunStatus, Store, Thread, ThreadId, User, UserId,
};
use cordon_store::SqliteStore;
use time::OffsetDateTime;

fn user(name: &str) -> User {
    User {
        id: UserId::generate(),
        username: name.to_owned(),
        password_hash: "not-a-real-hash".to_owned(),
        created_at: OffsetDateTime::now_utc(),
        token_generation: 0,
        admin: false,
    }
}

fn thread_of(user: &User, title: &str) -> Thread {
    let now = OffsetDateTime::now_utc();
    Thread {
        id: ThreadId::generate(),
        user_id: user.id.clone(),
        title: title.to_owned(),
        created_at: now,
        updated_at: now,
    }
}

/// Holds the database's write lock from another connection: the writer's
/// next batch waits on it (up to its 5 s busy timeout) until `release`.
struct WriteLock(rusqlite::Connection);

impl WriteLock {
    fn take(dir: &std::path::Path) -> Self {
        let lock = rusqlite::Connection::open(dir.join("cordon.db")).expect("open the database");
        lock.execute_batch("BEGIN IMMEDIATE")
            .expect("take the write lock");
        Self(lock)
    }

    fn release(self) {
        self.0
            .execute_batch("ROLLBACK")
            .expect("release the write lock");
    }

    /// Checks `read` is still waiting on the lock, releases it, and returns
    /// what the read answers then.
    async fn release_for<T>(self, read: tokio::task::JoinHandle<T>) -> T {
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !read.is_finished(),
            "the read must wait for its user's write"
        );
        self.release();
        tokio::time::timeout(Duration::from_secs(5), read)
            .await
            .expect("the read ends once the write commits")
            .expect("the read task")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_waits_for_its_own_users_queued_writes_and_not_for_anothers() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    let (alice, bob) = (user("alice"), user("bob"));
    store.create_user(&alice).await.unwrap();
    store.create_user(&bob).await.unwrap();
    store.create_thread(&thread_of(&bob, "bob's")).unwrap();
    store.sync().await.unwrap();

    let lock = WriteLock::take(dir.path());
    store.create_thread(&thread_of(&alice, "alice's")).unwrap();

    let bobs = tokio::time::timeout(
        Duration::from_secs(1),
        store.list_threads(&bob.id, 10, None),
    )
    .await
    .expect("bob's read must not wait behind alice's queued write")
    .unwrap();
    assert_eq!(bobs.len(), 1);

    let alices = tokio::spawn({
        let store = store.clone();
        let alice = alice.id.clone();
        async move { store.list_threads(&alice, 10, None).await }
    });
    let alices = lock.release_for(alices).await.unwrap();
    assert_eq!(alices.len(), 1, "and it sees that write");
    assert_eq!(alices[0].title, "alice's");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_from_a_run_finds_the_runs_own_message_still_queued() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    let alice = user("alice");
    store.create_user(&alice).await.unwrap();
    let thread = thread_of(&alice, "plants");
    store.create_thread(&thread).unwrap();
    store.sync().await.unwrap();

    let lock = WriteLock::take(dir.path());
    let run = RunRecord {
        id: RunId::generate(),
        user_id: alice.id.clone(),
        thread_id: thread.id.clone(),
        agent: "supervisor".to_owned(),
        status: RunStatus::Running,
        created_at: OffsetDateTime::now_utc(),
        finished_at: None,
        error_code: None,
        error_message: None,
    };
    let message = Message {
        id: MessageId::generate(),
        thread_id: thread.id.clone(),
        role: Role::User,
        content: "I planted tomatoes".to_owned(),
        run_id: Some(run.id.clone()),
        created_at: OffsetDateTime::now_utc(),
    };
    store.begin_run(&run, Some(&message)).unwrap();
    let search = tokio::spawn({
        let store = store.clone();
        let alice = alice.id.clone();
        async move { store.search_messages(&alice, "tomatoes", 5).await }
    });
    let found = lock.release_for(search).await.unwrap();
    assert_eq!(found.len(), 1, "the run's own message is searchable");
    assert_eq!(found[0].content, "I planted tomatoes");
}
