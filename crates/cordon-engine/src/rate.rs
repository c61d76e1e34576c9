//! `TokenBucket`: a per-user rate limit that allows short bursts and refills at a steady rate.

use std::time::{Duration, Instant};

/// Holds up to `capacity` tokens, refilled continuously over `period`; each
/// message takes one.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    capacity: f64,
    per_second: f64,
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    /// `per_period` tokens a `period`, all of them available at once.
    pub fn new(per_period: u32, period: Duration) -> Self {
        let capacity = f64::from(per_period.max(1));
        Self {
            capacity,
            per_second: capacity / period.as_secs_f64().max(f64::EPSILON),
            tokens: capacity,
            updated: Instant::now(),
        }
    }

    /// Takes a token, or says how long until one is there.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        Err(Duration::from_secs_f64(
            (1.0 - self.tokens) / self.per_second,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_up_to_capacity_then_one_token_per_refill_interval() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(120, Duration::from_secs(60));
        for _ in 0..120 {
            assert_eq!(bucket.take(start), Ok(()));
        }
        let wait = bucket.take(start).unwrap_err();
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-6, "{wait:?}");
        assert_eq!(bucket.take(start + Duration::from_millis(500)), Ok(()));
        assert!(bucket.take(start + Duration::from_millis(500)).is_err());
    }
}
