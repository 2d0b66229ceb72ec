//! [`Cache`]: the programmatic get-or-fetch cache.

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kv_core::{BoxError, BulkPut, KvError, Namespace, PutOptions};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::broadcast;

use super::engine::{Engine, Settings, Settled, Verdict};
use super::entry::{Freshness, StoredValue};
use super::layer::delete_by_prefix;
use super::stats::{CacheEvent, CacheStats, Counters};
use crate::shared::singleflight::{Join, Leader, NoOutcome};

/// The windows of a cached value: fresh for `fresh`, then served stale while one background
/// refresh runs for `stale_while_revalidate`, and served stale when the fetcher fails for
/// `stale_if_error` (both counted from the end of `fresh`).
///
/// A plain [`Duration`] converts into a `Ttl` with no stale windows.
///
/// ```
/// use std::time::Duration;
/// use kv_middleware::cache::Ttl;
///
/// let ttl = Ttl::fresh(Duration::from_secs(30))
///     .stale_while_revalidate(Duration::from_secs(300))
///     .stale_if_error(Duration::from_secs(3600));
/// assert_eq!(ttl.store_ttl_secs(60), 3630);
/// assert_eq!(Ttl::from(Duration::from_secs(5)).store_ttl_secs(60), 60);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ttl {
    fresh: Duration,
    stale_while_revalidate: Duration,
    stale_if_error: Duration,
}

impl Ttl {
    /// Fresh for `fresh`, with no stale windows.
    pub const fn fresh(fresh: Duration) -> Self {
        Ttl {
            fresh,
            stale_while_revalidate: Duration::ZERO,
            stale_if_error: Duration::ZERO,
        }
    }

    /// After `fresh`, served stale at once for this long while a background refresh runs.
    pub const fn stale_while_revalidate(mut self, window: Duration) -> Self {
        self.stale_while_revalidate = window;
        self
    }

    /// After `fresh`, served stale for this long when the fetcher fails or times out.
    pub const fn stale_if_error(mut self, window: Duration) -> Self {
        self.stale_if_error = window;
        self
    }

    /// The fresh window.
    pub const fn fresh_for(&self) -> Duration {
        self.fresh
    }

    /// The stale-while-revalidate window.
    pub const fn stale_while_revalidate_for(&self) -> Duration {
        self.stale_while_revalidate
    }

    /// The stale-if-error window.
    pub const fn stale_if_error_for(&self) -> Duration {
        self.stale_if_error
    }

    /// The TTL the store keeps the entry for, in whole seconds: fresh + the longer stale
    /// window, rounded up, and at least `min_ttl_secs` (the store's minimum, 60 s on Workers
    /// KV). Freshness is checked on every read, so a longer store TTL never serves stale data
    /// as fresh.
    pub fn store_ttl_secs(&self, min_ttl_secs: u64) -> u64 {
        let span = self
            .fresh
            .saturating_add(self.stale_while_revalidate.max(self.stale_if_error));
        let secs = span.as_secs() + u64::from(span.subsec_nanos() > 0);
        secs.max(min_ttl_secs)
    }
}

impl From<Duration> for Ttl {
    fn from(fresh: Duration) -> Self {
        Ttl::fresh(fresh)
    }
}

/// Where a value returned by the cache came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Source {
    /// The store, fresh.
    Fresh,
    /// The store, stale within stale-while-revalidate; a background refresh was started (or
    /// was running, or the key was backing off after failures).
    Stale,
    /// The store, stale within stale-if-error, because the fetcher failed (or was backing off).
    StaleIfError,
    /// This call's fetcher.
    Fetched,
    /// Another caller's fetcher (this call's was not run).
    Coalesced,
}

/// A value with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cached<T> {
    /// The value.
    pub value: T,
    /// Where it came from.
    pub source: Source,
}

