//! A distributed lock (a lease) built on compare-and-swap, with fencing tokens.
//!
//! [`DistributedLock`] lets processes (or tasks) sharing one store take turns on a named
//! *resource*. Whoever holds the lock gets a [`LockGuard`] carrying a [`FencingToken`]; the lock
//! is a lease that ends by itself after its TTL, so a holder that crashes never blocks the
//! others for longer than that.
//!
//! ```
//! # async fn example(store: kv_core::Store) -> Result<(), kv_core::lock::LockError> {
//! use kv_core::lock::DistributedLock;
//! use std::time::Duration;
//!
//! let locks = DistributedLock::new(store.namespace("LOCKS").await?)?
//!     .ttl(Duration::from_secs(10))
//!     .acquire_timeout(Duration::from_secs(5));
//!
//! // Explicitly: acquire (waiting up to 5 s), work, release.
//! let guard = locks.acquire("invoice:42").await?;
//! println!("fencing token {}", guard.token());
//! guard.release().await?;
//!
//! // Or scoped: released when the closure ends, also when it fails; the lease is renewed
//! // while the closure runs.
//! let total = locks
//!     .with_lock("invoice:42", |token| async move {
//!         // ... pass `token` along with every write to the protected resource ...
//!         Ok::<_, kv_core::lock::LockError>(token.get() * 10)
//!     })
//!     .await?;
//! # let _ = total;
//! # Ok(()) }
//! ```
//!
//! # How it works
//!
//! Each resource has one record under the key `lock:{resource}`, a small JSON document with the
//! holder's id, the last fencing token handed out, the lease's end (milliseconds since the Unix
//! epoch, by the store's [`Clock`](crate::Clock)) and whether it is held:
//!
//! - **Acquire** reads the record. No record: write token 1 with
//!   [`WriteMode::OnlyIfAbsent`]. A record that is free (released) or whose lease has ended by
//!   the store clock: write the next token with [`WriteMode::OnlyIfVersion`] on the version
//!   just read. A record that is held and live: not acquired. If the conditional write loses a
//!   race, someone else acquired first and this attempt reports "not acquired".
//! - **Release** and **extend** are conditional writes on the version the guard holds: they
//!   succeed exactly when nobody else has written the record since, which is also the proof
//!   that nobody else acquired the lock in between. Otherwise they report
//!   [`LockError::Lost`], never success.
//! - The record is **never deleted and carries no store TTL**. Release marks it free and keeps
//!   the token, so the next acquisition continues from there. That is what makes fencing
//!   tokens strictly increasing for ever, across releases, lease expiries and crashed holders:
//!   a record that the store expired or deleted would take the last token with it. The cost is
//!   one small record per resource name ever locked. (Deleting a lock record by hand, or
//!   wiping the namespace, restarts its tokens at 1.)
//! - The lease's end is checked against the store's clock, not the store's expiry, so the TTL
//!   is not bound by [`Limits::min_ttl_secs`](crate::Limits::min_ttl_secs) (60 s on Workers
//!   KV): leases of a second work on every backend, and a [`ManualClock`](crate::ManualClock)
//!   drives expiry in tests.
//!
//! # Guarantees and their limits
//!
//! - Only a store with atomic conditional writes can host a lock: [`DistributedLock::new`]
//!   refuses any other with [`KvError::Unsupported`].
//! - Mutual exclusion holds while every holder finishes within its lease. A holder that stalls
//!   past its lease (a GC pause, a lost network) may still be working when the next holder
//!   starts: that is inherent to leases, and what the [`FencingToken`] is for. Pass the token
//!   with every write to the protected resource and have the resource refuse a token lower
//!   than the highest it has seen.
//! - Processes comparing leases must have roughly synchronised clocks: a lease ends when the
//!   acquirer's store clock says so (for the HTTP backend, the client's clock). Keep the TTL
//!   well above the clock skew.
//! - A conditional write that fails with a transient error (for example
//!   [`KvError::Unavailable`] over HTTP) may or may not have happened; an acquisition whose
//!   outcome is unknown ends with its lease.
//! - Waiting ([`DistributedLock::acquire`]) and lease renewal ([`DistributedLock::with_lock`])
//!   use tokio's timer, in real time.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tracing::{debug, debug_span, warn, Instrument};

