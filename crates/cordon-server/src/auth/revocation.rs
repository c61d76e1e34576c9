//! `TokenGenerations`: which token generation is current for each user; tokens of an older one were signed out.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use cordon_core::{Store, StoreError, UserId};

/// What a signature-valid token is worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenStanding {
    Current,
    /// Issued before the user's last sign-out.
    SignedOut,
    /// Its user does not exist (any more).
    UnknownUser,
}

/// The store holds each user's generation; this cache keeps the check off the
/// store on every request. It is filled on first sight of a user and updated
/// by sign-out, so it is exact for a single server process. With several
/// instances a sign-out elsewhere arrives through the broker, and entries
/// older than `max_age` are read again, so a lost announcement costs at most
/// that long; a token newer than the cache (issued elsewhere after a
/// sign-out) is checked against the store at once.
#[derive(Default)]
pub struct TokenGenerations {
    current: Mutex<HashMap<UserId, (u32, Instant)>>,
    max_age: Option<Duration>,
}

impl TokenGenerations {
    /// A cache whose entries are read again from the store after `max_age`.
    pub fn expiring(max_age: Duration) -> Self {
        Self {
            current: Mutex::default(),
            max_age: Some(max_age),
        }
    }

    /// Whether a token of `generation` is still good: the user exists and has
    /// not signed out since it was issued.
    pub async fn check(
        &self,
        store: &dyn Store,
        user_id: &UserId,
        generation: u32,
    ) -> Result<TokenStanding, StoreError> {
        let current = match self.fresh(user_id) {
            Some(current) if generation <= current => current,
            _ => match store.get_user(user_id).await? {
                Some(user) => self.record(user_id, user.token_generation),
                None => return Ok(TokenStanding::UnknownUser),
            },
        };
        Ok(if generation == current {
            TokenStanding::Current
        } else {
            TokenStanding::SignedOut
        })
    }

    /// The cached generation, if the user was seen since start-up.
    pub fn current(&self, user_id: &UserId) -> Option<u32> {
        self.lock().get(user_id).map(|(generation, _)| *generation)
    }

    /// The cached generation unless it is older than `max_age`.
    fn fresh(&self, user_id: &UserId) -> Option<u32> {
        let current = self.lock();
        let (generation, read_at) = current.get(user_id)?;
        match self.max_age {
            Some(max_age) if read_at.elapsed() > max_age => None,
            _ => Some(*generation),
        }
    }

    /// Records a generation read or set in the store; a newer one always wins,
    /// so a slow read racing a sign-out cannot bring an old generation back.
    /// Returns the generation now current.
    pub fn record(&self, user_id: &UserId, generation: u32) -> u32 {
        let mut current = self.lock();
        let entry = current
            .entry(user_id.clone())
            .or_insert((generation, Instant::now()));
        *entry = (entry.0.max(generation), Instant::now());
        entry.0
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<UserId, (u32, Instant)>> {
        self.current.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newer_generation_is_never_replaced_by_an_older_one() {
        let generations = TokenGenerations::default();
        let alice = UserId::generate();
        assert_eq!(generations.current(&alice), None);
        assert_eq!(generations.record(&alice, 2), 2);
        assert_eq!(generations.record(&alice, 1), 2, "a stale read loses");
        assert_eq!(generations.record(&alice, 3), 3);
        assert_eq!(generations.current(&UserId::generate()), None);
    }
}
