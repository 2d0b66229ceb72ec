//! [`RateLimiter`]: named quotas checked against a namespace, with compare-and-swap.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kv_core::{
    unix_secs, Bytes, KvError, Namespace, NewEntry, PutOutcome, SharedClock, Version, WriteMode,
};
use smallvec::SmallVec;

use super::gcra::{self, Decision, Nanos};
use super::key::MAX_KEY_BYTES;
use super::quota::Quota;
use super::stripe::StripeLock;
use crate::shared::timeout::bounded;

/// Longest quota name, in bytes.
pub const MAX_QUOTA_NAME_BYTES: usize = 64;

/// Most quotas one limiter may have.
pub const MAX_QUOTAS: usize = 64;

/// How many times a check writes before giving up on a key that other processes keep
/// changing under it (see [`RateLimiterBuilder::with_max_attempts`]).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 64;

/// Now [`DEFAULT_STORE_TIMEOUT`](crate::DEFAULT_STORE_TIMEOUT), the one default of every layer.
#[deprecated(note = "use `kv_middleware::DEFAULT_STORE_TIMEOUT`")]
#[doc(hidden)]
pub const DEFAULT_TIMEOUT: Duration = crate::DEFAULT_STORE_TIMEOUT;

/// How many keys a limiter remembers the stored state of, by default.
pub const DEFAULT_CACHE_CAPACITY: usize = 131_072;

const STRIPES: usize = 256;

/// A quota with the name it is advertised and stored under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedQuota {
    name: Arc<str>,
    quota: Quota,
}

impl NamedQuota {
    /// The name (`RateLimit-Policy: "name";...`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The quota.
    pub fn quota(&self) -> &Quota {
        &self.quota
    }
}

/// A limiter that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RateLimitConfigError {
    /// No quota was given.
    #[error("a rate limiter needs at least one quota")]
    NoQuotas,
    /// A quota name that cannot be used.
    #[error("invalid quota name {name:?}: {reason}")]
    InvalidQuotaName {
        /// The name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Two quotas have the same name.
    #[error("two quotas are named {0:?}")]
    DuplicateQuotaName(String),
    /// More than [`MAX_QUOTAS`] quotas.
    #[error("a rate limiter may have at most 64 quotas, not {0}")]
    TooManyQuotas(usize),
    /// The store cannot compare-and-swap atomically, and approximate limits were not asked for.
    #[error(
        "the {backend} store cannot compare-and-swap atomically, so concurrent requests from \
         several processes could all be admitted from the same state; use a store that can \
         (memory, file, Redis, a kv-server) or opt into approximate limits with \
         RateLimiterBuilder::with_approximate()"
    )]
    NotAtomic {
        /// The store's kind.
        backend: &'static str,
    },
    /// `max_attempts` was zero.
    #[error("a rate limiter must be allowed at least one write attempt per check")]
    ZeroAttempts,
}

/// A check that could not be decided.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RateLimitError {
    /// The key is empty or longer than 256 bytes.
    #[error("rate-limit key of {len} bytes is empty or longer than 256 bytes")]
    InvalidKey {
        /// The key's length in bytes.
        len: usize,
    },
    /// The store failed.
    #[error("rate-limit store error: {0}")]
    Store(#[from] KvError),
    /// The check took longer than the limiter's timeout.
    #[error("rate-limit check timed out after {0:?}")]
    Timeout(Duration),
    /// Other writers changed the key's state before every one of this check's attempts; the
    /// request was not admitted.
    #[error("rate-limit state of the key kept changing under {attempts} write attempts")]
    Contention {
        /// How many writes were tried.
        attempts: u32,
    },
}

/// What a check found for one quota.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaOutcome {
    name: Arc<str>,
    quota: Quota,
    decision: Decision,
}

impl QuotaOutcome {
    /// The quota's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The quota.
    pub fn quota(&self) -> &Quota {
        &self.quota
    }

    /// Whether this quota admitted the request (when another quota denied it, nothing was
    /// spent from this one).
    pub fn is_allowed(&self) -> bool {
        self.decision.allowed
    }

    /// Units left after this request (rounded down).
    pub fn remaining(&self) -> u64 {
        self.decision.remaining
    }

    /// How long until the quota is full again if nothing more arrives.
    pub fn reset(&self) -> Duration {
        self.decision.reset
    }

