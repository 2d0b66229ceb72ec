//! [`Refreshing`]: a snapshot read without a lock and replaced by refreshes, with what the
//! flag store and the config handle both need around it: single-flight refreshes, the
//! background refresh task, the refresh counters, the time of the last success and the last
//! error.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use kv_core::SharedClock;

use super::counters::Counter;
use super::refresh::{lock, record_refresh_error, spawn_refresh_loop, unix_millis, SingleFlight};

/// What a kind of snapshot tells [`Refreshing`] about itself and its refreshes.
pub(crate) trait Refreshable {
    /// What a successful refresh did.
    type Outcome: Clone;
    /// Why a refresh failed.
    type Error: Clone + fmt::Display;
    /// The subject of log lines: `flags`, `config`.
    const WHAT: &'static str;
    /// Metric names of the counters: refreshes, updates, store errors, rejected (see
    /// [`refresh_counter_names!`](crate::shared::snapshot::refresh_counter_names)).
    const COUNTER_NAMES: [&'static str; 4];

    /// Whether the refresh swapped in a new snapshot.
    fn is_update(outcome: &Self::Outcome) -> bool;
    /// Whether the refresh failed on the store (counted as a store error; anything else is
    /// counted as rejected).
    fn is_store_error(error: &Self::Error) -> bool;
    /// What this snapshot left out although the refresh that built it succeeded (items that
    /// did not validate): reported as the last error, and counted as rejected when new.
    fn problems(&self) -> Option<Self::Error> {
        None
    }
}

/// The four metric names of a [`Refreshable`]'s counters: `{prefix}_refreshes_total`, ...
macro_rules! refresh_counter_names {
    ($prefix:literal) => {
        [
            concat!($prefix, "_refreshes_total"),
            concat!($prefix, "_updates_total"),
            concat!($prefix, "_store_errors_total"),
            concat!($prefix, "_rejected_total"),
        ]
    };
}
pub(crate) use refresh_counter_names;

/// The counters and the last success and error, as the public `stats()` of the flag store
/// and the config handle report them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RefreshStats {
    pub(crate) refreshes: u64,
    pub(crate) updates: u64,
    pub(crate) store_errors: u64,
    pub(crate) rejected: u64,
    pub(crate) last_success_unix_ms: Option<u64>,
    pub(crate) last_error: Option<String>,
}

#[derive(Debug)]
struct Counters {
    refreshes: Counter,
    updates: Counter,
    store_errors: Counter,
    rejected: Counter,
}

/// The snapshot in use (an [`ArcSwap`]: reads take no lock) and its refresh machinery.
///
/// A refresh runs single-flight (a caller gets the outcome of a refresh that started after it
/// called), is counted, stamps the time of success with the store's clock, and logs a failure
/// once per distinct error. The background task, when started, stops when this is dropped.
pub(crate) struct Refreshing<S: Refreshable> {
    current: ArcSwap<S>,
    clock: SharedClock,
    /// Milliseconds since the Unix epoch of the last success; 0 for never.
    last_success_ms: AtomicU64,
    last_error: Mutex<Option<String>>,
    single_flight: SingleFlight<Result<S::Outcome, S::Error>>,
    counters: Counters,
    task: Mutex<Option<tokio::task::AbortHandle>>,
}

impl<S: Refreshable> Refreshing<S> {
    /// Starts with `initial`, never refreshed yet; staleness is measured with `clock`.
    pub(crate) fn new(initial: S, clock: SharedClock) -> Self {
        let [refreshes, updates, store_errors, rejected] = S::COUNTER_NAMES.map(Counter::new);
        Refreshing {
            current: ArcSwap::from_pointee(initial),
            clock,
            last_success_ms: AtomicU64::new(0),
            last_error: Mutex::new(None),
            single_flight: SingleFlight::new(),
            counters: Counters {
                refreshes,
                updates,
                store_errors,
                rejected,
            },
            task: Mutex::new(None),
        }
    }

    /// The snapshot in use, borrowed (lock-free).
    pub(crate) fn load(&self) -> arc_swap::Guard<Arc<S>> {
        self.current.load()
    }

    /// The snapshot in use, owned (lock-free).
    pub(crate) fn load_full(&self) -> Arc<S> {
        self.current.load_full()
    }

