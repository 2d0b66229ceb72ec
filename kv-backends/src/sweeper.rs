//! The background task that physically removes expired entries.
//!
//! Expired entries are invisible at once (every read checks the clock); the sweeper only
//! reclaims their space. It holds a weak reference, so it ends by itself when the backend is
//! dropped, and it needs a tokio runtime: built outside one, a backend relies on lazy removal
//! and explicit `purge_expired` calls.

use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// How often backends sweep unless configured otherwise.
#[cfg_attr(not(any(feature = "memory", feature = "file")), allow(dead_code))]
pub(crate) const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// Runs `sweep` every `interval` for as long as `target` is alive.
#[cfg_attr(not(any(feature = "memory", feature = "file")), allow(dead_code))]
pub(crate) fn spawn_sweeper<T, F, Fut>(target: Weak<T>, interval: Duration, sweep: F)
where
    T: Send + Sync + 'static,
    F: Fn(Arc<T>) -> Fut + Send + 'static,
    Fut: Future<Output = kv_core::Result<usize>> + Send,
{
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::debug!("no tokio runtime: expired entries are removed lazily only");
        return;
    };
    runtime.spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await; // the first tick is immediate
        loop {
            ticks.tick().await;
            let Some(target) = target.upgrade() else {
                break;
            };
            match sweep(target).await {
                Ok(0) => {}
                Ok(removed) => tracing::debug!(removed, "swept expired entries"),
                Err(error) => tracing::warn!(%error, "sweeping expired entries failed"),
            }
        }
    });
}