    /// When this quota denied the request: how long until it would admit it; `None` when it
    /// admitted the request, or when the cost is larger than its burst (waiting will not help).
    pub fn retry_after(&self) -> Option<Duration> {
        self.decision.retry_after
    }
}

/// The answer of [`RateLimiter::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    allowed: bool,
    checked_at: Nanos,
    quotas: Few<QuotaOutcome>,
}

/// One item (most limiters have one quota) or several, without a heap allocation for one.
type Few<T> = SmallVec<[T; 1]>;

/// `f(0)`, ... `f(len - 1)`; one without going through an iterator (`collect` into a
/// `SmallVec` reserves and checks per item).
fn few<T>(len: usize, mut f: impl FnMut(usize) -> T) -> Few<T> {
    if len == 1 {
        SmallVec::from_buf([f(0)])
    } else {
        (0..len).map(f).collect()
    }
}

impl Outcome {
    /// Whether the request is admitted (every quota allowed it).
    pub fn is_allowed(&self) -> bool {
        self.allowed
    }

    /// Each quota's view, in the order the quotas were configured.
    pub fn quotas(&self) -> &[QuotaOutcome] {
        &self.quotas
    }

    /// The quotas that denied the request.
    pub fn violated(&self) -> impl Iterator<Item = &QuotaOutcome> {
        self.quotas.iter().filter(|q| !q.is_allowed())
    }

    /// The most restrictive quota: the fewest units left, then the longest reset.
    pub fn binding(&self) -> Option<&QuotaOutcome> {
        self.quotas.iter().min_by(|a, b| {
            a.remaining()
                .cmp(&b.remaining())
                .then(b.reset().cmp(&a.reset()))
        })
    }

    /// Units left under the most restrictive quota.
    pub fn remaining(&self) -> u64 {
        self.binding().map_or(0, QuotaOutcome::remaining)
    }

    /// How long until the most restrictive quota is full again.
    pub fn reset(&self) -> Duration {
        self.binding().map_or(Duration::ZERO, QuotaOutcome::reset)
    }

    /// For a denied request, how long until every violated quota would admit it; `None` when
    /// it was admitted, or when waiting will not help (its cost is larger than a burst).
    pub fn retry_after(&self) -> Option<Duration> {
        if self.allowed {
            return None;
        }
        let mut longest = Duration::ZERO;
        for quota in self.violated() {
            longest = longest.max(quota.retry_after()?);
        }
        Some(longest)
    }

    /// When the check was decided, by the namespace's clock.
    pub fn checked_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.checked_at)
    }
}

/// Counters of a limiter (and of the layers using it), since it was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RateLimitStats {
    /// Checks that admitted the request.
    pub allowed: u64,
    /// Checks that denied it.
    pub denied: u64,
    /// Checks that failed on a store error.
    pub store_errors: u64,
    /// Checks that timed out.
    pub timeouts: u64,
    /// Checks that gave up after losing every write race ([`RateLimitError::Contention`]).
    pub contention: u64,
    /// Conditional writes that found the state changed by another writer (each is retried).
    pub conflicts: u64,
    /// Store reads (a multi-quota read is one).
    pub reads: u64,
    /// Store writes attempted.
    pub writes: u64,
    /// Units given back to a quota because another quota of the same check denied under a
    /// race (see the module docs).
    pub refunds: u64,
    /// Requests a layer let through without a check (allow-list).
    pub bypassed: u64,
    /// Requests a layer found no key in.
    pub missing_keys: u64,
    /// Requests a layer let through because the check failed and the policy is fail-open.
    pub failed_open: u64,
    /// Requests a layer answered 503 because the check failed and the policy is fail-closed.
    pub failed_closed: u64,
}

crate::shared::counters::named_counters! {
    #[derive(Debug)]
    pub(crate) struct Counters, "kv_rate_limit" {
        allowed,
        denied,
        store_errors,
        timeouts,
        contention,
        conflicts,
        reads,
        writes,
        refunds,
        pub(crate) bypassed,
        pub(crate) missing_keys,
        pub(crate) failed_open,
        pub(crate) failed_closed,
    }
}

pub(crate) fn bump(counter: &crate::shared::counters::Counter) {
    counter.bump();
}

