//! Time as the store sees it.
//!
//! Every expiry decision asks a [`Clock`], so tests move time with a [`ManualClock`] instead of
//! sleeping, and every backend agrees on what "now" means.

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time.
pub trait Clock: Send + Sync + Debug + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;

    /// The current time in whole seconds since the Unix epoch (rounded down).
    fn unix_secs(&self) -> u64 {
        unix_secs(self.now())
    }
}

/// A clock shared between a backend, its namespaces and the handles over them.
pub type SharedClock = Arc<dyn Clock>;

/// Seconds since the Unix epoch, rounded down; times before the epoch count as 0.
pub fn unix_secs(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Whether an entry with this expiration (seconds since the epoch) is expired at `now`.
///
/// The boundary is inclusive: at exactly the expiration the entry is gone.
pub fn is_expired(expiration: Option<u64>, now: SystemTime) -> bool {
    match expiration {
        Some(at) => unix_secs(now) >= at,
        None => false,
    }
}

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

impl SystemClock {
    /// The system clock as a [`SharedClock`].
    pub fn shared() -> SharedClock {
        Arc::new(SystemClock)
    }
}

/// A clock that only moves when told to; clones share the same time.
///
/// ```
/// use kv_core::{Clock, ManualClock};
/// use std::time::Duration;
///
/// let clock = ManualClock::at_unix_secs(1_700_000_000);
/// clock.advance(Duration::from_secs(90));
/// assert_eq!(clock.unix_secs(), 1_700_000_090);
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    nanos_since_epoch: Arc<AtomicU64>,
}

impl ManualClock {
    /// A manual clock reading `time`.
    pub fn new(time: SystemTime) -> Self {
        let nanos = time
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        ManualClock {
            nanos_since_epoch: Arc::new(AtomicU64::new(nanos)),
        }
    }

    /// A manual clock reading `secs` seconds after the Unix epoch.
    pub fn at_unix_secs(secs: u64) -> Self {
        Self::new(UNIX_EPOCH + Duration::from_secs(secs))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.nanos_since_epoch
            .fetch_add(by.as_nanos() as u64, Ordering::SeqCst);
    }

    /// Sets the clock to `time` (which may be earlier than now).
    pub fn set(&self, time: SystemTime) {
        let nanos = time
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        self.nanos_since_epoch.store(nanos, Ordering::SeqCst);
    }

    /// This clock as a [`SharedClock`] (sharing its time with `self`).
    pub fn shared(&self) -> SharedClock {
        Arc::new(self.clone())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.nanos_since_epoch.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_boundary_is_inclusive() {
        let clock = ManualClock::at_unix_secs(1000);
        assert!(!is_expired(Some(1001), clock.now()));
        clock.advance(Duration::from_millis(999));
        assert!(!is_expired(Some(1001), clock.now()));
        clock.advance(Duration::from_millis(1));
        assert!(is_expired(Some(1001), clock.now()));
        assert!(!is_expired(None, clock.now()));
    }

    #[test]
    fn clones_share_time() {
        let a = ManualClock::at_unix_secs(5);
        let b = a.clone();
        a.advance(Duration::from_secs(5));
        assert_eq!(b.unix_secs(), 10);
        b.set(UNIX_EPOCH + Duration::from_secs(2));
        assert_eq!(a.unix_secs(), 2);
    }
}
