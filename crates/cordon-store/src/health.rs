//! `WriteHealth`: the write queue's depth and bound, and whether writes are failing; shared by the store and its writer thread.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use cordon_core::StoreError;
use tokio::sync::Notify;

/// Default bound of the write queue, in writes. At ~11 writes a run this is
/// a few seconds of the writer's work at full speed, a few tens of MiB.
pub const DEFAULT_WRITE_QUEUE_CAPACITY: usize = 65_536;

pub struct WriteHealth {
    /// Writes queued and not yet acknowledged.
    depth: AtomicUsize,
    capacity: usize,
    /// Why writes fail, while they do. Once a batch fails every write is
    /// refused until a probe write succeeds, so no later write can commit
    /// past the lost ones (a run's events would have a hole).
    failure: Mutex<Option<String>>,
    failing: AtomicBool,
    epoch: AtomicU64,
    /// A probe is queued: at most one at a time.
    probing: AtomicBool,
    room: Notify,
}

impl WriteHealth {
    pub fn new(capacity: usize) -> Self {
        Self {
            depth: AtomicUsize::new(0),
            capacity: capacity.max(2),
            failure: Mutex::new(None),
            failing: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            probing: AtomicBool::new(false),
            room: Notify::new(),
        }
    }

    pub fn depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }

    pub fn queued(&self) {
        self.depth.fetch_add(1, Ordering::Relaxed);
    }

    /// The writer acknowledged `count` writes: wakes runs waiting for room.
    pub fn drained(&self, count: usize) {
        let before = self.depth.fetch_sub(count, Ordering::Relaxed);
        if before.saturating_sub(count) < self.capacity {
            self.room.notify_waiters();
        }
    }

    /// A new run may start while the queue is below half its bound: the other
    /// half is headroom for the runs already going, which wait for room
    /// rather than fail.
    pub fn admit(&self) -> Result<(), StoreError> {
        self.check_failing()?;
        if self.depth() >= self.capacity / 2 {
            return Err(StoreError::Overloaded);
        }
        Ok(())
    }

    /// Resolves once the queue is below its bound (at once while failing:
    /// writes are refused then, not queued).
    pub async fn room(&self) {
        loop {
            let notified = self.room.notified();
            if self.depth() < self.capacity || self.is_failing() {
                return;
            }
            notified.await;
        }
    }

    pub fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Acquire)
    }

    /// `Err` with the reason while writes are failing.
    pub fn check_failing(&self) -> Result<(), StoreError> {
        if !self.is_failing() {
            return Ok(());
        }
        let reason = self
            .failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .unwrap_or_default();
        Err(StoreError::Backend(format!("writes are failing: {reason}")))
    }

    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// A batch failed: from now on writes are refused until a probe succeeds.
    pub fn fail(&self, reason: String) {
        let mut failure = self.failure.lock().unwrap_or_else(PoisonError::into_inner);
        if failure.is_none() {
            tracing::error!(%reason, "writes are failing; refusing new writes until the store takes one again");
            self.epoch.fetch_add(1, Ordering::AcqRel);
        }
        *failure = Some(reason);
        self.failing.store(true, Ordering::Release);
        self.room.notify_waiters();
    }

    /// A probe write committed: writes are taken again.
    pub fn recover(&self) {
        let mut failure = self.failure.lock().unwrap_or_else(PoisonError::into_inner);
        if failure.take().is_some() {
            tracing::info!("the store takes writes again");
        }
        self.failing.store(false, Ordering::Release);
    }

    /// Claims the one probe slot; `false` when a probe is already queued.
    pub fn claim_probe(&self) -> bool {
        !self.probing.swap(true, Ordering::AcqRel)
    }

    pub fn probe_done(&self) {
        self.probing.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_stops_at_half_the_bound_and_failure_refuses_everything() {
        let health = WriteHealth::new(4);
        assert_eq!(health.admit(), Ok(()));
        health.queued();
        health.queued();
        assert_eq!(health.admit(), Err(StoreError::Overloaded));
        health.drained(2);
        assert_eq!(health.admit(), Ok(()));
        health.fail("disk full".into());
        assert!(
            matches!(health.admit(), Err(StoreError::Backend(reason)) if reason.contains("disk full"))
        );
        assert_eq!(health.epoch(), 1);
        health.recover();
        assert_eq!(health.admit(), Ok(()));
        assert_eq!(
            health.epoch(),
            1,
            "recovery keeps the epoch: a run that saw the failure still knows"
        );
    }
}