/// Why the cache could not give a value.
///
/// Store errors are not among them: the cache logs and counts those and goes on without the
/// store (fetching, and not caching).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The fetcher (or loader) failed and no stale value was usable.
    #[error("fetching {key:?} failed: {source}")]
    Fetch {
        /// The key being fetched.
        key: String,
        /// The fetcher's error (shared by every caller that waited on it).
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// The fetcher took longer than the fetch timeout and no stale value was usable.
    #[error("fetching {key:?} timed out after {timeout:?}")]
    Timeout {
        /// The key being fetched.
        key: String,
        /// The fetch timeout.
        timeout: Duration,
    },
    /// The fetch ended without a value (the fetcher panicked) and no stale value was usable.
    #[error("fetching {key:?} ended without a value")]
    Abandoned {
        /// The key being fetched.
        key: String,
    },
    /// A value could not be converted to or from JSON.
    #[error("value of {key:?} is not the expected JSON: {source}")]
    Json {
        /// The key.
        key: String,
        /// The serde error.
        #[source]
        source: Arc<serde_json::Error>,
    },
}

/// What [`Cache::warm`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WarmReport {
    /// Distinct keys asked for.
    pub requested: usize,
    /// Keys already fresh in the store (not loaded).
    pub fresh: usize,
    /// Keys the loader returned a value for (among those asked).
    pub loaded: usize,
    /// Keys asked of the loader that it returned no value for.
    pub not_found: Vec<String>,
    /// Whether the loaded values were written (false when the store failed).
    pub stored: bool,
}

/// A get-or-fetch cache over a namespace, with stale-while-revalidate, stale-if-error,
/// single-flight, background refresh and failure backoff. Cheap to clone; clones share
/// everything.
///
/// See the [module docs](super) for the model; in short, per key:
///
/// | age | [`get_or_fetch`](Cache::get_or_fetch) |
/// | --- | --- |
/// | < fresh | the stored value |
/// | < fresh + stale-while-revalidate | the stored value at once; one background refresh runs the fetcher |
/// | < fresh + stale-if-error | the fetcher's value; the stored one if it fails or times out |
/// | older, or missing | the fetcher's value, or its error |
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use kv_middleware::cache::{Cache, Ttl};
///
/// let store = kv_backends::open("memory:").await?;
/// let cache = Cache::new(store.namespace("CACHE").await?).with_key_prefix("user:");
/// let ttl = Ttl::fresh(Duration::from_secs(30)).stale_while_revalidate(Duration::from_secs(300));
///
/// let name: String = cache
///     .get_or_fetch_json("1", ttl, || async { Ok::<_, std::io::Error>("Ada".to_owned()) })
///     .await?;
/// assert_eq!(name, "Ada");
/// // Fresh for 30 s: this fetcher does not run.
/// let again: String = cache
///     .get_or_fetch_json("1", ttl, || async { Ok::<_, std::io::Error>("Grace".to_owned()) })
///     .await?;
/// assert_eq!(again, "Ada");
/// cache.invalidate("1").await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Cache {
    config: Arc<Config>,
    state: Arc<State>,
}

#[derive(Debug, Clone)]
struct Config {
    store: Settings,
    prefix: String,
    fetch_timeout: Duration,
}

/// What the clones of one cache share at run time: the engine's flights, backoff, counters
/// and events.
type State = Engine<FetchOutcome>;

/// A fetch's result, as every waiting caller receives it.
#[derive(Debug, Clone)]
enum FetchOutcome {
    Value(Bytes),
    Failed(CacheError),
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("namespace", &self.config.store.namespace)
            .field("prefix", &self.config.prefix)
            .finish_non_exhaustive()
    }
}

type BoxedFetch = std::pin::Pin<Box<dyn Future<Output = Result<Bytes, BoxError>> + Send>>;

impl Cache {
    /// A cache stored in `namespace`, with no key prefix, a 30 s fetch timeout, a 2 s store
    /// timeout and failure backoff from 1 s doubling up to 60 s.
    pub fn new(namespace: Namespace) -> Self {
        Cache {
            config: Arc::new(Config {
                store: Settings::new(namespace),
                prefix: String::new(),
                fetch_timeout: Duration::from_secs(30),
            }),
            state: Arc::new(State::default()),
        }
    }

    fn config_mut(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// Prepends `prefix` to every key in the store (none by default), so the cache can share
    /// a namespace with other data.
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.config_mut().prefix = prefix.into();
        self
    }

