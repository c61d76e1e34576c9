//! `BudgetLedger`: one user's model spend this day and this month, checked before each model call so that a budget is overrun by at most one call.
//!
//! The engine is its user's one owner (one per process, one live owner
//! across instances), so the ledger it keeps is the truth while it lives:
//! it reads the period's spend from the store once, then counts each call
//! as it settles. Calls run concurrently while every call in flight would
//! fit under the limits at the cost of the costliest call seen so far; near
//! a limit (or before any call is seen) they go one at a time, and once a
//! limit is reached no call is made until its period resets.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use cordon_core::{BudgetLimits, BudgetPeriod, Clock, LlmError, Spend, StoreError, UserStore};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::Notify;

/// How long the user's own limits are trusted before they are read again
/// (an admin's change on this instance is seen at once).
const LIMITS_TTL: Duration = Duration::from_secs(5);

pub(crate) struct BudgetLedger {
    store: UserStore,
    defaults: BudgetLimits,
    clock: Arc<dyn Clock>,
    state: Mutex<Ledger>,
    /// Woken when a call settles, so calls waiting near a limit look again.
    settled: Notify,
}

#[derive(Default)]
struct Ledger {
    limits: BudgetLimits,
    limits_read: Option<Instant>,
    /// `None` until read from the store (only once a limit applies).
    day: Option<PeriodSpend>,
    month: Option<PeriodSpend>,
    in_flight: u64,
    /// The largest tokens and cost of any one call seen (`None`: none yet).
    largest_call: Option<Spend>,
}

#[derive(Clone, Copy)]
struct PeriodSpend {
    start: OffsetDateTime,
    spent: Spend,
}

/// What the ledger says to a call that asks.
enum Verdict {
    Admit,
    Wait,
    Refuse(String),
}

/// A call admitted under the budget; settle it with what the call spent.
/// Dropped unsettled (the call failed before any usage), it only frees its place.
pub(crate) struct BudgetPermit<'a> {
    ledger: &'a BudgetLedger,
    settled: bool,
}

