//! What a check answers: the [`Outcome`] and each quota's [`QuotaOutcome`], or a
//! [`RateLimitError`].

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kv_core::KvError;
use smallvec::SmallVec;

use crate::rate_limit::gcra::{Decision, Nanos};
use crate::rate_limit::quota::Quota;

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
    pub(super) name: Arc<str>,
    pub(super) quota: Quota,
    pub(super) decision: Decision,
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

/// The answer of [`RateLimiter::check`](super::RateLimiter::check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub(super) allowed: bool,
    pub(super) checked_at: Nanos,
    pub(super) quotas: Few<QuotaOutcome>,
}

/// One item (most limiters have one quota) or several, without a heap allocation for one.
pub(super) type Few<T> = SmallVec<[T; 1]>;

/// `f(0)`, ... `f(len - 1)`; one without going through an iterator (`collect` into a
/// `SmallVec` reserves and checks per item).
pub(super) fn few<T>(len: usize, mut f: impl FnMut(usize) -> T) -> Few<T> {
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