use crate::backoff::Backoff;
use crate::error::KvError;
use crate::namespace::Namespace;
use crate::types::{PutOptions, PutOutcome, Version, WriteMode};

/// The prefix of every lock record's key: `lock:{resource}`.
pub const KEY_PREFIX: &str = "lock:";

/// A number that strictly increases with every acquisition of one resource.
///
/// Tokens of one resource never repeat, even after a holder crashed or its lease expired. Give
/// the token to whatever the lock protects, and let it reject a write carrying a token lower
/// than one it has already seen: a holder that lost its lease without knowing is then fenced
/// off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FencingToken(u64);

impl FencingToken {
    /// A token with this value (for comparing with a token received elsewhere).
    pub const fn new(value: u64) -> Self {
        FencingToken(value)
    }

    /// The token's value; the first acquisition of a resource gets 1.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for FencingToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Why a lock operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// The store failed (or a limit was violated, for example a resource name too long for a
    /// key).
    #[error(transparent)]
    Store(#[from] KvError),
    /// [`DistributedLock::acquire`] waited for the whole acquire timeout without getting the
    /// lock.
    #[error("timed out after {waited:?} waiting for lock {resource:?}")]
    Timeout {
        /// The resource asked for.
        resource: String,
        /// How long the caller waited.
        waited: Duration,
    },
    /// The guard no longer holds the lock: its lease ended and another holder acquired the
    /// resource (or the record was changed by hand). Nothing was written.
    #[error("lock {resource:?} with fencing token {token} was lost to another holder")]
    Lost {
        /// The resource.
        resource: String,
        /// The token the guard held.
        token: FencingToken,
    },
    /// The resource name cannot be used.
    #[error("invalid lock resource {resource:?}: {reason}")]
    InvalidResource {
        /// The rejected name.
        resource: String,
        /// Why it was rejected.
        reason: &'static str,
    },
}

impl LockError {
    /// Whether this error says the lock was lost.
    pub fn is_lost(&self) -> bool {
        matches!(self, LockError::Lost { .. })
    }
}

/// What a lock record says right now, from [`DistributedLock::inspect`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LockState {
    /// The id of the last holder (see [`DistributedLock::holder_id`]).
    pub holder: String,
    /// The last token handed out.
    pub token: FencingToken,
    /// When the last lease ends (or ended), by the store's clock.
    pub expires_at: SystemTime,
    /// Whether the lock is held now: acquired, not released, and the lease not over.
    pub held: bool,
}

/// The stored record of one resource.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LockRecord {
    holder: String,
    token: u64,
    /// The lease's end, in milliseconds since the Unix epoch by the store clock.
    expires_at_ms: u64,
    held: bool,
}

impl LockRecord {
    fn is_live(&self, now_ms: u64) -> bool {
        self.held && now_ms < self.expires_at_ms
    }
}

#[derive(Debug, Clone)]
struct Settings {
    ttl: Duration,
    acquire_timeout: Duration,
    retry_min: Duration,
    retry_max: Duration,
    holder: Arc<str>,
}

/// A distributed lock over one [`Namespace`]: leases with fencing tokens, on compare-and-swap.
///
/// Cheap to clone; clones share the holder id. See the [module documentation](self) for the
/// design and its guarantees.
///
/// ```
/// # async fn example(namespace: kv_core::Namespace) -> Result<(), kv_core::lock::LockError> {
/// use kv_core::lock::DistributedLock;
///
/// let locks = DistributedLock::new(namespace)?;
/// match locks.try_acquire("nightly-report").await? {
///     Some(guard) => {
///         // ... only one process gets here until the guard is released or its lease ends ...
///         guard.release().await?;
///     }
///     None => println!("another process is producing the report"),
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct DistributedLock {
    namespace: Namespace,
    settings: Settings,
}