impl Counters {
    fn snapshot(&self) -> RateLimitStats {
        let get = |c: &crate::shared::counters::Counter| c.get();
        RateLimitStats {
            allowed: get(&self.allowed),
            denied: get(&self.denied),
            store_errors: get(&self.store_errors),
            timeouts: get(&self.timeouts),
            contention: get(&self.contention),
            conflicts: get(&self.conflicts),
            reads: get(&self.reads),
            writes: get(&self.writes),
            refunds: get(&self.refunds),
            bypassed: get(&self.bypassed),
            missing_keys: get(&self.missing_keys),
            failed_open: get(&self.failed_open),
            failed_closed: get(&self.failed_closed),
        }
    }
}

/// Configures a [`RateLimiter`].
#[derive(Debug, Clone)]
pub struct RateLimiterBuilder {
    namespace: Namespace,
    quotas: Vec<(String, Quota)>,
    approximate: bool,
    max_attempts: u32,
    timeout: Option<Duration>,
    cache_capacity: usize,
}

impl RateLimiterBuilder {
    /// Adds a quota. A request is admitted only when every quota admits it. The name is
    /// advertised in the headers and part of the stored keys, so limiters (and processes) that
    /// use the same name in the same namespace share that quota's state: 1 to 64 ASCII letters,
    /// digits, `_`, `-` or `.`.
    pub fn with_quota(mut self, name: impl Into<String>, quota: Quota) -> Self {
        self.quotas.push((name.into(), quota));
        self
    }

    /// Accepts a store without atomic compare-and-swap. Checks then read and overwrite the
    /// state; they stay exact among the requests of one process (which this limiter
    /// serializes per key), but concurrent requests in different processes may each be
    /// admitted from the same state, so the limit can be exceeded by up to one burst per
    /// process.
    pub fn with_approximate(mut self) -> Self {
        self.approximate = true;
        self
    }

    /// How many conditional writes a check tries before giving up on a key that other
    /// processes keep changing under it (default 64). Each lost race means another request was
    /// admitted, so without time passing a check loses at most a burst's worth of races; a
    /// check that gives up does not admit its request ([`RateLimitError::Contention`]). The
    /// store timeout bounds the retries too.
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// How long a check may wait on the store, all its round trips together (default
    /// [`DEFAULT_STORE_TIMEOUT`](crate::DEFAULT_STORE_TIMEOUT), 5 s); past it the check fails with [`RateLimitError::Timeout`].
    /// `None` waits as long as the store takes. A timer is armed only when the store does not
    /// answer at once (needs a tokio runtime with its timer then).
    pub fn with_store_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.timeout = timeout.into();
        self
    }

    /// How many keys the limiter remembers the last stored state and version of (default
    /// 131 072, about 100 bytes each, so at most about 13 MB; 0 turns it off). With the state
    /// at hand an admitted request costs the store one conditional write instead of a read and
    /// a write; a stale memory costs a failed write and a read, never a wrong decision.
    pub fn with_cache_capacity(mut self, keys: usize) -> Self {
        self.cache_capacity = keys;
        self
    }

    /// Renamed [`with_quota`](Self::with_quota).
    #[deprecated(note = "renamed `with_quota`")]
    #[doc(hidden)]
    pub fn quota(self, name: impl Into<String>, quota: Quota) -> Self {
        self.with_quota(name, quota)
    }

    /// Renamed [`with_approximate`](Self::with_approximate).
    #[deprecated(note = "renamed `with_approximate`")]
    #[doc(hidden)]
    pub fn approximate(self) -> Self {
        self.with_approximate()
    }

    /// Renamed [`with_max_attempts`](Self::with_max_attempts).
    #[deprecated(note = "renamed `with_max_attempts`")]
    #[doc(hidden)]
    pub fn max_attempts(self, attempts: u32) -> Self {
        self.with_max_attempts(attempts)
    }

    /// Renamed [`with_store_timeout`](Self::with_store_timeout).
    #[deprecated(note = "renamed `with_store_timeout`")]
    #[doc(hidden)]
    pub fn timeout(self, timeout: Duration) -> Self {
        self.with_store_timeout(timeout)
    }

    /// Now `with_store_timeout(None)`.
    #[deprecated(note = "use `with_store_timeout(None)`")]
    #[doc(hidden)]
    pub fn no_timeout(self) -> Self {
        self.with_store_timeout(None)
    }

    /// Renamed [`with_cache_capacity`](Self::with_cache_capacity).
    #[deprecated(note = "renamed `with_cache_capacity`")]
    #[doc(hidden)]
    pub fn cache_capacity(self, keys: usize) -> Self {
        self.with_cache_capacity(keys)
    }

    /// Builds the limiter.
    pub fn build(self) -> Result<RateLimiter, RateLimitConfigError> {
        if self.quotas.is_empty() {
            return Err(RateLimitConfigError::NoQuotas);
        }
        if self.quotas.len() > MAX_QUOTAS {
            return Err(RateLimitConfigError::TooManyQuotas(self.quotas.len()));
        }
        if self.max_attempts == 0 {
            return Err(RateLimitConfigError::ZeroAttempts);
        }
        let mut quotas: Vec<NamedQuota> = Vec::with_capacity(self.quotas.len());
        for (name, quota) in self.quotas {
            check_quota_name(&name)?;
            if quotas.iter().any(|q| *q.name == *name) {
                return Err(RateLimitConfigError::DuplicateQuotaName(name));
            }
            quotas.push(NamedQuota {
                name: name.into(),
                quota,
            });
        }
        let capabilities = self.namespace.capabilities();
        if !capabilities.atomic_conditional_writes && !self.approximate {
            return Err(RateLimitConfigError::NotAtomic {
                backend: self.namespace.raw().kind(),
            });
        }
        let exact = capabilities.atomic_conditional_writes;
        let per_stripe = self.cache_capacity.div_ceil(STRIPES);
        Ok(RateLimiter {
            inner: Arc::new(Inner {
                clock: self.namespace.clock().clone(),
                min_ttl_secs: self.namespace.limits().min_ttl_secs,
                namespace: self.namespace,
                quotas: quotas.into(),
                exact,
                max_attempts: self.max_attempts,
                timeout: self.timeout,
                per_stripe,
                hasher: foldhash::fast::RandomState::default(),
                stripes: (0..STRIPES).map(|_| StripeLock::default()).collect(),
                counters: Counters::default(),
            }),
        })
    }
}

