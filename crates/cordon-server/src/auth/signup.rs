//! `SignupThrottle`: sign-ups per client address per hour, so accounts cannot be mass-created or usernames enumerated at speed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use cordon_engine::rate::TokenBucket;

/// Sign-up attempts one address may make per hour, by default.
pub const DEFAULT_SIGNUPS_PER_HOUR: u32 = 20;
/// Addresses kept before idle ones are swept.
const SWEEP_AT: usize = 10_000;

/// A token bucket per address: a burst of the hourly allowance, then one
/// attempt every hour / allowance. Every attempt counts, taken name or not.
pub struct SignupThrottle {
    per_hour: u32,
    buckets: Mutex<HashMap<IpAddr, (TokenBucket, Instant)>>,
}

impl SignupThrottle {
    pub fn new(per_hour: u32) -> Self {
        Self {
            per_hour,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one attempt for `address`, or says how long until it may try.
    pub fn admit(&self, address: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() >= SWEEP_AT {
            // An hour idle means a full bucket again: forgetting it loses nothing.
            buckets.retain(|_, (_, used)| now.duration_since(*used) < Duration::from_secs(3600));
        }
        let (bucket, used) = buckets.entry(address).or_insert_with(|| {
            (
                TokenBucket::new(self.per_hour, Duration::from_secs(3600)),
                now,
            )
        });
        *used = now;
        bucket.take(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_hourly_allowance_and_others_are_not_affected() {
        let throttle = SignupThrottle::new(3);
        let here = IpAddr::from([192, 0, 2, 1]);
        for _ in 0..3 {
            assert_eq!(throttle.admit(here), Ok(()));
        }
        let wait = throttle.admit(here).unwrap_err();
        assert!(
            wait > Duration::from_secs(1190) && wait <= Duration::from_secs(1200),
            "{wait:?}"
        );
        assert_eq!(throttle.admit(IpAddr::from([192, 0, 2, 2])), Ok(()));
    }
}
