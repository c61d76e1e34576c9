//! `LoginThrottle`: progressive delays on failed logins per account and address, counted before the hash so a burst cannot race past them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Failed logins for one account from one address before delays start.
pub const FREE_PER_ACCOUNT_AND_ADDRESS: u32 = 5;
/// Failed logins for one account from all addresses before delays start
/// (many addresses guessing one password).
pub const FREE_PER_ACCOUNT: u32 = 50;
/// Failed logins from one address over all accounts before delays start.
pub const FREE_PER_ADDRESS: u32 = 50;
/// The first delay; each further failure doubles it, up to `MAX_DELAY`.
pub const FIRST_DELAY: Duration = Duration::from_secs(1);
/// The longest delay: the owner of an attacked account waits at most this long.
pub const MAX_DELAY: Duration = Duration::from_secs(60);
/// Failures are forgotten after this long without a new one.
pub const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Entries kept before forgotten ones are swept.
const SWEEP_AT: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

impl Failures {
    /// How long until the next attempt under this key may be verified.
    fn wait(&self, free: u32, now: Instant) -> Duration {
        let Some(over) = self.count.checked_sub(free) else {
            return Duration::ZERO;
        };
        let delay = FIRST_DELAY
            .saturating_mul(2_u32.saturating_pow(over.min(16)))
            .min(MAX_DELAY);
        (self.last + delay).saturating_duration_since(now)
    }
}

/// One key an attempt is counted under, and its free failures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleKey {
    key: String,
    free: u32,
    /// Cleared by a successful login (the account's keys, not the address's).
    cleared_by_success: bool,
}

/// The keys of one login attempt: the account from this address, the
/// account, and the address.
pub fn keys(username: &str, address: Option<IpAddr>) -> Vec<ThrottleKey> {
    let account = username.trim().to_lowercase();
    let mut keys = vec![ThrottleKey {
        key: format!("account:{account}"),
        free: FREE_PER_ACCOUNT,
        cleared_by_success: true,
    }];
    if let Some(address) = address {
        keys.push(ThrottleKey {
            key: format!("pair:{account}|{address}"),
            free: FREE_PER_ACCOUNT_AND_ADDRESS,
            cleared_by_success: true,
        });
        keys.push(ThrottleKey {
            key: format!("address:{address}"),
            free: FREE_PER_ADDRESS,
            cleared_by_success: false,
        });
    }
    keys
}

/// Counts failed logins; an attempt is counted as a failure when it starts
/// (under one lock with the check), and taken back if it succeeds.
#[derive(Default)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<String, Failures>>,
}

impl LoginThrottle {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Failures>> {
        self.failures.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admits an attempt and counts it, or `Err(retry_after)` while any of
    /// its keys is in its delay. Check and count are one step, so however
    /// many attempts arrive at once, no more than the free ones are verified.
    pub fn begin(&self, keys: &[ThrottleKey]) -> Result<(), Duration> {
        let now = Instant::now();
        let mut failures = self.lock();
        if failures.len() >= SWEEP_AT {
            failures.retain(|_, entry| now.duration_since(entry.last) < FORGET_AFTER);
        }
        let wait = keys
            .iter()
            .filter_map(|key| {
                failures
                    .get(&key.key)
                    .map(|entry| entry.wait(key.free, now))
            })
            .max()
            .unwrap_or_default();
        if !wait.is_zero() {
            return Err(wait);
        }
        for key in keys {
            let entry = failures.entry(key.key.clone()).or_insert(Failures {
                count: 0,
                last: now,
            });
            if now.duration_since(entry.last) >= FORGET_AFTER {
                entry.count = 0;
            }
            entry.count += 1;
            entry.last = now;
        }
        Ok(())
    }

    /// The attempt was right: the account's failures are forgotten and the
    /// address's count loses this attempt.
    pub fn succeeded(&self, keys: &[ThrottleKey]) {
        let mut failures = self.lock();
        for key in keys {
            if key.cleared_by_success {
                failures.remove(&key.key);
            } else if let Some(entry) = failures.get_mut(&key.key) {
                entry.count = entry.count.saturating_sub(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([10, 0, 0, last]))
    }

    #[test]
    fn free_attempts_then_a_delay_that_doubles_and_success_clears_it() {
        let throttle = LoginThrottle::default();
        let alice = keys("Alice", address(1));
        for _ in 0..FREE_PER_ACCOUNT_AND_ADDRESS {
            assert_eq!(throttle.begin(&alice), Ok(()));
        }
        let wait = throttle.begin(&keys("alice", address(1))).unwrap_err();
        assert!(wait <= FIRST_DELAY && wait > FIRST_DELAY - Duration::from_millis(200));
        assert_eq!(
            throttle.begin(&keys("alice", address(2))),
            Ok(()),
            "another address is not delayed"
        );
        assert_eq!(
            throttle.begin(&keys("bob", address(1))),
            Ok(()),
            "another account is not delayed"
        );
        throttle.succeeded(&alice);
        assert_eq!(throttle.begin(&alice), Ok(()));
    }

    #[test]
    fn the_delay_grows_to_its_cap() {
        let failures = Failures {
            count: 100,
            last: Instant::now(),
        };
        let wait = failures.wait(5, failures.last);
        assert_eq!(wait, MAX_DELAY);
        let failures = Failures {
            count: 7,
            ..failures
        };
        assert_eq!(failures.wait(5, failures.last), FIRST_DELAY * 4);
    }

    #[test]
    fn an_address_is_delayed_across_accounts() {
        let throttle = LoginThrottle::default();
        for i in 0..FREE_PER_ADDRESS {
            assert_eq!(
                throttle.begin(&keys(&format!("user{i}"), address(9))),
                Ok(())
            );
        }
        assert!(throttle.begin(&keys("fresh", address(9))).is_err());
        assert_eq!(throttle.begin(&keys("fresh", address(8))), Ok(()));
    }
}
