//! The fetch and refresh steps' bookkeeping: one background refresh per key, and how a
//! finished fetch settles the key.

use std::future::Future;

use super::{Engine, Settings};
use crate::cache::stats::{CacheEvent, Counters};
use crate::shared::singleflight::Leader;

/// How a fetch ended, for the key's backoff, the counters and the refresh's event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Settled {
    /// A value was fetched and stored (or found stored by someone else): the key is fresh.
    Done,
    /// A value was fetched but the store did not take it: no backoff, but a refresh reports
    /// it as failed.
    Unstored(String),
    /// The fetch failed (the reason): the key backs off.
    Failed(String),
}

impl<O: Clone> Engine<O> {
    /// Starts one background refresh of `key` — unless the key backs off at `now_ms`, a flight
    /// for it runs already, or there is no tokio runtime — by spawning what `refresh` makes of
    /// the flight's leader. Returns whether it started.
    pub fn spawn_refresh<F, Fut>(&self, key: &str, now_ms: u64, refresh: F) -> bool
    where
        F: FnOnce(Leader<O>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        if self.backoff.is_paused(key, now_ms) {
            return false;
        }
        let Some(leader) = self.flights.try_lead(key) else {
            return false; // one runs already
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(key = %key, "no tokio runtime: cannot refresh in the background");
            return false;
        };
        Counters::bump(&self.counters.refreshes);
        runtime.spawn(refresh(leader));
        true
    }
}

impl<O> Engine<O> {
    /// Settles `key` after a fetch: a success clears its backoff, a failure is counted, logged
    /// and backs the key off. Returns the event a refresh announces.
    pub fn settle(&self, settings: &Settings, key: &str, settled: Settled) -> CacheEvent {
        match settled {
            Settled::Done => {
                self.backoff.succeeded(key);
                tracing::debug!(key = %key, "cache fetch done");
                CacheEvent::Refreshed {
                    key: key.to_owned(),
                }
            }
            Settled::Unstored(reason) => {
                self.backoff.succeeded(key);
                CacheEvent::RefreshFailed {
                    key: key.to_owned(),
                    reason,
                }
            }
            Settled::Failed(reason) => {
                Counters::bump(&self.counters.refresh_failures);
                let pause = self.backoff_failed(settings, key, settings.now_ms());
                tracing::warn!(key = %key, reason = %reason, backoff_ms = pause.as_millis() as u64, "cache fetch failed");
                CacheEvent::RefreshFailed {
                    key: key.to_owned(),
                    reason,
                }
            }
        }
    }

    /// Ends a refresh's flight: publishes its outcome first (so whoever hears the event finds
    /// the flight over), then announces the event.
    pub fn finish_refresh(&self, leader: Leader<O>, outcome: O, event: CacheEvent) {
        leader.publish(outcome);
        self.events.send(event);
    }
}