impl BudgetLedger {
    pub(crate) fn new(store: UserStore, defaults: BudgetLimits, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            defaults,
            clock,
            state: Mutex::default(),
            settled: Notify::new(),
        }
    }

    /// The time by the engine's clock (model calls are stamped with it).
    pub(crate) fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// The user's limits will be read again before the next call.
    pub(crate) fn limits_changed(&self) {
        self.lock().limits_read = None;
        self.settled.notify_waiters();
    }

    /// Waits until a model call fits the user's budget; refuses with
    /// `BudgetExceeded` (naming the limit and when it resets) once it is spent.
    pub(crate) async fn admit(&self) -> Result<BudgetPermit<'_>, LlmError> {
        loop {
            self.refresh().await.map_err(|error| {
                LlmError::Unavailable(format!("the user's budget could not be read: {error}"))
            })?;
            let settled = self.settled.notified();
            match self.decide() {
                Verdict::Admit => {
                    return Ok(BudgetPermit {
                        ledger: self,
                        settled: false,
                    });
                }
                Verdict::Refuse(reason) => return Err(LlmError::BudgetExceeded(reason)),
                Verdict::Wait => settled.await,
            }
        }
    }

    /// Reads the user's own limits when stale, and each period's spend the
    /// first time a limit applies to it or after it reset.
    async fn refresh(&self) -> Result<(), StoreError> {
        let stale = self
            .lock()
            .limits_read
            .is_none_or(|read| read.elapsed() >= LIMITS_TTL);
        if stale {
            let limits = self.store.budget_override().await?.unwrap_or(self.defaults);
            let mut ledger = self.lock();
            ledger.limits = limits;
            ledger.limits_read = Some(Instant::now());
        }
        let now = self.clock.now();
        for period in [BudgetPeriod::Day, BudgetPeriod::Month] {
            let start = period.start(now);
            let needed = {
                let ledger = self.lock();
                let limits = ledger.limits.of(period);
                (limits.usd.is_some() || limits.tokens.is_some())
                    && ledger
                        .period(period)
                        .is_none_or(|spend| spend.start != start)
            };
            if needed {
                let spent = self.store.spend_since(start).await?;
                self.lock()
                    .read_period(period, PeriodSpend { start, spent });
            }
        }
        Ok(())
    }

    fn decide(&self) -> Verdict {
        let now = self.clock.now();
        let mut ledger = self.lock();
        if !ledger.limits.any() {
            ledger.in_flight += 1;
            return Verdict::Admit;
        }
        for period in [BudgetPeriod::Day, BudgetPeriod::Month] {
            let Some(spend) = ledger.period(period) else {
                continue;
            };
            if let Some((kind, limit)) = spend.spent.reached(ledger.limits.of(period)) {
                return Verdict::Refuse(format!(
                    "the {} {} budget of {} is used up; it resets at {}",
                    if period == BudgetPeriod::Day {
                        "daily"
                    } else {
                        "monthly"
                    },
                    <&str>::from(kind),
                    limit,
                    period.next_reset(now).format(&Rfc3339).unwrap_or_default(),
                ));
            }
        }
        if ledger.in_flight == 0 || ledger.all_fit(ledger.in_flight + 1) {
            ledger.in_flight += 1;
            Verdict::Admit
        } else {
            Verdict::Wait
        }
    }

    fn settle(&self, spent: Option<Spend>) {
        let now = self.clock.now();
        let mut ledger = self.lock();
        ledger.in_flight = ledger.in_flight.saturating_sub(1);
        if let Some(spent) = spent {
            ledger.count(spent, now);
        }
        drop(ledger);
        self.settled.notify_waiters();
    }

    fn lock(&self) -> MutexGuard<'_, Ledger> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Ledger {
    fn period(&self, period: BudgetPeriod) -> Option<&PeriodSpend> {
        match period {
            BudgetPeriod::Day => self.day.as_ref(),
            BudgetPeriod::Month => self.month.as_ref(),
        }
    }

    fn read_period(&mut self, period: BudgetPeriod, spend: PeriodSpend) {
        match period {
            BudgetPeriod::Day => self.day = Some(spend),
            BudgetPeriod::Month => self.month = Some(spend),
        }
    }

    /// Whether `calls` calls, each as costly as the costliest seen, fit
    /// under every limit; unknown until one call was seen.
    fn all_fit(&self, calls: u64) -> bool {
        let Some(each) = self.largest_call else {
            return false;
        };
        [BudgetPeriod::Day, BudgetPeriod::Month]
            .into_iter()
            .all(|period| {
                self.period(period)
                    .is_none_or(|spend| spend.spent.fits(self.limits.of(period), calls, each))
            })
    }

    /// Adds a settled call to each period it falls in (a period that has
    /// since reset is read again from the store, which holds the call).
    fn count(&mut self, spent: Spend, now: OffsetDateTime) {
        for period in [BudgetPeriod::Day, BudgetPeriod::Month] {
            let slot = match period {
                BudgetPeriod::Day => &mut self.day,
                BudgetPeriod::Month => &mut self.month,
            };
            if let Some(spend) = slot
                && spend.start == period.start(now)
            {
                spend.spent.add(spent);
            }
        }
        let largest = self.largest_call.get_or_insert_default();
        largest.tokens = largest.tokens.max(spent.tokens);
        largest.cost_usd = largest.cost_usd.max(spent.cost_usd);
    }
}

impl BudgetPermit<'_> {
    /// Counts what the call spent and frees its place.
    pub(crate) fn settle(mut self, spent: Spend) {
        self.settled = true;
        self.ledger.settle(Some(spent));
    }
}

impl Drop for BudgetPermit<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.ledger.settle(None);
        }
    }
}
