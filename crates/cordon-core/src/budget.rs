//! Budgets: a user's limits on model spend and tokens per day and per month, what was spent, and when each period resets.

use time::{Date, Month, OffsetDateTime, Time};

/// Limits on one user's model use; `None` is no limit. Days and months are
/// UTC calendar days and months.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BudgetLimits {
    pub daily_usd: Option<f64>,
    pub monthly_usd: Option<f64>,
    pub daily_tokens: Option<u64>,
    pub monthly_tokens: Option<u64>,
}

impl BudgetLimits {
    /// Whether any limit is set (a user with none is never checked).
    pub fn any(&self) -> bool {
        self.daily_usd.is_some()
            || self.monthly_usd.is_some()
            || self.daily_tokens.is_some()
            || self.monthly_tokens.is_some()
    }

    /// The limits of `period`.
    pub fn of(&self, period: BudgetPeriod) -> PeriodLimits {
        match period {
            BudgetPeriod::Day => PeriodLimits {
                usd: self.daily_usd,
                tokens: self.daily_tokens,
            },
            BudgetPeriod::Month => PeriodLimits {
                usd: self.monthly_usd,
                tokens: self.monthly_tokens,
            },
        }
    }
}

/// The limits of one period.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PeriodLimits {
    pub usd: Option<f64>,
    pub tokens: Option<u64>,
}

/// Model use summed over some calls.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Spend {
    /// Input and output tokens together.
    pub tokens: u64,
    pub cost_usd: f64,
}

impl Spend {
    pub fn add(&mut self, other: Spend) {
        self.tokens = self.tokens.saturating_add(other.tokens);
        self.cost_usd += other.cost_usd;
    }

    /// The first limit of `limits` this spend has reached, as (what, limit).
    pub fn reached(&self, limits: PeriodLimits) -> Option<(BudgetKind, f64)> {
        if let Some(limit) = limits.tokens
            && self.tokens >= limit
        {
            return Some((BudgetKind::Tokens, limit as f64));
        }
        match limits.usd {
            Some(limit) if self.cost_usd >= limit => Some((BudgetKind::Usd, limit)),
            _ => None,
        }
    }

    /// Whether `calls` more calls of at most `each` still fit under `limits`.
    pub fn fits(&self, limits: PeriodLimits, calls: u64, each: Spend) -> bool {
        let tokens_fit = limits.tokens.is_none_or(|limit| {
            self.tokens
                .saturating_add(each.tokens.saturating_mul(calls))
                <= limit
        });
        let usd_fit = limits
            .usd
            .is_none_or(|limit| self.cost_usd + each.cost_usd * calls as f64 <= limit);
        tokens_fit && usd_fit
    }
}

/// What a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum BudgetKind {
    Tokens,
    Usd,
}

/// The periods budgets reset on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::EnumIter)]
#[strum(serialize_all = "snake_case")]
pub enum BudgetPeriod {
    Day,
    Month,
}

impl BudgetPeriod {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// When the period holding `now` began (UTC).
    pub fn start(self, now: OffsetDateTime) -> OffsetDateTime {
        let now = now.to_offset(time::UtcOffset::UTC);
        let day = match self {
            BudgetPeriod::Day => now.date(),
            BudgetPeriod::Month => now.date().replace_day(1).unwrap_or(now.date()),
        };
        day.with_time(Time::MIDNIGHT).assume_utc()
    }

    /// When the period holding `now` ends and the next begins (UTC).
    pub fn next_reset(self, now: OffsetDateTime) -> OffsetDateTime {
        let start = self.start(now).date();
        let next = match self {
            BudgetPeriod::Day => start.next_day().unwrap_or(Date::MAX),
            BudgetPeriod::Month => first_of_next_month(start),
        };
        next.with_time(Time::MIDNIGHT).assume_utc()
    }
}

fn first_of_next_month(first: Date) -> Date {
    let (year, month) = match first.month() {
        Month::December => (first.year() + 1, Month::January),
        month => (first.year(), month.next()),
    };
    Date::from_calendar_date(year, month, 1).unwrap_or(Date::MAX)
}

/// Where time comes from, so a test can move it (budgets reset on it).
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> OffsetDateTime;
}

/// The system's UTC clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        crate::now()
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn periods_start_and_reset_on_utc_calendar_boundaries() {
        let now = datetime!(2026-12-31 23:59:59 UTC);
        assert_eq!(BudgetPeriod::Day.start(now), datetime!(2026-12-31 0:00 UTC));
        assert_eq!(
            BudgetPeriod::Day.next_reset(now),
            datetime!(2027-01-01 0:00 UTC)
        );
        assert_eq!(
            BudgetPeriod::Month.start(now),
            datetime!(2026-12-01 0:00 UTC)
        );
        assert_eq!(
            BudgetPeriod::Month.next_reset(now),
            datetime!(2027-01-01 0:00 UTC)
        );
        let offset = datetime!(2026-03-01 01:00 +02:00);
        assert_eq!(
            BudgetPeriod::Month.start(offset),
            datetime!(2026-02-01 0:00 UTC)
        );
    }

    #[test]
    fn a_spend_reaches_its_first_limit_and_fits_what_is_left() {
        let limits = PeriodLimits {
            usd: Some(1.0),
            tokens: Some(1000),
        };
        let spent = Spend {
            tokens: 700,
            cost_usd: 0.2,
        };
        assert_eq!(spent.reached(limits), None);
        let each = Spend {
            tokens: 150,
            cost_usd: 0.1,
        };
        assert!(spent.fits(limits, 2, each));
        assert!(!spent.fits(limits, 3, each));
        let over = Spend {
            tokens: 1000,
            cost_usd: 0.0,
        };
        assert_eq!(over.reached(limits), Some((BudgetKind::Tokens, 1000.0)));
    }
}