fn check_quota_name(name: &str) -> Result<(), RateLimitConfigError> {
    let invalid = |reason| RateLimitConfigError::InvalidQuotaName {
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() || name.len() > MAX_QUOTA_NAME_BYTES {
        return Err(invalid("it must be 1 to 64 bytes long"));
    }
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.');
    if !name.bytes().all(allowed) {
        return Err(invalid(
            "only ASCII letters, digits, '_', '-' and '.' may be used",
        ));
    }
    Ok(())
}

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

#[derive(Debug, Default)]
struct Stripe {
    /// Per key, per quota: the last stored TAT and version known, under the key's hash (of
    /// two keys with the same hash, the one remembered last takes the other's place). At most
    /// `per_stripe` keys.
    known: KnownStates,
    /// The store keys of the check under way, one per quota: buffers reused from check to
    /// check.
    keys: Vec<String>,
}

type KnownStates = HashMap<u64, Known, BuildHasherDefault<Premixed>>;

/// A remembered key and its states.
#[derive(Debug)]
struct Known {
    key: Box<str>,
    states: Few<Option<Stored>>,
}

/// The hasher of the stripes' maps, whose keys are [`Inner::key_hash`]es already.
#[derive(Debug, Clone, Copy, Default)]
struct Premixed(u64);

impl Hasher for Premixed {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, hash: u64) {
        self.0 = hash;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A stored state: the TAT (0 when the value was unreadable) and the entry's version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stored {
    tat: Nanos,
    version: Version,
}

/// One quota's state during a check.
#[derive(Debug, Clone, Copy)]
struct Slot {
    stored: Option<Stored>,
    /// Read from the store during this check (not remembered from an earlier one).
    fresh: bool,
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
        let counters = &inner.counters;
        match &result {
            Ok(outcome) if outcome.allowed => bump(&counters.allowed),
            Ok(_) => bump(&counters.denied),
            Err(RateLimitError::Timeout(_)) => bump(&counters.timeouts),
            Err(RateLimitError::Contention { .. }) => bump(&counters.contention),
            Err(RateLimitError::Store(_)) => bump(&counters.store_errors),
            Err(RateLimitError::InvalidKey { .. }) => {}
        }
        result
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

/// One quota's part of a check: its store key, its state and the decision on it.
struct Work<'k> {
    key: &'k str,
    slot: Slot,
    decision: Decision,
}

/// A set of quota indices (at most [`MAX_QUOTAS`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Set(u64);

impl Set {
    fn insert(&mut self, i: usize) {
        self.0 |= 1 << i;
    }

    fn contains(self, i: usize) -> bool {
        self.0 & (1 << i) != 0
    }

    fn is_empty(self) -> bool {
        self.0 == 0
    }

    fn iter(self) -> impl Iterator<Item = usize> {
        (0..64).filter(move |&i| self.contains(i))
    }

    fn only(i: usize) -> Self {
        Set(1 << i)
    }
}

/// Where a commit ended.
enum Commit {
    Done,
    /// A quota denied once its state was re-read after a lost race.
    Denied,
}

/// The stripe of a key's hash: bits the stripe's map does not index by (it takes the low ones
/// and the top seven).
fn stripe_index(hash: u64) -> usize {
    (hash >> 32) as usize % STRIPES
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

    async fn check(&self, key: &str, cost: u32) -> Result<Outcome, RateLimitError> {
        let hash = self.key_hash(key);
        let lock = self.stripe(hash);
        // Uncontended (the common case) without the acquire future.
        let mut guard = match lock.try_lock() {
            Some(guard) => guard,
            None => lock.lock().await,
        };
        let Stripe {
            known: remembered,
            keys,
        } = &mut *guard;
        let now = gcra::to_nanos(self.clock.now());

        // The store keys, in the stripe's buffers (no allocation once they are long enough,
        // no copy of them in the check's state).
        keys.resize_with(self.quotas.len(), String::new);
        for (out, q) in keys.iter_mut().zip(self.quotas.iter()) {
            store_key(out, &q.name, key);
        }
        // The state: remembered, else read (all missing quotas in one read). The remembered
        // entry is looked up once, and updated in place at the end.
        let known = remembered
            .get_mut(&hash)
            .filter(|k| *k.key == *key)
            .map(|k| &mut k.states);
        let mut work: Few<Work<'_>> = (0..keys.len())
            .map(|i| Work {
                key: &keys[i],
                slot: Slot {
                    stored: known.as_ref().and_then(|k| k.get(i).copied().flatten()),
                    fresh: false,
                },
                decision: Decision::default(),
            })
            .collect();
        let mut unknown = Set::default();
        for (i, w) in work.iter().enumerate() {
            if w.slot.stored.is_none() {
                unknown.insert(i);
            }
        }
        self.refresh(&mut work, unknown).await?;

        self.decide_all(&mut work, now, cost, Set(u64::MAX));
        // A denial on remembered state is confirmed against the store: the state may have
        // been reset, or given back, since.
        let mut stale = Set::default();
        for (i, w) in work.iter().enumerate() {
            if !w.decision.allowed && !w.slot.fresh {
                stale.insert(i);
            }
        }
        if !stale.is_empty() {
            self.refresh(&mut work, stale).await?;
            self.decide_all(&mut work, now, cost, stale);
        }

        let allowed = work.iter().all(|w| w.decision.allowed);
        if allowed && cost > 0 {
            let mut written = Set::default();
            match self.commit(&mut work, now, cost, &mut written).await {
                Ok(Commit::Done) => {}
                Ok(Commit::Denied) => {
                    // Boxed: a rare path, kept out of the size of every check.
                    Box::pin(self.refund(&mut work, written, now, cost)).await;
                    match known {
                        Some(slots) => update_known(slots, &work),
                        None => self.remember(remembered, hash, key, &work, now),
                    }
                    return Ok(self.outcome(false, now, &work));
                }
                Err(error) => {
                    // Boxed: a rare path, kept out of the size of every check.
                    Box::pin(self.refund(&mut work, written, now, cost)).await;
                    if known.is_some() {
                        remembered.remove(&hash);
                    }
                    return Err(error);
                }
            }
        }
        match known {
            Some(slots) => update_known(slots, &work),
            None => self.remember(remembered, hash, key, &work, now),
        }
        Ok(self.outcome(allowed, now, &work))
    }

    /// Decides the quotas in `which` on their current state.
    fn decide_all(&self, work: &mut [Work<'_>], now: Nanos, cost: u32, which: Set) {
        for (i, (q, w)) in self.quotas.iter().zip(work).enumerate() {
            if which.contains(i) {
                w.decision = gcra::decide(w.slot.stored.map(|s| s.tat), now, &q.quota, cost);
            }
        }
    }

    /// Writes every quota's new TAT, re-reading and re-deciding one whose write lost a race.
    /// `written` collects the quotas spent so far, for a refund when a later one denies.
    async fn commit(
        &self,
        work: &mut [Work<'_>],
        now: Nanos,
        cost: u32,
        written: &mut Set,
    ) -> Result<Commit, RateLimitError> {
        let mut attempts = 0;
        for i in 0..work.len() {
            loop {
                if !work[i].decision.allowed {
                    return Ok(Commit::Denied);
                }
                attempts += 1;
                let tat = work[i].decision.tat;
                let w = &work[i];
                match self.write(w.key, w.slot.stored, tat, now).await? {
                    PutOutcome::Written(version) => {
                        work[i].slot = Slot {
                            stored: Some(Stored { tat, version }),
                            fresh: true,
                        };
                        written.insert(i);
                        break;
                    }
                    PutOutcome::ConditionFailed => {
                        bump(&self.counters.conflicts);
                        if attempts >= self.max_attempts {
                            return Err(RateLimitError::Contention { attempts });
                        }
                        self.refresh(work, Set::only(i)).await?;
                        self.decide_all(work, now, cost, Set::only(i));
                    }
                }
            }
        }
        Ok(Commit::Done)
    }

    /// Gives back `cost` units to each written quota (after a later quota denied, or failed).
    /// Best effort: a refund that keeps losing races, or fails, is logged and dropped; the
    /// error is on the strict side (a unit spent that was not used).
    async fn refund(&self, work: &mut [Work<'_>], written: Set, now: Nanos, cost: u32) {
        for i in written.iter() {
            let amount = self.quotas[i]
                .quota
                .interval_nanos()
                .saturating_mul(u64::from(cost));
            let mut refunded = false;
            for _ in 0..self.max_attempts {
                let Some(current) = work[i].slot.stored else {
                    refunded = true; // gone: nothing to give back
                    break;
                };
                let tat = current.tat.saturating_sub(amount).max(now.min(current.tat));
                match self.write(work[i].key, Some(current), tat, now).await {
                    Ok(PutOutcome::Written(version)) => {
                        work[i].slot.stored = Some(Stored { tat, version });
                        refunded = true;
                        break;
                    }
                    Ok(PutOutcome::ConditionFailed) => {
                        if self.refresh(work, Set::only(i)).await.is_err() {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
            if refunded {
                bump(&self.counters.refunds);
            } else {
                tracing::warn!(
                    key = %super::key::loggable(work[i].key),
                    "rate limit: could not give back a unit spent by a denied request"
                );
            }
        }
    }

    /// Reads the quotas in `which` from the store (one round trip).
    async fn refresh(&self, work: &mut [Work<'_>], which: Set) -> Result<(), RateLimitError> {
        if which.is_empty() {
            return Ok(());
        }
        bump(&self.counters.reads);
        if which.0.is_power_of_two() {
            let i = which.0.trailing_zeros() as usize;
            let w = &mut work[i];
            let entry = self.namespace.get_entry(w.key).await?;
            w.slot = Slot {
                stored: entry.map(|e| parse_entry(w.key, &e.value, e.version)),
                fresh: true,
            };
            return Ok(());
        }
        let wanted: Vec<&str> = which.iter().map(|i| work[i].key).collect();
        let entries = self.namespace.get_many(&wanted).await?;
        for (i, entry) in which.iter().zip(entries) {
            let w = &mut work[i];
            w.slot = Slot {
                stored: entry.map(|e| parse_entry(w.key, &e.value, e.version)),
                fresh: true,
            };
        }
        Ok(())
    }

    /// Writes `tat` over the state `expected` (by version; only-if-absent when `None`), or
    /// unconditionally when approximate. The entry lives as long as the state matters, and at
    /// least the store's minimum TTL.
    async fn write(
        &self,
        key: &str,
        expected: Option<Stored>,
        tat: Nanos,
        now: Nanos,
    ) -> Result<PutOutcome, RateLimitError> {
        bump(&self.counters.writes);
        let mode = match (self.exact, expected) {
            (false, _) => WriteMode::Overwrite,
            (true, Some(stored)) => WriteMode::OnlyIfVersion(stored.version),
            (true, None) => WriteMode::OnlyIfAbsent,
        };
        // The TTL counts from the store's whole second, so one more second covers the part
        // of the current second already gone.
        let matters = gcra::ceil_secs(Duration::from_nanos(tat.saturating_sub(now)));
        let ttl = matters.saturating_add(1).max(self.min_ttl_secs);
        // What `Namespace::put_with` would check and build, without its layer of future
        // (this runs for every admitted request): the key and value limits; the TTL, never
        // under the store's minimum, counted from the clock now (as the namespace would: a
        // remote store refuses a TTL under its minimum, so it must not start earlier); a
        // conditional mode only when the store has atomic writes (checked when the limiter
        // was built).
        let limits = self.namespace.limits();
        limits.check_key(key).map_err(KvError::from)?;
        let value = Bytes::copy_from_slice(itoa::Buffer::new().format(tat).as_bytes());
        limits
            .check_value(key, value.len())
            .map_err(KvError::from)?;
        let entry = NewEntry {
            value,
            metadata: None,
            expiration: Some(unix_secs(self.clock.now()).saturating_add(ttl)),
        };
        Ok(self.namespace.raw().put(key, entry, mode).await?)
    }

    /// Remembers the states of a key not remembered yet.
    fn remember(
        &self,
        known: &mut KnownStates,
        hash: u64,
        key: &str,
        work: &[Work<'_>],
        now: Nanos,
    ) {
        if self.per_stripe == 0 {
            return;
        }
        if work.iter().all(|w| w.slot.stored.is_none()) {
            return;
        }
        if known.len() >= self.per_stripe {
            // Drop keys whose state no longer matters, else any few: an eighth of the stripe,
            // so that a full stripe whose states all matter is not scanned on every new key.
            known.retain(|_, k| k.states.iter().flatten().any(|s| s.tat > now));
            if known.len() >= self.per_stripe {
                let mut excess = known.len() + 1 - (self.per_stripe - self.per_stripe / 8);
                known.retain(|_, _| {
                    let keep = excess == 0;
                    excess = excess.saturating_sub(1);
                    keep
                });
            }
        }
        let states = few(work.len(), |i| work[i].slot.stored);
        known.insert(
            hash,
            Known {
                key: key.into(),
                states,
            },
        );
    }

    /// The outcome of a check. For a denied request, the quotas that would have admitted it
    /// report their state as it stands (nothing was spent from them).
    fn outcome(&self, allowed: bool, now: Nanos, work: &[Work<'_>]) -> Outcome {
        let quotas = (0..work.len())
            .map(|i| {
                let (q, w) = (&self.quotas[i], &work[i]);
                let mut decision = w.decision;
                if !allowed && decision.allowed {
                    let standing = gcra::decide(w.slot.stored.map(|s| s.tat), now, &q.quota, 0);
                    decision.remaining = standing.remaining;
                    decision.reset = standing.reset;
                    decision.tat = standing.tat;
                }
                QuotaOutcome {
                    name: q.name.clone(),
                    quota: q.quota,
                    decision,
                }
            })
            .collect();
        Outcome {
            allowed,
            checked_at: now,
            quotas,
        }
    }
}

/// Updates the remembered states of a key.
fn update_known(known: &mut [Option<Stored>], work: &[Work<'_>]) {
    for (known, w) in known.iter_mut().zip(work) {
        *known = w.slot.stored;
    }
}

fn parse_entry(key: &str, value: &[u8], version: Version) -> Stored {
    let tat = std::str::from_utf8(value)
        .ok()
        .and_then(|text| text.parse::<Nanos>().ok());
    match tat {
        Some(tat) => Stored { tat, version },
        None => {
            tracing::warn!(
                key = %super::key::loggable(key),
                "rate limit: unreadable state, treating it as a full quota"
            );
            Stored { tat: 0, version }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_names() {
        assert!(check_quota_name("api").is_ok());
        assert!(check_quota_name("login-v2.strict_1").is_ok());
        for bad in [
            "",
            "has space",
            "quote\"",
            "semi;colon",
            "colon:",
            &"n".repeat(65),
        ] {
            assert!(check_quota_name(bad).is_err(), "{bad:?}");
        }
    }

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

    #[test]
    fn unreadable_values_count_as_a_full_quota() {
        let v = Version::from_raw(7);
        assert_eq!(
            parse_entry("k", b"123", v),
            Stored {
                tat: 123,
                version: v
            }
        );
        assert_eq!(parse_entry("k", b"x", v), Stored { tat: 0, version: v });
        assert_eq!(parse_entry("k", &[0xff], v), Stored { tat: 0, version: v });
    }
}
