//! Password hashing with argon2id (m=19 MiB, t=2, p=1) on a few dedicated threads, off the async runtime.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use cordon_core::background::{self, Background};
use tokio::sync::oneshot;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password hashing failed")]
    Hashing,
    /// As many hashes as allowed are queued already: the caller should retry
    /// shortly rather than wait in an unbounded backlog.
    #[error("too many sign-ins at once; try again in a moment")]
    Busy,
}

/// The hashing threads' class: a thread woken to answer a request runs
/// before a hash, so the ~20 ms a hash holds a core does not land inside
/// another tenant's read. Measured with `cordon bench --abuse` beside a
/// guesser (docs/performance.md): the readers' p99 fell from a median of
/// 2.8 to 1.6 ms, sign-in p50 unchanged. Not 19: there a hash gets
/// about 1.5 % of a busy core, and a sign-in under full load waited seconds;
/// at 10 it gets about 12 %.
const HASHING: Background = Background::Batch { nice: 10 };

/// Hashes queued or running at most, by default: with two threads of ~20 ms
/// each, the last one waits about half a second.
pub const DEFAULT_MAX_PENDING: usize = 64;

type Job = Box<dyn FnOnce() + Send>;

/// Hashes and verifies passwords on `threads` dedicated threads, so a burst of
/// logins queues instead of taking every core from the agents (each hash is
/// ~20 ms of CPU and a 19 MiB work area).
#[derive(Clone)]
pub struct PasswordHasher {
    jobs: mpsc::Sender<Job>,
    /// Jobs queued or running, bounded by `max_pending`.
    pending: Arc<AtomicUsize>,
    max_pending: usize,
    /// Verified against when the user does not exist, so an unknown username
    /// costs the same time as a wrong password.
    dummy_hash: Arc<str>,
}

impl PasswordHasher {
    pub fn new(threads: usize, max_pending: usize) -> Result<Self, PasswordError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..threads.max(1) {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("cordon-argon2-{i}"))
                .spawn(move || {
                    background::enter(HASHING);
                    work(&queue)
                })
                .map_err(|_| PasswordError::Hashing)?;
        }
        let dummy_hash = hash_now("cordon-dummy-password")?;
        Ok(Self {
            jobs,
            pending: Arc::new(AtomicUsize::new(0)),
            max_pending: max_pending.max(1),
            dummy_hash: dummy_hash.into(),
        })
    }

    /// An argon2id PHC string for `password`.
    pub async fn hash(&self, password: String) -> Result<String, PasswordError> {
        self.run(move || hash_now(&password)).await?
    }

    /// Whether `password` matches `stored`; with `None` it checks a dummy hash and returns false.
    pub async fn verify(
        &self,
        password: String,
        stored: Option<String>,
    ) -> Result<bool, PasswordError> {
        let known = stored.is_some();
        let hash = stored.unwrap_or_else(|| self.dummy_hash.to_string());
        let matches = self.run(move || verify_now(&password, &hash)).await?;
        Ok(known && matches)
    }

    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let slot = self.claim()?;
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _slot = slot;
            let _ = done.send(job());
        });
        self.jobs.send(job).map_err(|_| PasswordError::Hashing)?;
        result.await.map_err(|_| PasswordError::Hashing)
    }

    /// One place in the bounded queue, given back when the job is done.
    fn claim(&self) -> Result<PendingSlot, PasswordError> {
        self.pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |pending| {
                (pending < self.max_pending).then_some(pending + 1)
            })
            .map_err(|_| PasswordError::Busy)?;
        Ok(PendingSlot(Arc::clone(&self.pending)))
    }
}

struct PendingSlot(Arc<AtomicUsize>);

impl Drop for PendingSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A hashing thread: runs jobs until every `PasswordHasher` is dropped.
fn work(queue: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        let job = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
        match job {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}

fn hash_now(password: &str) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|_| PasswordError::Hashing)
}

fn verify_now(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_and_verify() {
        let hasher = PasswordHasher::new(1, DEFAULT_MAX_PENDING).unwrap();
        let hash = hasher.hash("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        let verify =
            |password: &str, stored: Option<String>| hasher.verify(password.into(), stored);
        assert!(verify("correct horse", Some(hash.clone())).await.unwrap());
        assert!(!verify("wrong", Some(hash)).await.unwrap());
        assert!(!verify("cordon-dummy-password", None).await.unwrap());
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_instead_of_growing() {
        let hasher = PasswordHasher::new(1, 2).unwrap();
        let burst = (0..6).map(|_| hasher.hash("correct horse".into()));
        let results = futures_util::future::join_all(burst).await;
        let busy = results
            .iter()
            .filter(|r| matches!(r, Err(PasswordError::Busy)))
            .count();
        assert_eq!(busy, 4, "two are taken, the rest refused: {results:?}");
        assert!(
            hasher.hash("correct horse".into()).await.is_ok(),
            "room again once done"
        );
    }
}
