//! The one stale-while-revalidate engine both front doors run on: the HTTP
//! [`CacheService`](super::CacheService) and the programmatic [`Cache`](super::Cache).
//!
//! A read goes through the same steps in both, one module each:
//!
//! 1. **lookup** and **store** ([`store`]): every store operation bounded by the store
//!    timeout; a failure is logged, counted and taken as "no store", never the caller's error;
//! 2. **judge** ([`judge`]): the entry's age against its windows, and the key's failure
//!    backoff, decide between serving it (fresh, stale-while-revalidate, stale-if-error while
//!    backing off) and fetching;
//! 3. **coalesce**: callers that must fetch one key join one flight
//!    ([`Engine::flights`]); the first leads, the others wait for its outcome;
//! 4. **fetch** and **refresh** ([`refresh`]): a stale entry starts one background refresh
//!    per key, unless one runs or the key backs off; a finished fetch settles the key's
//!    backoff, counts, and announces a refresh's end.
//!
//! What is fetched, how an entry is encoded and what a caller is answered with stay with each
//! front door; the engine is generic over the outcome a flight publishes.

pub(crate) mod judge;
pub(crate) mod refresh;
pub(crate) mod store;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kv_core::Namespace;

use super::backoff::Backoff;
use super::stats::{Counters, Events};
use crate::shared::singleflight::Flights;

pub(crate) use self::judge::Verdict;
pub(crate) use self::refresh::Settled;

/// The engine's settings: where entries live and how long the store and a failing key may
/// hold things up.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub namespace: Namespace,
    /// The longest one store operation may take (`None`: as long as the store takes).
    pub store_timeout: Option<Duration>,
    /// The first pause after a key's fetch fails (zero: no backoff).
    pub backoff_initial: Duration,
    /// The longest pause, however often the key fails.
    pub backoff_max: Duration,
}

impl Settings {
    /// Settings with the defaults both front doors share: the crate's store timeout and a
    /// backoff from 1 s doubling up to 60 s.
    pub fn new(namespace: Namespace) -> Self {
        Settings {
            namespace,
            store_timeout: Some(crate::DEFAULT_STORE_TIMEOUT),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
        }
    }

    /// Now on the namespace's clock, in Unix milliseconds: every age is judged on it.
    pub fn now_ms(&self) -> u64 {
        unix_ms(self.namespace.clock().now())
    }
}

/// The engine's run-time state, shared by every clone of one cache: flights in progress,
/// backoff per key, counters and the event channel. `O` is what a flight publishes.
#[derive(Debug)]
pub(crate) struct Engine<O> {
    pub flights: Flights<O>,
    pub backoff: Backoff,
    pub counters: Counters,
    pub events: Events,
}

impl<O> Default for Engine<O> {
    fn default() -> Self {
        Engine {
            flights: Flights::default(),
            backoff: Backoff::default(),
            counters: Counters::default(),
            events: Events::default(),
        }
    }
}

impl<O> Engine<O> {
    /// Records a failed fetch of `key` at `now_ms`; returns the pause it now backs off for.
    pub fn backoff_failed(&self, settings: &Settings, key: &str, now_ms: u64) -> Duration {
        self.backoff
            .failed(key, now_ms, settings.backoff_initial, settings.backoff_max)
    }
}

/// `time` in Unix milliseconds (0 before the epoch).
pub(crate) fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis().min(u64::MAX as u128) as u64)
}
