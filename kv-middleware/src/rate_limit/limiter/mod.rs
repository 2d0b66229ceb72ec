//! [`RateLimiter`]: named quotas checked against a namespace, with compare-and-swap.
//!
//! The module's parts: the limiter's configuration and its checks ([`RateLimiterBuilder`],
//! `builder`), what a check answers (`outcome`), the counters (`stats`), the per-process
//! memory of keys' stored states and the striped lock it lives under (`memory`), and the check
//! itself: read, decide, conditional write, retry (`check`), and its form without a future
//! for stores that answer at once (`at_once`).

mod at_once;
mod builder;
mod check;
mod memory;
mod outcome;
mod stats;

use std::fmt;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Duration;

use kv_core::{Namespace, SharedClock};

use self::memory::{stripe_index, Stripe};
use super::key::MAX_KEY_BYTES;
use super::quota::Quota;
use super::stripe::StripeLock;
use crate::shared::timeout::bounded;

#[allow(deprecated)]
pub use self::builder::DEFAULT_TIMEOUT;
pub use self::builder::{
    NamedQuota, RateLimitConfigError, RateLimiterBuilder, DEFAULT_CACHE_CAPACITY,
    DEFAULT_MAX_ATTEMPTS, MAX_QUOTAS, MAX_QUOTA_NAME_BYTES,
};
pub use self::outcome::{Outcome, QuotaOutcome, RateLimitError};
pub use self::stats::RateLimitStats;
pub(crate) use self::stats::{bump, Counters};

/// Exact rate limits over a namespace, for any code (the layer uses one too).
///
/// Each key's state under each quota is one entry, `{quota name}:{key}`, holding the key's
/// GCRA theoretical arrival time as decimal nanoseconds since the Unix epoch. It is updated by
/// compare-and-swap, so any number of limiters and processes sharing the namespace enforce one
/// limit; it expires once it no longer matters (at least after the store's minimum TTL).
/// Cheap to clone; clones share everything.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use kv_middleware::rate_limit::RateLimiter;
///
/// let store = kv_backends::open("memory:").await?;
/// let limiter = RateLimiter::builder(store.namespace("RATE_LIMITS").await?)
///     .with_quota("exports", "2/h".parse()?)
///     .build()?;
///
/// assert!(limiter.check("tenant:7", 1).await?.is_allowed());
/// let second = limiter.check("tenant:7", 1).await?;
/// assert_eq!((second.is_allowed(), second.remaining()), (true, 0));
/// let third = limiter.check("tenant:7", 1).await?;
/// assert!(!third.is_allowed());
/// // The next unit comes half an hour after the first (less the time these checks took).
/// let wait = third.retry_after().expect("a wait");
/// assert!(wait <= std::time::Duration::from_secs(1800) && wait.as_secs() >= 1790);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RateLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    namespace: Namespace,
    clock: SharedClock,
    min_ttl_secs: u64,
    quotas: Arc<[NamedQuota]>,
    /// Conditional writes (false: approximate, overwriting).
    exact: bool,
    max_attempts: u32,
    timeout: Option<Duration>,
    per_stripe: usize,
    /// Keys' hashes, seeded at random per limiter ([`Inner::key_hash`]).
    hasher: foldhash::fast::RandomState,
    /// Checks of one key run one at a time in this process, under the key's stripe, which
    /// also holds the remembered states of the stripe's keys.
    stripes: Box<[StripeLock<Stripe>]>,
    counters: Counters,
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("namespace", &self.inner.namespace.id())
            .field("quotas", &self.inner.quotas)
            .field("exact", &self.inner.exact)
            .field("max_attempts", &self.inner.max_attempts)
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// Configures a limiter over `namespace` (add quotas, then [`build`](RateLimiterBuilder::build)).
    pub fn builder(namespace: Namespace) -> RateLimiterBuilder {
        RateLimiterBuilder {
            namespace,
            quotas: Vec::new(),
            approximate: false,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            timeout: Some(crate::DEFAULT_STORE_TIMEOUT),
            cache_capacity: DEFAULT_CACHE_CAPACITY,
        }
    }

    /// A limiter with one quota and the defaults.
    pub fn new(
        namespace: Namespace,
        name: impl Into<String>,
        quota: Quota,
    ) -> Result<Self, RateLimitConfigError> {
        Self::builder(namespace).with_quota(name, quota).build()
    }

    /// The quotas, in the order they were added.
    pub fn quotas(&self) -> &[NamedQuota] {
        &self.inner.quotas
    }

    /// The namespace the state lives in.
    pub fn namespace(&self) -> &Namespace {
        &self.inner.namespace
    }

    /// Whether checks use compare-and-swap (false when built [`approximate`](RateLimiterBuilder::approximate)
    /// over a store without it).
    pub fn is_exact(&self) -> bool {
        self.inner.exact
    }

    /// The counters so far.
    pub fn stats(&self) -> RateLimitStats {
        self.inner.counters.snapshot()
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.inner.counters
    }

    /// Spends `cost` units of every quota for `key`, if every quota has them; otherwise spends
    /// nothing. A cost of 0 only reports the state.
    ///
    /// The key is any text of 1 to 256 bytes (`user:42`, `ip:192.0.2.1`). Time is the
    /// namespace's clock. Store errors, a timeout and persistent write conflicts are errors,
    /// never admissions.
    pub async fn check(&self, key: &str, cost: u32) -> Result<Outcome, RateLimitError> {
        if key.is_empty() || key.len() > MAX_KEY_BYTES {
            return Err(RateLimitError::InvalidKey { len: key.len() });
        }
        let inner = &self.inner;
        let result = match bounded(inner.timeout, inner.check(key, cost)).await {
            Some(result) => result,
            None => Err(RateLimitError::Timeout(inner.timeout.unwrap_or_default())),
        };
        self.count(&result);
        result
    }

    /// [`check`](Self::check) without a future, when the store answers at once and the case is
    /// the common one (a remembered key, one quota, admitted); `None` leaves the request to
    /// `check`, with nothing spent.
    pub(crate) fn check_at_once(
        &self,
        key: &str,
        cost: u32,
    ) -> Option<Result<Outcome, RateLimitError>> {
        if key.is_empty() || key.len() > MAX_KEY_BYTES {
            return None;
        }
        let result = self.inner.check_at_once(key, cost)?;
        self.count(&result);
        Some(result)
    }

    /// Counts a check's result.
    fn count(&self, result: &Result<Outcome, RateLimitError>) {
        let counters = &self.inner.counters;
        match result {
            Ok(outcome) if outcome.allowed => bump(&counters.allowed),
            Ok(_) => bump(&counters.denied),
            Err(RateLimitError::Timeout(_)) => bump(&counters.timeouts),
            Err(RateLimitError::Contention { .. }) => bump(&counters.contention),
            Err(RateLimitError::Store(_)) => bump(&counters.store_errors),
            Err(RateLimitError::InvalidKey { .. }) => {}
        }
    }

    /// Forgets `key`'s state under every quota: its next request sees full quotas.
    pub async fn reset(&self, key: &str) -> Result<(), RateLimitError> {
        if key.is_empty() || key.len() > MAX_KEY_BYTES {
            return Err(RateLimitError::InvalidKey { len: key.len() });
        }
        let inner = &self.inner;
        let hash = inner.key_hash(key);
        let mut stripe = inner.stripe(hash).lock().await;
        if stripe.known.get(&hash).is_some_and(|k| *k.key == *key) {
            stripe.known.remove(&hash);
        }
        for quota in inner.quotas.iter() {
            let mut store_key = String::new();
            self::store_key(&mut store_key, &quota.name, key);
            inner.namespace.delete(&store_key).await?;
        }
        Ok(())
    }
}