impl DistributedLock {
    /// The lease length unless [`ttl`](Self::ttl) says otherwise.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(30);
    /// How long [`acquire`](Self::acquire) waits unless
    /// [`acquire_timeout`](Self::acquire_timeout) says otherwise.
    pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

    /// A lock over `namespace`, with a 30 s lease, a 10 s acquire timeout, retries backing off
    /// from 10 ms to 500 ms, and a random holder id.
    ///
    /// Fails with [`KvError::Unsupported`] when the namespace's store cannot do conditional
    /// writes atomically: a lock there would not exclude anyone.
    pub fn new(namespace: Namespace) -> Result<Self, KvError> {
        if !namespace.capabilities().atomic_conditional_writes {
            return Err(KvError::Unsupported {
                backend: namespace.raw().kind(),
                operation: "a distributed lock (needs atomic compare-and-swap)",
            });
        }
        let holder = format!("{}-{:016x}", std::process::id(), random_u64());
        Ok(DistributedLock {
            namespace,
            settings: Settings {
                ttl: Self::DEFAULT_TTL,
                acquire_timeout: Self::DEFAULT_ACQUIRE_TIMEOUT,
                retry_min: Duration::from_millis(10),
                retry_max: Duration::from_millis(500),
                holder: Arc::from(holder),
            },
        })
    }

