//! The limiter's configuration: [`RateLimiterBuilder`], its defaults and limits, and the
//! errors of a configuration that cannot be built.

use std::sync::Arc;
use std::time::Duration;

use kv_core::Namespace;

use super::memory::STRIPES;
use super::stats::Counters;
use super::{Inner, RateLimiter};
use crate::rate_limit::quota::Quota;
use crate::rate_limit::stripe::StripeLock;

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

/// A quota with the name it is advertised and stored under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedQuota {
    pub(super) name: Arc<str>,
    pub(super) quota: Quota,
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

/// Configures a [`RateLimiter`].
#[derive(Debug, Clone)]
pub struct RateLimiterBuilder {
    pub(super) namespace: Namespace,
    pub(super) quotas: Vec<(String, Quota)>,
    pub(super) approximate: bool,
    pub(super) max_attempts: u32,
    pub(super) timeout: Option<Duration>,
    pub(super) cache_capacity: usize,
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
    /// check that gives up does not admit its request ([`RateLimitError::Contention`](super::RateLimitError::Contention)). The
    /// store timeout bounds the retries too.
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// How long a check may wait on the store, all its round trips together (default
    /// [`DEFAULT_STORE_TIMEOUT`](crate::DEFAULT_STORE_TIMEOUT), 5 s); past it the check fails with [`RateLimitError::Timeout`](super::RateLimitError::Timeout).
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
}