/// Writes the store key of `key` under `quota`, `{quota}:{key}`, into `out`.
fn store_key(out: &mut String, quota: &str, key: &str) {
    out.clear();
    out.reserve(quota.len() + 1 + key.len());
    out.push_str(quota);
    out.push(':');
    out.push_str(key);
}
impl Inner {
    /// The hash of a key: foldhash, seeded at random when the limiter is built. It picks the
    /// key's stripe and indexes the stripe's memory of states, so a check hashes its key once.
    /// Keys are chosen by clients; with a seed they cannot know, they cannot choose keys that
    /// pile onto one stripe (whose lock they would share, and whose bounded memory they would
    /// crowd).
    fn key_hash(&self, key: &str) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The stripe of a key's hash ([`Inner::key_hash`]).
    fn stripe(&self, hash: u64) -> &StripeLock<Stripe> {
        &self.stripes[stripe_index(hash)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys a client found to share one stripe of a limiter (by timing, say) share none in
    /// particular in another limiter, or in the same one after a restart: the stripe hash is
    /// seeded at random.
    #[tokio::test]
    async fn clients_cannot_choose_keys_that_pile_onto_one_stripe() {
        let store = kv_backends::open("memory:").await.unwrap();
        let namespace = store.namespace("RATE_LIMITS").await.unwrap();
        let build = || RateLimiter::new(namespace.clone(), "api", "10/s".parse().unwrap());
        let (first, second) = (build().unwrap(), build().unwrap());
        let stripe = |limiter: &RateLimiter, key: &str| stripe_index(limiter.inner.key_hash(key));
        let target = stripe(&first, "ip:0");
        let piled: Vec<String> = (0u32..)
            .map(|i| format!("ip:10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255))
            .filter(|key| stripe(&first, key) == target)
            .take(64)
            .collect();
        assert!(piled.iter().all(|key| stripe(&first, key) == target));
        let spread: std::collections::HashSet<usize> =
            piled.iter().map(|key| stripe(&second, key)).collect();
        // 64 keys over 256 stripes at random land on about 57 distinct ones.
        assert!(spread.len() >= 40, "{} stripes", spread.len());
    }
}