    /// The lease length: a holder that neither releases nor extends loses the lock this long
    /// after acquiring it. Whole milliseconds count.
    ///
    /// # Panics
    ///
    /// When `ttl` is shorter than a millisecond.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        assert!(
            ttl >= Duration::from_millis(1),
            "a lock's TTL must be at least 1 ms"
        );
        self.settings.ttl = ttl;
        self
    }

    /// How long [`acquire`](Self::acquire) and [`with_lock`](Self::with_lock) wait for a lock
    /// held by someone else before failing with [`LockError::Timeout`]. Zero tries once.
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.settings.acquire_timeout = timeout;
        self
    }

    /// The pauses between attempts while waiting: starting at `min`, doubling up to `max`,
    /// each randomised between half and all of it so that waiters spread out.
    pub fn retry_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.settings.retry_min = min;
        self.settings.retry_max = max.max(min);
        self
    }

    /// The holder id written into the records this lock acquires, for diagnostics (see
    /// [`inspect`](Self::inspect)). Defaults to the process id and a random suffix. Exclusion
    /// never depends on it: two guards with the same holder id still exclude each other.
    pub fn holder_id(mut self, holder: impl Into<String>) -> Self {
        self.settings.holder = Arc::from(holder.into());
        self
    }

    /// This lock's holder id.
    pub fn holder(&self) -> &str {
        &self.settings.holder
    }

    /// The lease length.
    pub fn lease(&self) -> Duration {
        self.settings.ttl
    }

    /// The namespace holding the lock records.
    pub fn namespace(&self) -> &Namespace {
        &self.namespace
    }

    /// Acquires the lock on `resource` if nobody holds it; `None` when someone does (or won a
    /// race for it just now). Never waits.
    pub async fn try_acquire(&self, resource: &str) -> Result<Option<LockGuard>, LockError> {
        let key = self.key(resource)?;
        let span = debug_span!(
            "kv.lock.try_acquire",
            resource,
            token = tracing::field::Empty
        );
        async {
            let current = self.namespace.get_json_entry::<LockRecord>(&key).await?;
            let now = now_ms(&self.namespace);
            let (previous, mode) = match current {
                None => (0, WriteMode::OnlyIfAbsent),
                Some((record, _)) if record.is_live(now) => {
                    debug!(holder = %record.holder, token = record.token, "lock is held");
                    return Ok(None);
                }
                Some((record, entry)) => (record.token, WriteMode::OnlyIfVersion(entry.version)),
            };
            let token = previous
                .checked_add(1)
                .expect("fewer than 2^64 acquisitions of one resource");
            let expires_at_ms = now.saturating_add(millis(self.settings.ttl));
            let record = LockRecord {
                holder: self.settings.holder.to_string(),
                token,
                expires_at_ms,
                held: true,
            };
            let options = PutOptions::new().mode(mode);
            match self.namespace.put_json_with(&key, &record, options).await? {
                PutOutcome::Written(version) => {
                    tracing::Span::current().record("token", token);
                    debug!("lock acquired");
                    Ok(Some(LockGuard {
                        namespace: self.namespace.clone(),
                        key,
                        resource: resource.to_owned(),
                        holder: self.settings.holder.clone(),
                        token: FencingToken(token),
                        version,
                        expires_at_ms,
                        finished: false,
                    }))
                }
                PutOutcome::ConditionFailed => {
                    debug!("lost the race for the lock");
                    Ok(None)
                }
            }
        }
        .instrument(span)
        .await
    }

    /// Acquires the lock on `resource`, waiting with backoff while someone else holds it, for
    /// at most the [acquire timeout](Self::acquire_timeout); then [`LockError::Timeout`].
    pub async fn acquire(&self, resource: &str) -> Result<LockGuard, LockError> {
        let span = debug_span!(
            "kv.lock.acquire",
            resource,
            attempts = tracing::field::Empty
        );
        async {
            let started = tokio::time::Instant::now();
            let deadline = started + self.settings.acquire_timeout;
            let mut backoff = Backoff::new(self.settings.retry_min, self.settings.retry_max);
            let mut attempts = 0u64;
            loop {
                attempts += 1;
                if let Some(guard) = self.try_acquire(resource).await? {
                    tracing::Span::current().record("attempts", attempts);
                    return Ok(guard);
                }
                let now = tokio::time::Instant::now();
                if now >= deadline {
                    tracing::Span::current().record("attempts", attempts);
                    debug!(waited = ?(now - started), "gave up waiting for the lock");
                    return Err(LockError::Timeout {
                        resource: resource.to_owned(),
                        waited: now - started,
                    });
                }
                tokio::time::sleep(backoff.next_pause().min(deadline - now)).await;
            }
        }
        .instrument(span)
        .await
    }

    /// Runs `work` holding the lock on `resource`, and releases it afterwards, whether `work`
    /// succeeded or failed.
    ///
    /// Acquires as [`acquire`](Self::acquire) does. `work` receives the [`FencingToken`].
    /// While it runs the lease is renewed every third of the TTL, so `work` may take longer
    /// than one lease. If a renewal finds the lock lost (the process stalled past its lease
    /// and someone else acquired), `work` is cancelled (dropped) and the result is
    /// [`LockError::Lost`]; a renewal that fails with a store error is retried at the next
    /// tick. If `work` succeeded but the release finds the lock lost, the result is also
    /// [`LockError::Lost`]: the work ran, but maybe not alone. If `work` failed, its error is
    /// returned and a failed release is only logged.
    ///
    /// ```
    /// # async fn example(locks: kv_core::lock::DistributedLock) -> Result<(), kv_core::lock::LockError> {
    /// use kv_core::lock::LockError;
    ///
    /// #[derive(Debug)]
    /// enum AppError {
    ///     Lock(LockError),
    ///     Invalid,
    /// }
    /// impl From<LockError> for AppError {
    ///     fn from(error: LockError) -> Self {
    ///         AppError::Lock(error)
    ///     }
    /// }
    ///
    /// let outcome = locks
    ///     .with_lock("account:7", |token| async move {
    ///         if token.get() == 0 {
    ///             return Err(AppError::Invalid); // still released
    ///         }
    ///         Ok(token)
    ///     })
    ///     .await;
    /// assert!(outcome.is_ok());
    /// # Ok(()) }
    /// ```
    pub async fn with_lock<F, Fut, T, E>(&self, resource: &str, work: F) -> Result<T, E>
    where
        F: FnOnce(FencingToken) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: From<LockError>,
    {
        let mut guard = self.acquire(resource).await?;
        let span = debug_span!("kv.lock.with_lock", resource, token = guard.token.0);
        let renew_every = (self.settings.ttl / 3).max(Duration::from_millis(1));
        let outcome = async {
            let mut work = std::pin::pin!(work(guard.token));
            loop {
                tokio::select! {
                    outcome = &mut work => break Ok(outcome),
                    () = tokio::time::sleep(renew_every) => {
                        match guard.extend(self.settings.ttl).await {
                            Ok(()) => {}
                            Err(lost @ LockError::Lost { .. }) => {
                                warn!("lock lost while the work ran; cancelling the work");
                                break Err(lost);
                            }
                            Err(error) => warn!(%error, "renewing the lease failed; retrying"),
                        }
                    }
                }
            }
        }
        .instrument(span.clone())
        .await;
        match outcome {
            Err(lost) => Err(lost.into()),
            Ok(Ok(value)) => {
                guard.release().instrument(span).await?;
                Ok(value)
            }
            Ok(Err(error)) => {
                if let Err(release_error) = guard.release().instrument(span).await {
                    warn!(%release_error, "releasing the lock after a failed work failed");
                }
                Err(error)
            }
        }
    }

    /// What the record of `resource` says now: `None` when it was never locked.
    pub async fn inspect(&self, resource: &str) -> Result<Option<LockState>, LockError> {
        let key = self.key(resource)?;
        let Some((record, _)) = self.namespace.get_json_entry::<LockRecord>(&key).await? else {
            return Ok(None);
        };
        let now = now_ms(&self.namespace);
        Ok(Some(LockState {
            held: record.is_live(now),
            token: FencingToken(record.token),
            expires_at: UNIX_EPOCH + Duration::from_millis(record.expires_at_ms),
            holder: record.holder,
        }))
    }

    fn key(&self, resource: &str) -> Result<String, LockError> {
        if resource.is_empty() {
            return Err(LockError::InvalidResource {
                resource: String::new(),
                reason: "must not be empty",
            });
        }
        let key = format!("{KEY_PREFIX}{resource}");
        self.namespace
            .limits()
            .check_key(&key)
            .map_err(KvError::from)?;
        Ok(key)
    }
}

