//! Counters and events of a cache, for metrics, logs, demos and tests.

use tokio::sync::broadcast;

/// A snapshot of a cache's counters since it was created (per process).
///
/// The HTTP layer and the programmatic cache fill the same fields; a field that does not apply
/// to one of them stays 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Served fresh from the store.
    pub hits: u64,
    /// Served stale within stale-while-revalidate (a background refresh was started or was
    /// already running, or the key was in failure backoff).
    pub stale_hits: u64,
    /// Served stale within stale-if-error because the origin failed (or was in backoff).
    pub stale_if_error: u64,
    /// Went to the origin (or the fetcher): missing, vary-miss or expired.
    pub misses: u64,
    /// Expired responses the origin confirmed with `304 Not Modified`.
    pub revalidated: u64,
    /// Requests answered from another request's origin response (coalesced).
    pub coalesced: u64,
    /// Requests the cache did not handle (method, `Authorization`, `Range`).
    pub bypassed: u64,
    /// `304 Not Modified` answers to clients' conditional requests.
    pub not_modified: u64,
    /// Entries written to the store.
    pub stored: u64,
    /// Origin responses not stored (uncacheable, too large, or an error status).
    pub not_stored: u64,
    /// Store operations that failed or timed out; the request went on without the store.
    pub store_errors: u64,
    /// Background refreshes started.
    pub refreshes: u64,
    /// Background refreshes (and fetches) that failed or timed out.
    pub refresh_failures: u64,
    /// URLs invalidated by a successful unsafe request or a purge.
    pub invalidations: u64,
    /// Trims of the namespace to its bound run to completion (HTTP layer).
    pub trims: u64,
    /// Entries the trims deleted, the oldest first, to keep the namespace within its bound.
    pub evictions: u64,
}

crate::shared::counters::named_counters! {
    #[derive(Debug)]
    pub(crate) struct Counters, "kv_cache" {
        pub hits,
        pub stale_hits,
        pub stale_if_error,
        pub misses,
        pub revalidated,
        pub coalesced,
        pub bypassed,
        pub not_modified,
        pub stored,
        pub not_stored,
        pub store_errors,
        pub refreshes,
        pub refresh_failures,
        pub invalidations,
        pub trims,
        pub evictions,
    }
}

impl Counters {
    pub fn bump(counter: &crate::shared::counters::Counter) {
        counter.bump();
    }

    pub fn add(counter: &crate::shared::counters::Counter, n: u64) {
        counter.add(n);
    }

    pub fn snapshot(&self) -> CacheStats {
        let get = |c: &crate::shared::counters::Counter| c.get();
        CacheStats {
            hits: get(&self.hits),
            stale_hits: get(&self.stale_hits),
            stale_if_error: get(&self.stale_if_error),
            misses: get(&self.misses),
            revalidated: get(&self.revalidated),
            coalesced: get(&self.coalesced),
            bypassed: get(&self.bypassed),
            not_modified: get(&self.not_modified),
            stored: get(&self.stored),
            not_stored: get(&self.not_stored),
            store_errors: get(&self.store_errors),
            refreshes: get(&self.refreshes),
            refresh_failures: get(&self.refresh_failures),
            invalidations: get(&self.invalidations),
            trims: get(&self.trims),
            evictions: get(&self.evictions),
        }
    }
}

/// Something a cache did in the background, announced to the receivers of
/// [`CacheLayer::subscribe`](super::CacheLayer::subscribe) and [`Cache::subscribe`](super::Cache::subscribe).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheEvent {
    /// A background refresh finished and the key holds a fresh entry (written now, confirmed by
    /// a `304`, or found already refreshed by someone else).
    Refreshed {
        /// The store key.
        key: String,
    },
    /// A background refresh failed, timed out or could not be stored; the key backs off.
    RefreshFailed {
        /// The store key.
        key: String,
        /// What went wrong.
        reason: String,
    },
}

/// The sending side of a cache's events.
#[derive(Debug)]
pub(crate) struct Events {
    sender: broadcast::Sender<CacheEvent>,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            sender: broadcast::channel(256).0,
        }
    }
}

impl Events {
    pub fn subscribe(&self) -> broadcast::Receiver<CacheEvent> {
        self.sender.subscribe()
    }

    pub fn send(&self, event: CacheEvent) {
        // Nobody listening is the usual case.
        let _ = self.sender.send(event);
    }
}