    /// Puts `snapshot` in use (a refresh's loader does this when the store changed).
    pub(crate) fn store(&self, snapshot: S) {
        self.current.store(Arc::new(snapshot));
    }

    /// Runs `load` single-flight, then counts and records its outcome: a success stamps the
    /// time and clears the last error (or reports the new snapshot's
    /// [`problems`](Refreshable::problems)); a failure keeps the snapshot in use and is logged
    /// (once per distinct error), counted and returned.
    pub(crate) async fn refresh<F, Fut>(&self, load: F) -> Result<S::Outcome, S::Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<S::Outcome, S::Error>>,
    {
        self.single_flight
            .run(|| async {
                self.counters.refreshes.bump();
                let outcome = load().await;
                match &outcome {
                    Ok(outcome) => {
                        self.stamp_success();
                        let updated = S::is_update(outcome);
                        match self.current.load().problems() {
                            None => *lock(&self.last_error) = None,
                            // A snapshot already reported keeps its report.
                            Some(problems) if updated => self.record_rejection(&problems),
                            Some(_) => {}
                        }
                        if updated {
                            self.counters.updates.bump();
                        }
                    }
                    Err(error) => {
                        if S::is_store_error(error) {
                            self.counters.store_errors.bump();
                            record_refresh_error(&self.last_error, error, S::WHAT);
                        } else {
                            self.record_rejection(error);
                        }
                    }
                }
                outcome
            })
            .await
    }

    /// Counts and logs a document or item that was refused (the snapshot in use stays).
    pub(crate) fn record_rejection(&self, error: &dyn fmt::Display) {
        self.counters.rejected.bump();
        record_refresh_error(&self.last_error, error, S::WHAT);
    }

    /// Records `error` as the last error without counting it (why the value in use is not
    /// the stored one, from a load at start); `None` clears it.
    pub(crate) fn set_last_error(&self, error: Option<String>) {
        *lock(&self.last_error) = error;
    }

    /// Marks a success now (the snapshot in use is fresh), without touching the last error.
    pub(crate) fn stamp_success(&self) {
        let now = unix_millis(self.clock.now()).max(1);
        self.last_success_ms.store(now, Ordering::Release);
    }

    /// Whether the last success is older than `max`; `false` before the first one.
    pub(crate) fn is_older_than(&self, max: Duration) -> bool {
        let last = self.last_success_ms.load(Ordering::Acquire);
        if last == 0 {
            return false;
        }
        let now = unix_millis(self.clock.now());
        now.saturating_sub(last) > max.as_millis() as u64
    }

    /// The counters, the last success and the last error.
    pub(crate) fn stats(&self) -> RefreshStats {
        let c = &self.counters;
        let last = self.last_success_ms.load(Ordering::Acquire);
        RefreshStats {
            refreshes: c.refreshes.get(),
            updates: c.updates.get(),
            store_errors: c.store_errors.get(),
            rejected: c.rejected.get(),
            last_success_unix_ms: (last != 0).then_some(last),
            last_error: lock(&self.last_error).clone(),
        }
    }

    /// Starts the background task (replacing one started before): `tick` runs every
    /// `interval` (the first time at once when `immediate`) for as long as `owner` lives, and
    /// stops when this is dropped. Nothing starts outside a tokio runtime.
    pub(crate) fn start_background<W, F, Fut>(
        &self,
        owner: Weak<W>,
        interval: Duration,
        immediate: bool,
        tick: F,
    ) where
        W: Send + Sync + 'static,
        F: Fn(Arc<W>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let task = spawn_refresh_loop(owner, interval, immediate, tick);
        if let Some(old) = std::mem::replace(&mut *lock(&self.task), task) {
            old.abort();
        }
    }
}

