//! Every instance's sockets get their user's events in one gap-free `seq` order, wherever the user's runs execute.
//!
//! The owner's writer hands each committed event to a [`ClusterSink`], which
//! publishes it on the user's subject and offers it to this instance's
//! [`Follow`] of the user, if one of the user's sockets is here. A follow is
//! the one way into the local hub in cluster mode: it delivers `seq` after
//! `seq`, and a gap (a message the broker lost, or one still on its way) is
//! filled from the stored log, which is the truth. While the broker is down
//! nothing arrives, so a follow also reads the log's tail on a timer: every
//! 2 s, or every 250 ms while disconnected.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use async_nats::Subject;
use async_nats::client::Client;
use cordon_core::{EventSink, EventSinks, Store, StoreError, UserId};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::wire::{event_message, events_subject, parse_event};

/// Events waiting to be published to the broker; past it they are dropped
/// (followers fill them from the log) rather than stalling the writer.
const OUTBOX: usize = 16_384;
/// How often a follow reads the log's tail while the broker is unreachable.
const POLL_DISCONNECTED: Duration = Duration::from_millis(250);
/// How long after the broker's last message a follow reads the tail once:
/// the broker delivers at most once, and a lost last event has no later one
/// to reveal the gap.
const POLL_SETTLE: Duration = Duration::from_secs(2);
/// How often a quiet follow reads the tail anyway, for a burst the broker
/// lost whole (a publisher's full outbox, a slow consumer).
const POLL_IDLE: Duration = Duration::from_secs(30);
/// Events read from the log per page when filling a gap.
const FILL_PAGE: u32 = 500;
/// Reads that find nothing before a fill stops waiting for an offered `seq`.
const MAX_EMPTY_READS: u32 = 20;

/// The owner's side: every committed event goes to the broker and to the local follow.
pub struct ClusterSinks {
    follows: Arc<Follows>,
    outbox: mpsc::Sender<Outgoing>,
}

/// A committed event on its way to the broker: its user's subject (made
/// once per sink, not per event), `seq` and payload.
type Outgoing = (Subject, u64, Arc<str>);

impl ClusterSinks {
    /// Starts the task that publishes queued events to the broker.
    pub fn start(broker: Client, follows: Arc<Follows>) -> (Self, JoinHandle<()>) {
        let (outbox, queued) = mpsc::channel(OUTBOX);
        let publisher = tokio::spawn(publish_queued(broker, queued));
        (Self { follows, outbox }, publisher)
    }
}

async fn publish_queued(broker: Client, mut queued: mpsc::Receiver<Outgoing>) {
    while let Some((subject, seq, payload)) = queued.recv().await {
        let message = event_message(seq, &payload);
        if let Err(error) = broker.publish(subject, message).await {
            tracing::debug!(%error, "could not publish an event; followers read it from the log");
        }
    }
}

impl EventSinks for ClusterSinks {
    fn for_user(&self, user_id: &UserId) -> Arc<dyn EventSink> {
        Arc::new(ClusterSink {
            user_id: user_id.clone(),
            subject: Subject::from(events_subject(user_id)),
            follows: Arc::clone(&self.follows),
            outbox: self.outbox.clone(),
        })
    }
}

pub struct ClusterSink {
    user_id: UserId,
    subject: Subject,
    follows: Arc<Follows>,
    outbox: mpsc::Sender<Outgoing>,
}

impl EventSink for ClusterSink {
    fn user_id(&self) -> &UserId {
        &self.user_id
    }

    /// Called by the writer's publisher once the event is committed.
    fn publish(&self, seq: u64, payload: &Arc<str>) {
        let queued = (self.subject.clone(), seq, Arc::clone(payload));
        if self.outbox.try_send(queued).is_err() {
            tracing::debug!("broker outbox full; followers read the event from the log");
        }
        if let Some(follow) = self.follows.get(&self.user_id) {
            follow.offer(seq, Arc::clone(payload));
        }
    }
}

/// This instance's follows, one per user with a socket here.
pub struct Follows {
    broker: Client,
    store: Arc<dyn Store>,
    local: Arc<dyn EventSinks>,
    live: Mutex<HashMap<UserId, Weak<Follow>>>,
}

impl Follows {
    /// `local` is the hub: the follows are its only publishers.
    pub fn new(broker: Client, store: Arc<dyn Store>, local: Arc<dyn EventSinks>) -> Arc<Self> {
        Arc::new(Self {
            broker,
            store,
            local,
            live: Mutex::new(HashMap::new()),
        })
    }

