//! `LoginThrottle`: limits failed logins per account and per client address, so passwords cannot be guessed at speed.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Failed logins one account may have within `WINDOW`.
pub const MAX_FAILURES_PER_ACCOUNT: u32 = 10;
/// Failed logins one client address may have within `WINDOW` (across accounts).
pub const MAX_FAILURES_PER_ADDRESS: u32 = 50;
/// How long failures are remembered.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Entries kept before expired ones are swept.
const SWEEP_AT: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Failures {
    first: Instant,
    count: u32,
}

/// Counts failures per key (`account:<name>`, `address:<ip>`) in fixed windows.
#[derive(Default)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<String, Failures>>,
}

/// The keys one login attempt is counted under, with their limits.
pub fn keys(username: &str, address: Option<std::net::IpAddr>) -> Vec<(String, u32)> {
    let mut keys = vec![(
        format!("account:{}", username.trim().to_lowercase()),
        MAX_FAILURES_PER_ACCOUNT,
    )];
    if let Some(address) = address {
        keys.push((format!("address:{address}"), MAX_FAILURES_PER_ADDRESS));
    }
    keys
}

impl LoginThrottle {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Failures>> {
        self.failures.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `Err(retry_after)` when any key is over its limit.
    pub fn check(&self, keys: &[(String, u32)]) -> Result<(), Duration> {
        let failures = self.lock();
        let blocked = keys.iter().filter_map(|(key, limit)| {
            let entry = failures.get(key)?;
            let age = entry.first.elapsed();
            (age < WINDOW && entry.count >= *limit).then(|| WINDOW - age)
        });
        match blocked.max() {
            Some(retry_after) => Err(retry_after),
            None => Ok(()),
        }
    }

    pub fn record_failure(&self, keys: &[(String, u32)]) {
        let mut failures = self.lock();
        if failures.len() >= SWEEP_AT {
            failures.retain(|_, entry| entry.first.elapsed() < WINDOW);
        }
        for (key, _) in keys {
            let entry = failures.entry(key.clone()).or_insert(Failures {
                first: Instant::now(),
                count: 0,
            });
            if entry.first.elapsed() >= WINDOW {
                *entry = Failures {
                    first: Instant::now(),
                    count: 0,
                };
            }
            entry.count += 1;
        }
    }

    /// A successful login clears the account's failures (not the address's).
    pub fn record_success(&self, keys: &[(String, u32)]) {
        if let Some((account, _)) = keys.first() {
            self.lock().remove(account);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_is_blocked_after_its_limit_and_cleared_by_success() {
        let throttle = LoginThrottle::default();
        let alice = keys("Alice", None);
        for _ in 0..MAX_FAILURES_PER_ACCOUNT {
            assert!(throttle.check(&alice).is_ok());
            throttle.record_failure(&alice);
        }
        let retry_after = throttle.check(&keys("alice", None)).unwrap_err();
        assert!(retry_after <= WINDOW && retry_after > WINDOW - Duration::from_secs(5));
        assert!(
            throttle.check(&keys("bob", None)).is_ok(),
            "other accounts are not affected"
        );
        throttle.record_success(&alice);
        assert!(throttle.check(&alice).is_ok());
    }

    #[test]
    fn an_address_is_blocked_across_accounts() {
        let throttle = LoginThrottle::default();
        let address = Some("10.0.0.1".parse().unwrap());
        for i in 0..MAX_FAILURES_PER_ADDRESS {
            throttle.record_failure(&keys(&format!("user{i}"), address));
        }
        assert!(throttle.check(&keys("fresh", address)).is_err());
        assert!(
            throttle
                .check(&keys("fresh", Some("10.0.0.2".parse().unwrap())))
                .is_ok()
        );
    }
}