impl<S: Refreshable> Drop for Refreshing<S> {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.task).take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::{Duration, SystemTime};

    use kv_core::ManualClock;
    use tokio::sync::Notify;

    use super::*;

    /// A snapshot of one number; refreshes answer `Ok(true)` when they swapped one in.
    struct Number {
        value: u32,
        problem: Option<&'static str>,
    }

    impl Refreshable for Number {
        type Outcome = bool;
        type Error = &'static str;
        const WHAT: &'static str = "number";
        const COUNTER_NAMES: [&'static str; 4] = refresh_counter_names!("kv_test_number");

        fn is_update(outcome: &bool) -> bool {
            *outcome
        }

        fn is_store_error(error: &&'static str) -> bool {
            error.starts_with("store")
        }

        fn problems(&self) -> Option<&'static str> {
            self.problem
        }
    }

    fn number(value: u32) -> Number {
        Number {
            value,
            problem: None,
        }
    }

    fn refreshing() -> (Refreshing<Number>, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_000),
        ));
        (Refreshing::new(number(0), clock.shared()), clock)
    }

    #[tokio::test]
    async fn outcomes_are_counted_and_the_last_error_kept_until_a_success() {
        let (refreshing, clock) = refreshing();
        assert_eq!(refreshing.stats(), RefreshStats::default());
        assert!(!refreshing.is_older_than(Duration::ZERO), "never refreshed");

        let updated = refreshing
            .refresh(|| async {
                refreshing.store(number(1));
                Ok(true)
            })
            .await;
        assert_eq!(updated, Ok(true));
        assert_eq!(refreshing.load().value, 1);
        let stats = refreshing.stats();
        assert_eq!((stats.refreshes, stats.updates), (1, 1));
        assert_eq!(stats.last_success_unix_ms, Some(1_000_000));

        clock.advance(Duration::from_secs(5));
        let failed = refreshing.refresh(|| async { Err("store down") }).await;
        assert_eq!(failed, Err("store down"));
        let _ = refreshing.refresh(|| async { Err("bad document") }).await;
        assert_eq!(refreshing.load().value, 1, "the snapshot in use stays");
        assert!(refreshing.is_older_than(Duration::from_secs(4)));
        let stats = refreshing.stats();
        assert_eq!((stats.store_errors, stats.rejected), (1, 1));
        assert_eq!(stats.last_error.as_deref(), Some("bad document"));
        assert_eq!(stats.last_success_unix_ms, Some(1_000_000));

        let _ = refreshing.refresh(|| async { Ok(false) }).await;
        let stats = refreshing.stats();
        assert_eq!((stats.refreshes, stats.updates), (4, 1));
        assert_eq!(stats.last_error, None);
        assert_eq!(stats.last_success_unix_ms, Some(1_005_000));
        assert!(!refreshing.is_older_than(Duration::from_secs(4)));
    }

    #[tokio::test]
    async fn a_snapshot_with_problems_is_reported_once() {
        let (refreshing, _) = refreshing();
        let with_problem = || async {
            refreshing.store(Number {
                value: 2,
                problem: Some("item 7 invalid"),
            });
            Ok(true)
        };
        let _ = refreshing.refresh(with_problem).await;
        let _ = refreshing.refresh(|| async { Ok(false) }).await;
        let stats = refreshing.stats();
        assert_eq!((stats.updates, stats.rejected), (1, 1));
        assert_eq!(stats.last_error.as_deref(), Some("item 7 invalid"));
        assert!(stats.last_success_unix_ms.is_some());
    }

    #[tokio::test]
    async fn callers_share_a_refresh_that_started_after_they_called() {
        let (refreshing, _) = refreshing();
        let loads = AtomicUsize::new(0);
        let release = Notify::new();
        let load = || async {
            let n = loads.fetch_add(1, Ordering::SeqCst) as u32 + 1;
            if n == 1 {
                // The first refresh is under way when the others call.
                release.notified().await;
            }
            refreshing.store(number(n));
            Ok(true)
        };
        let first = refreshing.refresh(load);
        let others = async {
            // Runs once `first` waits inside its load.
            tokio::task::yield_now().await;
            let waiting = futures::future::join_all((0..5).map(|_| refreshing.refresh(load)));
            let release = async {
                tokio::task::yield_now().await;
                release.notify_one();
            };
            tokio::join!(waiting, release).0
        };
        let (first, others) = tokio::join!(first, others);
        assert_eq!(first, Ok(true));
        assert!(others.iter().all(|o| *o == Ok(true)));
        // One refresh for the first caller and one, started after they called, for the
        // other five together.
        assert_eq!(loads.load(Ordering::SeqCst), 2);
        assert_eq!(refreshing.load().value, 2);
        assert_eq!(refreshing.stats().refreshes, 2);
    }
}