    fn get(&self, user_id: &UserId) -> Option<Arc<Follow>> {
        self.lock().get(user_id).and_then(Weak::upgrade)
    }

    /// The user's follow, started if none is live; held while a socket is open.
    pub async fn follow(self: &Arc<Self>, user_id: &UserId) -> Result<Arc<Follow>, StoreError> {
        if let Some(follow) = self.get(user_id) {
            return Ok(follow);
        }
        // Before subscribing: anything committed since reaches the follow
        // through the broker or, at the latest, through its poll.
        let head = self.store.last_event_seq(user_id).await?;
        let mut live = self.lock();
        if let Some(follow) = live.get(user_id).and_then(Weak::upgrade) {
            return Ok(follow);
        }
        let follow = Arc::new(Follow {
            user_id: user_id.clone(),
            sink: self.local.for_user(user_id),
            store: Arc::clone(&self.store),
            runtime: tokio::runtime::Handle::current(),
            order: Mutex::new(Order {
                next: head + 1,
                highest_seen: head,
                filling: false,
            }),
            task: Mutex::new(None),
        });
        let task = tokio::spawn(listen(
            self.broker.clone(),
            Arc::downgrade(&follow),
            user_id.clone(),
        ));
        *follow.task.lock().unwrap_or_else(PoisonError::into_inner) = Some(task);
        live.retain(|_, follow| follow.strong_count() > 0);
        live.insert(user_id.clone(), Arc::downgrade(&follow));
        Ok(follow)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<UserId, Weak<Follow>>> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Where one user's delivery on this instance stands.
struct Order {
    /// The next `seq` to deliver.
    next: u64,
    /// The highest `seq` offered, delivered or not.
    highest_seen: u64,
    /// A fill from the log is running; it delivers up to `highest_seen`.
    filling: bool,
}

/// One user's events into this instance's hub, gap-free and in `seq` order.
pub struct Follow {
    user_id: UserId,
    sink: Arc<dyn EventSink>,
    store: Arc<dyn Store>,
    /// Fills run here: offers also come from the store's publisher thread,
    /// which is not a runtime thread.
    runtime: tokio::runtime::Handle,
    order: Mutex<Order>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Follow {
    fn drop(&mut self) {
        if let Some(task) = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
    }
}

impl Follow {
    fn lock(&self) -> MutexGuard<'_, Order> {
        self.order.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Delivers the event if it is the next one; a later one starts a fill.
    fn offer(self: &Arc<Self>, seq: u64, payload: Arc<str>) {
        let mut order = self.lock();
        order.highest_seen = order.highest_seen.max(seq);
        if seq == order.next && !order.filling {
            order.next += 1;
            // Under the lock, so two offers cannot swap places.
            self.sink.publish(seq, &payload);
        } else if seq > order.next && !order.filling {
            order.filling = true;
            self.runtime.spawn(Arc::clone(self).fill());
        }
    }

    /// Reads the log from `next` until it has delivered everything offered
    /// (at least one read: a poll of the tail is a fill with nothing offered).
    async fn fill(self: Arc<Self>) {
        let mut empty_reads = 0;
        loop {
            let after = self.lock().next - 1;
            let events = match self
                .store
                .list_events(&self.user_id, after, FILL_PAGE)
                .await
            {
                Ok(events) => events,
                Err(error) => {
                    tracing::warn!(%error, "could not read the log to fill a gap; trying again");
                    tokio::time::sleep(POLL_DISCONNECTED).await;
                    continue;
                }
            };
            empty_reads = if events.is_empty() {
                empty_reads + 1
            } else {
                0
            };
            if self.deliver_page(events, empty_reads >= MAX_EMPTY_READS) {
                return;
            }
            if empty_reads > 0 {
                tokio::time::sleep(POLL_DISCONNECTED).await;
            }
        }
    }

    /// Delivers a page read from the log; whether the fill is done. `give_up`:
    /// an offered `seq` was never stored (a forged message), stop waiting for it.
    fn deliver_page(&self, events: Vec<cordon_core::StoredEvent>, give_up: bool) -> bool {
        let full_page = events.len() == FILL_PAGE as usize;
        let mut order = self.lock();
        for event in events {
            // `<`, not `!=`: retention may have deleted the events before `next`.
            if event.seq < order.next {
                continue;
            }
            order.next = event.seq + 1;
            self.sink.publish(event.seq, &event.payload);
        }
        if give_up {
            order.highest_seen = order.next - 1;
        }
        let done = order.next > order.highest_seen && !full_page;
        if done {
            order.filling = false;
        }
        done
    }

    /// Reads the log's tail: what the broker did not bring.
    fn poll(self: &Arc<Self>) {
        let mut order = self.lock();
        if !order.filling {
            order.filling = true;
            self.runtime.spawn(Arc::clone(self).fill());
        }
    }
}

/// Feeds the follow from the user's subject, and polls the log, until the follow is dropped.
async fn listen(broker: Client, follow: Weak<Follow>, user_id: UserId) {
    let mut messages = match broker.subscribe(events_subject(&user_id)).await {
        Ok(messages) => Some(messages),
        Err(error) => {
            tracing::warn!(%error, "could not subscribe to a user's events; reading the log only");
            None
        }
    };
    let mut ticks = tokio::time::interval(POLL_DISCONNECTED);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut polls = PollSchedule::default();
    loop {
        let message = tokio::select! {
            message = next_message(&mut messages) => message,
            _ = ticks.tick() => {
                let connected = broker.connection_state() == async_nats::connection::State::Connected;
                if polls.tick(connected) {
                    let Some(follow) = follow.upgrade() else { return };
                    follow.poll();
                }
                continue;
            }
        };
        polls.heard();
        let Some(follow) = follow.upgrade() else {
            return;
        };
        match message.as_deref().and_then(parse_event) {
            Some((seq, payload)) => follow.offer(seq, payload),
            None => tracing::debug!("ignored a malformed event message"),
        }
    }
}

/// When a follow reads the log's tail: often while the broker is away, once
/// when it returns, once after a burst settles, and rarely while all is quiet.
struct PollSchedule {
    /// Since the last message or poll.
    quiet: Duration,
    /// No poll has read the tail since the last message.
    unsettled: bool,
    was_connected: bool,
}

impl Default for PollSchedule {
    fn default() -> Self {
        Self {
            quiet: Duration::ZERO,
            unsettled: false,
            was_connected: true,
        }
    }
}

impl PollSchedule {
    fn heard(&mut self) {
        self.quiet = Duration::ZERO;
        self.unsettled = true;
    }

    /// One `POLL_DISCONNECTED` tick has passed: whether to poll now.
    fn tick(&mut self, connected: bool) -> bool {
        self.quiet += POLL_DISCONNECTED;
        let returned = connected && !self.was_connected;
        self.was_connected = connected;
        let due = !connected
            || returned
            || (self.unsettled && self.quiet >= POLL_SETTLE)
            || self.quiet >= POLL_IDLE;
        if due {
            self.quiet = Duration::ZERO;
            self.unsettled = false;
        }
        due
    }
}

/// The next message's payload; pending forever without a subscription.
async fn next_message(messages: &mut Option<async_nats::Subscriber>) -> Option<bytes::Bytes> {
    match messages {
        Some(messages) => messages.next().await.map(|message| message.payload),
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticks_until_poll(polls: &mut PollSchedule, connected: bool) -> u32 {
        (1..=1_000)
            .find(|_| polls.tick(connected))
            .expect("a poll within 1,000 ticks")
    }

    #[test]
    fn a_connected_quiet_follow_polls_only_rarely() {
        let mut polls = PollSchedule::default();
        let idle = (POLL_IDLE.as_millis() / POLL_DISCONNECTED.as_millis()) as u32;
        assert_eq!(ticks_until_poll(&mut polls, true), idle);
        assert_eq!(ticks_until_poll(&mut polls, true), idle);
    }

    #[test]
    fn a_burst_is_settled_by_one_poll() {
        let mut polls = PollSchedule::default();
        polls.heard();
        let settle = (POLL_SETTLE.as_millis() / POLL_DISCONNECTED.as_millis()) as u32;
        assert_eq!(ticks_until_poll(&mut polls, true), settle);
        let idle = (POLL_IDLE.as_millis() / POLL_DISCONNECTED.as_millis()) as u32;
        assert_eq!(ticks_until_poll(&mut polls, true), idle);
    }

    #[test]
    fn an_outage_polls_every_tick_and_once_on_return() {
        let mut polls = PollSchedule::default();
        assert!(polls.tick(false));
        assert!(polls.tick(false));
        assert!(polls.tick(true), "the broker's return reads the tail");
        assert!(!polls.tick(true));
    }
}
