//! The settings one layer (and its manager) share, the load-failure policy and the counters.

use std::sync::Arc;
use std::time::Duration;

use kv_core::Namespace;

use super::cookie_config::CookieConfig;
use super::expiry::Expiry;

/// What a request does when loading its session from the store fails.
///
/// Either way the failure is logged with `tracing::error!` and counted in
/// [`SessionStats::load_errors`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LoadErrorPolicy {
    /// Fail closed (the default): the session call that triggered the load returns
    /// [`SessionError::Store`](super::SessionError::Store), later calls return
    /// [`SessionError::LoadFailed`](super::SessionError::LoadFailed), nothing is saved, no
    /// cookie is set, and the layer answers `500 Internal Server Error` whatever the handler
    /// returned: a page never runs on a session it could not read.
    #[default]
    Fail,
    /// Fail open: the request continues with a new, empty session, as if it carried no cookie.
    /// If the handler writes to it, it is saved as a new session with a new ID (the stored one
    /// is never overwritten); a logged-in user then looks logged out for this request.
    Empty,
}

/// Counters of one layer (or manager) and everything cloned from it, for metrics.
///
/// ```
/// # async fn example(layer: kv_middleware::session::SessionLayer) {
/// let stats = layer.stats();
/// println!("{} session writes, {} failed saves", stats.writes, stats.save_errors);
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionStats {
    /// Sessions read from the store (including re-reads after a conflict).
    pub loads: u64,
    /// Loads that failed with a store error.
    pub load_errors: u64,
    /// Session records written (creations, changes, rolling refreshes).
    pub writes: u64,
    /// Session records deleted (destroy, ID cycling, emptied sessions).
    pub deletes: u64,
    /// Writes that met a concurrent write (compare-and-swap failed) and were retried.
    pub conflicts: u64,
    /// Saves that failed (the response became a 500).
    pub save_errors: u64,
    /// Requests whose cookies named more than one session (cookie tossing, or a stale cookie
    /// of another path or domain): none of them was used, the request had a new session.
    pub conflicting_cookies: u64,
}

crate::shared::counters::named_counters! {
    #[derive(Debug)]
    pub(crate) struct Counters, "kv_session" {
        pub(crate) loads,
        pub(crate) load_errors,
        pub(crate) writes,
        pub(crate) deletes,
        pub(crate) conflicts,
        pub(crate) save_errors,
        pub(crate) conflicting_cookies,
    }
}

impl Counters {
    pub(crate) fn bump(counter: &crate::shared::counters::Counter) {
        counter.bump();
    }

    pub(crate) fn snapshot(&self) -> SessionStats {
        SessionStats {
            loads: self.loads.get(),
            load_errors: self.load_errors.get(),
            writes: self.writes.get(),
            deletes: self.deletes.get(),
            conflicts: self.conflicts.get(),
            save_errors: self.save_errors.get(),
            conflicting_cookies: self.conflicting_cookies.get(),
        }
    }
}

/// Default for [`Config::refresh_fraction`].
pub(crate) const DEFAULT_REFRESH_FRACTION: f64 = 0.5;
/// Default for [`Config::max_save_attempts`].
pub(crate) const DEFAULT_MAX_SAVE_ATTEMPTS: u32 = 8;

/// Everything a session needs besides its own state.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// The namespace as given, without a timeout.
    unbounded: Namespace,
    /// The namespace every session call uses: `unbounded` with the store timeout, if any.
    pub(crate) namespace: Namespace,
    pub(crate) cookie: CookieConfig,
    pub(crate) expiry: Expiry,
    /// A rolling session is re-saved when no more than this fraction of its period remains.
    pub(crate) refresh_fraction: f64,
    pub(crate) load_error_policy: LoadErrorPolicy,
    /// Writes one save may attempt against concurrent writers (and ID collisions).
    pub(crate) max_save_attempts: u32,
    pub(crate) counters: Arc<Counters>,
}

impl Config {
    pub(crate) fn new(namespace: Namespace) -> Self {
        Config {
            unbounded: namespace.clone(),
            namespace: namespace.with_timeout(crate::DEFAULT_STORE_TIMEOUT),
            cookie: CookieConfig::default(),
            expiry: Expiry::default(),
            refresh_fraction: DEFAULT_REFRESH_FRACTION,
            load_error_policy: LoadErrorPolicy::default(),
            max_save_attempts: DEFAULT_MAX_SAVE_ATTEMPTS,
            counters: Arc::default(),
        }
    }

    /// Bounds each store call by `timeout` (`None`: unbounded). A call that runs over is a
    /// store error, handled as the load and save policies say.
    pub(crate) fn set_store_timeout(&mut self, timeout: Option<Duration>) {
        self.namespace = self.unbounded.with_timeout(timeout);
    }

    /// The store's clock, in whole seconds since the Unix epoch.
    pub(crate) fn now_secs(&self) -> u64 {
        self.namespace.clock().unix_secs()
    }
}