    /// Renamed [`with_key_prefix`](Cache::with_key_prefix), as on every layer.
    #[doc(hidden)]
    #[deprecated(note = "renamed `with_key_prefix`, as on every layer")]
    pub fn with_prefix(self, prefix: impl Into<String>) -> Self {
        self.with_key_prefix(prefix)
    }

    /// The longest a fetcher may run (30 s by default); past it the fetch counts as failed
    /// (stale-if-error applies) and its result is dropped.
    pub fn with_fetch_timeout(mut self, timeout: Duration) -> Self {
        self.config_mut().fetch_timeout = timeout;
        self
    }

    /// The longest one store operation may take (default
    /// [`DEFAULT_STORE_TIMEOUT`](crate::DEFAULT_STORE_TIMEOUT), 5 s; `None`: as long as the store
    /// takes); past it the cache goes on as if the store had failed.
    pub fn with_store_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.config_mut().store.store_timeout = timeout.into();
        self
    }

    /// Failure backoff per key: after a fetch fails, stale values are served without running
    /// a fetcher for `initial`, doubling with every further failure up to `max` (1 s and 60 s
    /// by default; a zero `initial` turns it off). A missing or expired key always fetches.
    pub fn with_backoff(mut self, initial: Duration, max: Duration) -> Self {
        let store = &mut self.config_mut().store;
        store.backoff_initial = initial;
        store.backoff_max = max;
        self
    }

    /// The namespace the cache is stored in.
    pub fn namespace(&self) -> &Namespace {
        &self.config.store.namespace
    }

    /// The value of `key`: from the store while usable, else from `fetch` (run once per key
    /// in this process however many callers ask at once; see the [type docs](Cache)).
    ///
    /// `fetch` runs in a task of its own, so it finishes (and stores its value) even when the
    /// caller goes away; it is bounded by the fetch timeout.
    ///
    /// # Errors
    ///
    /// When no usable value is stored and the fetch fails, times out or panics.
    pub async fn get_or_fetch<F, Fut, E>(
        &self,
        key: &str,
        ttl: impl Into<Ttl>,
        fetch: F,
    ) -> Result<Bytes, CacheError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<Bytes, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        Ok(self.get_or_fetch_with_source(key, ttl, fetch).await?.value)
    }

    /// [`get_or_fetch`](Cache::get_or_fetch), telling where the value came from.
    ///
    /// # Errors
    ///
    /// As [`get_or_fetch`](Cache::get_or_fetch).
    pub async fn get_or_fetch_with_source<F, Fut, E>(
        &self,
        key: &str,
        ttl: impl Into<Ttl>,
        fetch: F,
    ) -> Result<Cached<Bytes>, CacheError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<Bytes, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        let fetch =
            move || -> BoxedFetch { Box::pin(async move { fetch().await.map_err(Into::into) }) };
        self.lookup(key, ttl.into(), fetch, |bytes| Ok(bytes.clone()))
            .await
    }

    /// [`get_or_fetch`](Cache::get_or_fetch) for a value stored as JSON. A stored value that
    /// does not decode as `T` (written by an older version of the program, say) counts as
    /// missing.
    ///
    /// # Errors
    ///
    /// As [`get_or_fetch`](Cache::get_or_fetch), and [`CacheError::Json`] when the fetched
    /// value does not serialize.
    pub async fn get_or_fetch_json<T, F, Fut, E>(
        &self,
        key: &str,
        ttl: impl Into<Ttl>,
        fetch: F,
    ) -> Result<T, CacheError>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        Ok(self
            .get_or_fetch_json_with_source(key, ttl, fetch)
            .await?
            .value)
    }

    /// [`get_or_fetch_json`](Cache::get_or_fetch_json), telling where the value came from.
    ///
    /// # Errors
    ///
    /// As [`get_or_fetch_json`](Cache::get_or_fetch_json).
    pub async fn get_or_fetch_json_with_source<T, F, Fut, E>(
        &self,
        key: &str,
        ttl: impl Into<Ttl>,
        fetch: F,
    ) -> Result<Cached<T>, CacheError>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        let fetch = move || -> BoxedFetch {
            Box::pin(async move {
                let value = fetch().await.map_err(Into::into)?;
                serde_json::to_vec(&value)
                    .map(Bytes::from)
                    .map_err(|e| Box::new(e) as BoxError)
            })
        };
        self.lookup(key, ttl.into(), fetch, |bytes| {
            serde_json::from_slice(bytes)
        })
        .await
    }

    /// The stored value of `key` if it is fresh or stale-while-revalidate, without fetching.
    ///
    /// # Errors
    ///
    /// The store's error.
    pub async fn peek(&self, key: &str) -> Result<Option<Cached<Bytes>>, KvError> {
        let store_key = self.store_key(key);
        let Some(bytes) = self.config.store.namespace.get(&store_key).await? else {
            return Ok(None);
        };
        let Some(stored) = StoredValue::decode(&bytes) else {
            return Ok(None);
        };
        let source = match stored.freshness(self.now_ms()) {
            Freshness::Fresh => Source::Fresh,
            Freshness::StaleWhileRevalidate => Source::Stale,
            _ => return Ok(None),
        };
        Ok(Some(Cached {
            value: stored.value,
            source,
        }))
    }

    /// Stores `value` under `key` now, fresh for `ttl`.
    ///
    /// # Errors
    ///
    /// The store's error (a limit, or a failure).
    pub async fn set(
        &self,
        key: &str,
        value: impl Into<Bytes>,
        ttl: impl Into<Ttl>,
    ) -> Result<(), KvError> {
        let ttl = ttl.into();
        let store_key = self.store_key(key);
        let (encoded, options) = self.encode(value.into(), &ttl);
        // An unconditional write always happens.
        let _ = self
            .config
            .store
            .namespace
            .put_with(&store_key, encoded, options)
            .await?;
        Ok(())
    }

    /// Stores `value` as JSON under `key` now, fresh for `ttl`.
    ///
    /// # Errors
    ///
    /// The store's error, or [`KvError::Encode`] when the value does not serialize.
    pub async fn set_json<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: impl Into<Ttl>,
    ) -> Result<(), KvError> {
        let bytes = serde_json::to_vec(value).map_err(|source| KvError::Encode {
            what: "value",
            source,
        })?;
        self.set(key, bytes, ttl).await
    }

    /// Deletes `key`: the next call fetches.
    ///
    /// # Errors
    ///
    /// The store's error.
    pub async fn invalidate(&self, key: &str) -> Result<(), KvError> {
        self.config
            .store
            .namespace
            .delete(&self.store_key(key))
            .await?;
        Counters::bump(&self.state.counters.invalidations);
        Ok(())
    }

    /// Deletes every key starting with `prefix` (after the cache's own prefix); `""` empties
    /// the cache. Returns how many entries were deleted.
    ///
    /// # Errors
    ///
    /// The store's error when listing or deleting fails.
    pub async fn invalidate_prefix(&self, prefix: &str) -> Result<usize, KvError> {
        let deleted =
            delete_by_prefix(&self.config.store.namespace, &self.store_key(prefix)).await?;
        Counters::add(&self.state.counters.invalidations, deleted as u64);
        Ok(deleted)
    }

    /// Fills the cache for `keys`: bulk gets find the keys that are missing or no longer
    /// fresh (one per 100 keys), one `loader` call receives all of those, and bulk puts store
    /// what it returns (one per 10 000). Keys the loader returns that were not asked for are
    /// ignored.
    ///
    /// A failed store read counts its keys as missing; a failed write leaves
    /// [`WarmReport::stored`] false. Both are logged and counted.
    ///
    /// # Errors
    ///
    /// [`CacheError::Fetch`] when the loader fails.
    pub async fn warm<K, L, Fut, I, E>(
        &self,
        keys: &[K],
        ttl: impl Into<Ttl>,
        loader: L,
    ) -> Result<WarmReport, CacheError>
    where
        K: AsRef<str>,
        L: FnOnce(Vec<String>) -> Fut,
        Fut: Future<Output = Result<I, E>>,
        I: IntoIterator<Item = (String, Bytes)>,
        E: Into<BoxError>,
    {
        let ttl = ttl.into();
        let mut seen = HashSet::new();
        let keys: Vec<String> = keys
            .iter()
            .map(|k| k.as_ref().to_owned())
            .filter(|k| seen.insert(k.clone()))
            .collect();
        let mut report = WarmReport {
            requested: keys.len(),
            stored: true,
            ..WarmReport::default()
        };
        let missing = self.missing_keys(&keys).await;
        report.fresh = keys.len() - missing.len();
        if missing.is_empty() {
            return Ok(report);
        }
        let loaded = loader(missing.clone())
            .await
            .map_err(|e| CacheError::Fetch {
                key: missing.join(","),
                source: Arc::from(e.into()),
            })?;
        let wanted: HashSet<&str> = missing.iter().map(String::as_str).collect();
        let mut got = HashSet::new();
        let mut items = Vec::new();
        for (key, value) in loaded {
            if !wanted.contains(key.as_str()) || !got.insert(key.clone()) {
                continue;
            }
            let (encoded, options) = self.encode(value, &ttl);
            items.push(BulkPut::new(self.store_key(&key), encoded).with_options(options));
        }
        report.loaded = items.len();
        report.not_found = missing.into_iter().filter(|k| !got.contains(k)).collect();
        let chunk = self.config.store.namespace.limits().max_bulk_write.max(1);
        let mut rest = items;
        while !rest.is_empty() {
            let tail = rest.split_off(rest.len().min(chunk));
            let count = rest.len() as u64;
            let ns = &self.config.store.namespace;
            if self
                .guarded("put_many", "(warm)", ns.put_many(rest))
                .await
                .is_some()
            {
                Counters::add(&self.state.counters.stored, count);
            } else {
                report.stored = false;
            }
            rest = tail;
        }
        Ok(report)
    }

    /// [`warm`](Cache::warm) for values stored as JSON.
    ///
    /// # Errors
    ///
    /// As [`warm`](Cache::warm), and [`CacheError::Json`] when a value does not serialize.
    pub async fn warm_json<K, T, L, Fut, I, E>(
        &self,
        keys: &[K],
        ttl: impl Into<Ttl>,
        loader: L,
    ) -> Result<WarmReport, CacheError>
    where
        K: AsRef<str>,
        T: Serialize,
        L: FnOnce(Vec<String>) -> Fut,
        Fut: Future<Output = Result<I, E>>,
        I: IntoIterator<Item = (String, T)>,
        E: Into<BoxError>,
    {
        let mut encode_error = None;
        let error_slot = &mut encode_error;
        let report = self
            .warm(keys, ttl, move |missing| async move {
                let loaded = loader(missing).await?;
                let mut encoded = Vec::new();
                for (key, value) in loaded {
                    match serde_json::to_vec(&value) {
                        Ok(bytes) => encoded.push((key, Bytes::from(bytes))),
                        Err(source) => {
                            *error_slot = Some(CacheError::Json {
                                key,
                                source: Arc::new(source),
                            });
                        }
                    }
                }
                Ok::<_, E>(encoded)
            })
            .await?;
        match encode_error {
            Some(error) => Err(error),
            None => Ok(report),
        }
    }

    /// This cache's counters (shared by its clones).
    pub fn stats(&self) -> CacheStats {
        self.state.counters.snapshot()
    }

    /// Background events (refreshes finished or failed) from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<CacheEvent> {
        self.state.events.subscribe()
    }

    // ---- internals ----

    async fn lookup<T, F>(
        &self,
        key: &str,
        ttl: Ttl,
        fetch: F,
        decode: impl Fn(&Bytes) -> Result<T, serde_json::Error>,
    ) -> Result<Cached<T>, CacheError>
    where
        F: FnOnce() -> BoxedFetch + Send + 'static,
    {
        let store_key = self.store_key(key);
        let ns = &self.config.store.namespace;
        let read = self.guarded("get", &store_key, ns.get(&store_key)).await;
        let now_ms = self.config.store.now_ms();
        let stored = read.flatten().and_then(|bytes| StoredValue::decode(&bytes));
        let seen = stored.as_ref().map(|stored| stored.stored_at_ms);
        let candidate = stored.and_then(|stored| match decode(&stored.value) {
                Ok(value) => Some((stored, value)),
                Err(error) => {
                    tracing::debug!(key = %store_key, error = %error, "cached value does not decode; fetching");
                    None
                }
            });
        let engine = &*self.state;
        let mut stale = None;
        if let Some((stored, value)) = candidate {
            let source = match engine.judge(&stored, &store_key, now_ms) {
                Verdict::Fresh => Source::Fresh,
                Verdict::StaleWhileRevalidate => {
                    let (cache, refresh_key) = (self.clone(), store_key.clone());
                    engine.spawn_refresh(&store_key, now_ms, move |leader| {
                        cache.run_fetch(leader, refresh_key, ttl, fetch, seen, true)
                    });
                    return Ok(Cached {
                        value,
                        source: Source::Stale,
                    });
                }
                Verdict::StaleIfErrorBackingOff => Source::StaleIfError,
                Verdict::Fetch => {
                    if stored.usable_on_error(now_ms) {
                        stale = Some(value);
                    }
                    return self
                        .fetch(key, store_key, ttl, fetch, seen, stale, decode)
                        .await;
                }
            };
            return Ok(Cached { value, source });
        }
        self.fetch(key, store_key, ttl, fetch, seen, stale, decode)
            .await
    }

    /// The coalesce and fetch steps: one fetch per key in this process, in a task of its own;
    /// `stale` stands in if it fails.
    #[allow(clippy::too_many_arguments)]
    async fn fetch<T, F>(
        &self,
        key: &str,
        store_key: String,
        ttl: Ttl,
        fetch: F,
        seen: Option<u64>,
        stale: Option<T>,
        decode: impl Fn(&Bytes) -> Result<T, serde_json::Error>,
    ) -> Result<Cached<T>, CacheError>
    where
        F: FnOnce() -> BoxedFetch + Send + 'static,
    {
        let counters = &self.state.counters;
        let (follower, source) = match self.state.flights.join(&store_key) {
            Join::Leader(leader) => {
                Counters::bump(&counters.misses);
                let follower = leader.follow();
                let task = self
                    .clone()
                    .run_fetch(leader, store_key, ttl, fetch, seen, false);
                match tokio::runtime::Handle::try_current() {
                    Ok(runtime) => {
                        // Its own task: it completes (and stores) even if this caller goes.
                        runtime.spawn(task);
                    }
                    Err(_) => task.await,
                }
                (follower, Source::Fetched)
            }
            Join::Follower(follower) => {
                Counters::bump(&counters.coalesced);
                (follower, Source::Coalesced)
            }
        };
        let failure = match follower.wait(None).await {
            Ok(FetchOutcome::Value(bytes)) => {
                return decode(&bytes)
                    .map(|value| Cached { value, source })
                    .map_err(|source| CacheError::Json {
                        key: key.to_owned(),
                        source: Arc::new(source),
                    });
            }
            Ok(FetchOutcome::Failed(error)) => error,
            Err(NoOutcome::Abandoned | NoOutcome::TimedOut) => CacheError::Abandoned {
                key: key.to_owned(),
            },
        };
        match stale {
            Some(value) => {
                Counters::bump(&counters.stale_if_error);
                Ok(Cached {
                    value,
                    source: Source::StaleIfError,
                })
            }
            None => Err(failure),
        }
    }

    /// Fetches (unless the store turned fresh meanwhile), stores and publishes the result;
    /// a refresh then announces how it went (after publishing, so whoever hears the event
    /// finds the flight over).
    ///
    /// `seen` is when the entry the caller read was stored (`None` if it read none): an entry
    /// stored later and fresh is taken as is, without fetching.
    async fn run_fetch<F>(
        self,
        leader: Leader<FetchOutcome>,
        store_key: String,
        ttl: Ttl,
        fetch: F,
        seen: Option<u64>,
        refresh: bool,
    ) where
        F: FnOnce() -> BoxedFetch + Send + 'static,
    {
        let (outcome, settled) = self.fetch_and_store(&store_key, ttl, fetch, seen).await;
        let event = self.state.settle(&self.config.store, &store_key, settled);
        if refresh {
            self.state.finish_refresh(leader, outcome, event);
        } else {
            leader.publish(outcome);
        }
    }

    async fn fetch_and_store<F>(
        &self,
        store_key: &str,
        ttl: Ttl,
        fetch: F,
        seen: Option<u64>,
    ) -> (FetchOutcome, Settled)
    where
        F: FnOnce() -> BoxedFetch + Send + 'static,
    {
        let ns = &self.config.store.namespace;
        // Someone may have stored it between the caller's read and this flight.
        if let Some(Some(bytes)) = self.guarded("get", store_key, ns.get(store_key)).await {
            if let Some(stored) = StoredValue::decode(&bytes) {
                let newer = seen.map_or(true, |seen| stored.stored_at_ms > seen);
                if newer && stored.freshness(self.config.store.now_ms()) == Freshness::Fresh {
                    return (FetchOutcome::Value(stored.value), Settled::Done);
                }
            }
        }
        let timeout = self.config.fetch_timeout;
        let error = match tokio::time::timeout(timeout, fetch()).await {
            Ok(Ok(value)) => {
                let (encoded, options) = self.encode(value.clone(), &ttl);
                let stored = if encoded.len() > ns.limits().max_value_bytes {
                    tracing::warn!(key = %store_key, len = value.len(), "value too large for the store; not cached");
                    false
                } else {
                    self.guarded("put", store_key, ns.put_with(store_key, encoded, options))
                        .await
                        .is_some()
                };
                let settled = if stored {
                    Counters::bump(&self.state.counters.stored);
                    Settled::Done
                } else {
                    Settled::Unstored("the store did not take the value".to_owned())
                };
                return (FetchOutcome::Value(value), settled);
            }
            Ok(Err(error)) => CacheError::Fetch {
                key: self.user_key(store_key),
                source: Arc::from(error),
            },
            Err(_) => CacheError::Timeout {
                key: self.user_key(store_key),
                timeout,
            },
        };
        let reason = error.to_string();
        (FetchOutcome::Failed(error), Settled::Failed(reason))
    }

    /// The keys among `keys` that are not fresh in the store (all of a chunk whose read
    /// fails).
    async fn missing_keys(&self, keys: &[String]) -> Vec<String> {
        let ns = &self.config.store.namespace;
        let now_ms = self.now_ms();
        let chunk = ns.limits().max_bulk_get.max(1);
        let mut missing = Vec::new();
        for part in keys.chunks(chunk) {
            let store_keys: Vec<String> = part.iter().map(|k| self.store_key(k)).collect();
            match self
                .guarded("get_many", "(warm)", ns.get_many(&store_keys))
                .await
            {
                Some(entries) => {
                    for (key, entry) in part.iter().zip(entries) {
                        let fresh = entry
                            .and_then(|e| StoredValue::decode(&e.value))
                            .is_some_and(|v| v.freshness(now_ms) == Freshness::Fresh);
                        if !fresh {
                            missing.push(key.clone());
                        }
                    }
                }
                None => missing.extend(part.iter().cloned()),
            }
        }
        missing
    }

    fn encode(&self, value: Bytes, ttl: &Ttl) -> (Bytes, PutOptions) {
        let millis = |d: Duration| d.as_millis().min(u64::MAX as u128) as u64;
        let stored = StoredValue {
            stored_at_ms: self.now_ms(),
            fresh_ms: millis(ttl.fresh),
            swr_ms: millis(ttl.stale_while_revalidate),
            sie_ms: millis(ttl.stale_if_error),
            value,
        };
        let min = self.config.store.namespace.limits().min_ttl_secs;
        let options = PutOptions::new().ttl(Duration::from_secs(ttl.store_ttl_secs(min)));
        (stored.encode(), options)
    }

    fn store_key(&self, key: &str) -> String {
        let mut full = String::with_capacity(self.config.prefix.len() + key.len());
        full.push_str(&self.config.prefix);
        full.push_str(key);
        full
    }

    fn user_key(&self, store_key: &str) -> String {
        store_key
            .strip_prefix(self.config.prefix.as_str())
            .unwrap_or(store_key)
            .to_owned()
    }

    fn now_ms(&self) -> u64 {
        self.config.store.now_ms()
    }

    async fn guarded<T>(
        &self,
        operation: &'static str,
        key: &str,
        future: impl Future<Output = kv_core::Result<T>>,
    ) -> Option<T> {
        self.state
            .guarded(&self.config.store, operation, key, future)
            .await
    }
}
