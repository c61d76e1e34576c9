//! Read-your-writes per user: which queued write a user's read must wait for, and how far the writer has settled.
//!
//! Every write is sent to the writer with a ticket, in ticket order, and
//! each user's latest ticket is noted. After each batch the writer
//! announces the last ticket it settled. A read waits only until its own
//! user's latest write is settled: another tenant's queue (however long)
//! is never in its way, and a user with nothing queued does not wait at all.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use cordon_core::StoreError;
use tokio::sync::{mpsc, watch};

use crate::writer::WriteOp;

/// A write on its way to the writer, numbered in queue order.
pub struct Ticketed {
    pub ticket: u64,
    pub op: WriteOp,
}

/// The store's side: numbers writes as they are sent.
pub struct Tickets {
    queued: Mutex<Queued>,
    settled: watch::Receiver<u64>,
}

/// The writer's side: announces how far it has settled. Dropped when the
/// writer ends, which releases every waiting read with `Closed`.
pub struct Visible(watch::Sender<u64>);

#[derive(Default)]
struct Queued {
    last: u64,
    latest_by_user: HashMap<String, u64>,
    /// Users noted when the map was last swept of settled entries.
    kept_at_sweep: usize,
}

/// The map is swept of settled users once it holds this many more than it kept.
const SWEEP_AFTER: usize = 1024;

pub fn tickets() -> (Tickets, Visible) {
    let (announce, settled) = watch::channel(0);
    let queued = Mutex::new(Queued::default());
    (Tickets { queued, settled }, Visible(announce))
}

impl Tickets {
    /// Numbers `op` and sends it; under one lock, so tickets reach the
    /// writer in order and "ticket `t` settled" means all before it are too.
    pub fn send(
        &self,
        op: WriteOp,
        writes: &mpsc::UnboundedSender<Ticketed>,
    ) -> Result<(), StoreError> {
        let mut queued = self.queued.lock().unwrap_or_else(PoisonError::into_inner);
        let ticket = queued.last + 1;
        // Noted before it is sent: if the writer is gone the send fails, and
        // so does every wait (the writer's `Visible` went with it).
        if let Some(user) = op.user_id() {
            queued.note(user, ticket, *self.settled.borrow());
        }
        queued.last = ticket;
        writes
            .send(Ticketed { ticket, op })
            .map_err(|_| StoreError::Closed)
    }

    /// Waits until every write of `user_id` queued so far is settled
    /// (committed, or refused while writes fail).
    pub async fn settled_for(&self, user_id: &str) -> Result<(), StoreError> {
        let latest = {
            let queued = self.queued.lock().unwrap_or_else(PoisonError::into_inner);
            queued.latest_by_user.get(user_id).copied()
        };
        match latest {
            Some(ticket) => self.settled_through(ticket).await,
            None => Ok(()),
        }
    }

    async fn settled_through(&self, ticket: u64) -> Result<(), StoreError> {
        if *self.settled.borrow() >= ticket {
            return Ok(());
        }
        let mut settled = self.settled.clone();
        settled
            .wait_for(|&through| through >= ticket)
            .await
            .map(drop)
            .map_err(|_| StoreError::Closed)
    }
}

impl Queued {
    /// A user already noted costs no allocation (this runs for every write).
    fn note(&mut self, user: &str, ticket: u64, settled: u64) {
        match self.latest_by_user.get_mut(user) {
            Some(latest) => *latest = ticket,
            None => {
                self.latest_by_user.insert(user.to_owned(), ticket);
            }
        }
        if self.latest_by_user.len() > self.kept_at_sweep + SWEEP_AFTER {
            self.latest_by_user.retain(|_, latest| *latest > settled);
            self.kept_at_sweep = self.latest_by_user.len();
        }
    }
}

impl Visible {
    /// Every write up to `ticket` is committed or refused: reads waiting on them go on.
    pub fn through(&self, ticket: u64) {
        self.0.send_if_modified(|through| {
            let advanced = ticket > *through;
            *through = (*through).max(ticket);
            advanced
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a_write_of(user: &str) -> WriteOp {
        WriteOp::RevokeTokens(user.to_owned(), tokio::sync::oneshot::channel().0)
    }

    #[tokio::test]
    async fn a_read_waits_for_its_own_users_writes_only() {
        let (tickets, settled) = tickets();
        let (writes, mut queue) = mpsc::unbounded_channel();
        tickets.send(a_write_of("alice"), &writes).unwrap();
        tickets.send(a_write_of("bob"), &writes).unwrap();
        assert_eq!(queue.recv().await.unwrap().ticket, 1);
        assert_eq!(queue.recv().await.unwrap().ticket, 2);
        settled.through(1);
        // Alice's write is settled, Bob's is not: only Bob's read waits.
        tickets.settled_for("alice").await.unwrap();
        tickets.settled_for("carol").await.unwrap();
        let bob = tickets.settled_for("bob");
        tokio::pin!(bob);
        assert!(ready_within_20_ms(bob.as_mut()).await.is_none());
        settled.through(2);
        bob.await.unwrap();
    }

    #[tokio::test]
    async fn a_writer_that_ended_releases_waiting_reads() {
        let (tickets, settled) = tickets();
        let (writes, _queue) = mpsc::unbounded_channel();
        tickets.send(a_write_of("alice"), &writes).unwrap();
        drop(settled);
        assert!(matches!(
            tickets.settled_for("alice").await,
            Err(StoreError::Closed)
        ));
    }

    #[test]
    fn settled_users_are_swept_from_the_map() {
        let mut queued = Queued::default();
        for n in 0..=SWEEP_AFTER as u64 {
            queued.note(&format!("user-{n}"), n + 1, SWEEP_AFTER as u64);
        }
        assert_eq!(queued.latest_by_user.len(), 1);
    }

    async fn ready_within_20_ms<F: std::future::Future + Unpin>(future: F) -> Option<F::Output> {
        tokio::time::timeout(std::time::Duration::from_millis(20), future)
            .await
            .ok()
    }
}
