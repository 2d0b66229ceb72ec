//! Failure backoff per key: after the origin (or fetcher) fails for a key, the cache stops
//! asking it for that key for a while and keeps serving stale, doubling the pause on every
//! further failure up to a maximum. A success clears it. Per process; times from the
//! namespace's clock.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Past this many keys, entries whose pause is over are dropped on the next failure.
const PRUNE_ABOVE: usize = 1024;

#[derive(Debug, Default)]
pub(crate) struct Backoff {
    keys: Mutex<HashMap<String, State>>,
}

#[derive(Debug, Clone, Copy)]
struct State {
    failures: u32,
    until_ms: u64,
}

impl Backoff {
    /// Whether the key is paused at `now_ms`.
    pub fn is_paused(&self, key: &str, now_ms: u64) -> bool {
        let keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        keys.get(key).is_some_and(|state| now_ms < state.until_ms)
    }

    /// Records a failure at `now_ms`: the pause starts at `initial` and doubles with every
    /// further failure up to `max`; a zero `initial` turns backoff off. Returns the pause.
    pub fn failed(&self, key: &str, now_ms: u64, initial: Duration, max: Duration) -> Duration {
        if initial.is_zero() {
            return Duration::ZERO;
        }
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        if keys.len() >= PRUNE_ABOVE {
            keys.retain(|_, state| now_ms < state.until_ms);
        }
        let state = keys.entry(key.to_owned()).or_insert(State {
            failures: 0,
            until_ms: 0,
        });
        state.failures = state.failures.saturating_add(1);
        let factor = 1u32 << (state.failures - 1).min(20);
        let pause = initial.saturating_mul(factor).min(max.max(initial));
        state.until_ms = now_ms.saturating_add(pause.as_millis() as u64);
        pause
    }

    /// Records a success: the key is no longer paused.
    pub fn succeeded(&self, key: &str) {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        keys.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_max_and_clears() {
        let (one, five) = (Duration::from_secs(1), Duration::from_secs(5));
        let b = Backoff::default();
        assert!(!b.is_paused("k", 0));
        assert_eq!(b.failed("k", 0, one, five), Duration::from_secs(1));
        assert!(b.is_paused("k", 999));
        assert!(!b.is_paused("k", 1000));
        assert_eq!(b.failed("k", 1000, one, five), Duration::from_secs(2));
        assert_eq!(b.failed("k", 3000, one, five), Duration::from_secs(4));
        assert_eq!(b.failed("k", 7000, one, five), Duration::from_secs(5));
        assert!(!b.is_paused("other", 7000));
        b.succeeded("k");
        assert!(!b.is_paused("k", 7000));
        assert_eq!(b.failed("k", 0, Duration::ZERO, five), Duration::ZERO);
        assert!(
            !b.is_paused("k", 0),
            "a zero initial pause turns backoff off"
        );
    }
}