/// Proof of holding a lock: its resource, [`FencingToken`] and lease.
///
/// Release it with [`release`](Self::release) to learn the outcome. A guard dropped without
/// being released starts a best-effort release in the background when a tokio runtime is
/// available (a panic in the critical section frees the lock promptly); otherwise the lock is
/// free when the lease ends.
#[must_use = "a dropped guard releases the lock"]
pub struct LockGuard {
    namespace: Namespace,
    key: String,
    resource: String,
    holder: Arc<str>,
    token: FencingToken,
    version: Version,
    expires_at_ms: u64,
    /// Released, or known lost: nothing left to do on drop.
    finished: bool,
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard")
            .field("resource", &self.resource)
            .field("token", &self.token)
            .field("expires_at_ms", &self.expires_at_ms)
            .finish_non_exhaustive()
    }
}

impl LockGuard {
    /// The locked resource.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// This acquisition's fencing token.
    pub fn token(&self) -> FencingToken {
        self.token
    }

    /// When the lease ends by the store's clock, unless extended.
    pub fn expires_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.expires_at_ms)
    }

    /// Sets the lease to end `ttl` from now (by the store's clock), keeping the token.
    ///
    /// Succeeds exactly when nobody else has acquired the lock since this guard last wrote it,
    /// even if the lease had already ended; otherwise [`LockError::Lost`] and nothing is
    /// written.
    pub async fn extend(&mut self, ttl: Duration) -> Result<(), LockError> {
        let span = debug_span!("kv.lock.extend", resource = %self.resource, token = self.token.0);
        async {
            let expires_at_ms = now_ms(&self.namespace).saturating_add(millis(ttl));
            let version = self.write(expires_at_ms, true).await?;
            self.version = version;
            self.expires_at_ms = expires_at_ms;
            debug!("lease extended");
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// Releases the lock, keeping the token so the next acquisition gets a higher one.
    ///
    /// [`LockError::Lost`] when someone else acquired the lock after this guard's lease ended;
    /// then nothing is written.
    pub async fn release(mut self) -> Result<(), LockError> {
        let span = debug_span!("kv.lock.release", resource = %self.resource, token = self.token.0);
        async {
            // Whatever happens below, the drop has nothing left to do.
            self.finished = true;
            let now = now_ms(&self.namespace);
            self.write(now, false).await?;
            debug!("lock released");
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// Whether this guard still holds the lock: nobody else acquired it since, and the lease
    /// has not ended.
    pub async fn is_held(&self) -> Result<bool, LockError> {
        let Some((record, entry)) = self
            .namespace
            .get_json_entry::<LockRecord>(&self.key)
            .await?
        else {
            return Ok(false);
        };
        Ok(entry.version == self.version && record.is_live(now_ms(&self.namespace)))
    }

    /// Rewrites the record on the version this guard holds.
    async fn write(&mut self, expires_at_ms: u64, held: bool) -> Result<Version, LockError> {
        let record = self.record(expires_at_ms, held);
        let options = PutOptions::new().only_if_version(self.version);
        match self
            .namespace
            .put_json_with(&self.key, &record, options)
            .await?
        {
            PutOutcome::Written(version) => Ok(version),
            PutOutcome::ConditionFailed => {
                self.finished = true;
                debug!("lock was lost");
                Err(LockError::Lost {
                    resource: self.resource.clone(),
                    token: self.token,
                })
            }
        }
    }

    fn record(&self, expires_at_ms: u64, held: bool) -> LockRecord {
        LockRecord {
            holder: self.holder.to_string(),
            token: self.token.0,
            expires_at_ms,
            held,
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            warn!(
                resource = %self.resource,
                token = self.token.0,
                "lock guard dropped outside a tokio runtime; the lock is free when its lease ends"
            );
            return;
        };
        let namespace = self.namespace.clone();
        let key = std::mem::take(&mut self.key);
        let record = self.record(now_ms(&namespace), false);
        let options = PutOptions::new().only_if_version(self.version);
        let span =
            debug_span!("kv.lock.release_on_drop", resource = %self.resource, token = self.token.0);
        runtime.spawn(
            async move {
                match namespace.put_json_with(&key, &record, options).await {
                    Ok(PutOutcome::Written(_)) => debug!("lock released by a dropped guard"),
                    Ok(PutOutcome::ConditionFailed) => debug!("dropped guard had lost the lock"),
                    Err(error) => warn!(%error, "releasing a dropped guard's lock failed"),
                }
            }
            .instrument(span),
        );
    }
}

fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the operating system's random source is available");
    u64::from_le_bytes(bytes)
}

fn millis(duration: Duration) -> u64 {
    duration.as_millis().min(u64::MAX as u128) as u64
}

fn now_ms(namespace: &Namespace) -> u64 {
    namespace
        .clock()
        .now()
        .duration_since(UNIX_EPOCH)
        .map(millis)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_live_only_while_held_and_before_its_end() {
        let record = LockRecord {
            holder: "h".into(),
            token: 3,
            expires_at_ms: 1_000,
            held: true,
        };
        assert!(record.is_live(999));
        assert!(!record.is_live(1_000));
        assert!(!LockRecord {
            held: false,
            ..record
        }
        .is_live(0));
    }

    #[test]
    fn tokens_print_and_serialize_as_numbers() {
        let token = FencingToken::new(42);
        assert_eq!(token.to_string(), "42");
        assert_eq!(serde_json::to_string(&token).unwrap(), "42");
        assert!(FencingToken::new(2) > FencingToken::new(1));
    }
}
