//! The parts of [`Refreshing`](super::snapshot::Refreshing): single-flight refreshes, the
//! background refresh task, and the error log that does not repeat itself.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Runs at most one refresh at a time; a caller gets the outcome of a refresh that started
/// after it called (its own or one it waited for), so a refresh asked for after a write always
/// sees that write, and a burst of callers costs at most two refreshes.
///
/// The cache's `shared::singleflight::Flights` differ: keyed, and a follower takes
/// the outcome of the flight already running, however early it started.
#[derive(Debug)]
pub(crate) struct SingleFlight<T> {
    last: tokio::sync::Mutex<Option<(u64, T)>>,
    started: AtomicU64,
}

impl<T: Clone> SingleFlight<T> {
    pub(crate) fn new() -> Self {
        SingleFlight {
            last: tokio::sync::Mutex::new(None),
            started: AtomicU64::new(0),
        }
    }

    pub(crate) async fn run<F, Fut>(&self, refresh: F) -> T
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        let ticket = self.started.load(Ordering::SeqCst);
        let mut last = self.last.lock().await;
        if let Some((id, outcome)) = &*last {
            if *id > ticket {
                return outcome.clone();
            }
        }
        let id = self.started.fetch_add(1, Ordering::SeqCst) + 1;
        let outcome = refresh().await;
        *last = Some((id, outcome.clone()));
        outcome
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn unix_millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Starts a task that calls `tick` every `interval` (the first call at once when `immediate`)
/// for as long as `owner` lives; `None` outside a tokio runtime.
pub(crate) fn spawn_refresh_loop<W, F, Fut>(
    owner: Weak<W>,
    interval: Duration,
    immediate: bool,
    tick: F,
) -> Option<tokio::task::AbortHandle>
where
    W: Send + Sync + 'static,
    F: Fn(Arc<W>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let runtime = tokio::runtime::Handle::try_current().ok()?;
    let task = runtime.spawn(async move {
        if !immediate {
            tokio::time::sleep(interval).await;
        }
        loop {
            match owner.upgrade() {
                Some(owner) => tick(owner).await,
                None => return,
            }
            tokio::time::sleep(interval).await;
        }
    });
    Some(task.abort_handle())
}

/// Locks a mutex, recovering from a poisoned one (the guarded values stay consistent).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Records a failed refresh of `what`: a warning the first time an error is seen, a debug line
/// while the same error repeats, so a store that stays down does not flood the logs.
pub(crate) fn record_refresh_error(
    last: &Mutex<Option<String>>,
    error: &dyn std::fmt::Display,
    what: &str,
) {
    let message = error.to_string();
    let mut last = lock(last);
    if last.as_deref() == Some(message.as_str()) {
        tracing::debug!(%error, "{what} refresh failed again");
    } else {
        tracing::warn!(%error, "{what} refresh failed; keeping the last good value");
    }
    *last = Some(message);
}
