//! A read-through cache in front of any backend: recently read entries (and recently missed
//! keys) are answered from memory for a `cache_ttl`, which is how a remote store gets
//! edge-like read latency.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> kv_core::Result<()> {
//! use kv_backends::memory::MemoryBackend;
//! use kv_backends::ReadCache;
//! use kv_core::Store;
//! use std::time::Duration;
//!
//! // In production the inner backend is remote, e.g. an `HttpBackend`.
//! let cached = ReadCache::builder(MemoryBackend::new())
//!     .cache_ttl(Duration::from_secs(60))
//!     .max_entries(10_000)
//!     .build();
//! let store = Store::new(cached.clone());
//! let config = store.namespace("CONFIG").await?;
//! config.put_text("theme", "dark").await?;
//! assert_eq!(config.get_text("theme").await?.as_deref(), Some("dark")); // from the store
//! assert_eq!(config.get_text("theme").await?.as_deref(), Some("dark")); // from the cache
//! assert_eq!(cached.stats().hits, 1);
//! # Ok(()) }
//! ```
//!
//! # Semantics
//!
//! - **Reads** (`get`, `get_many`) are answered from the cache while the cached answer is
//!   younger than `cache_ttl` by the backend's clock, and otherwise read through to the inner
//!   backend and cached. "Absent" is cached too. A cached entry whose expiration has passed is
//!   never served; it is read again.
//! - **Own writes are seen at once**: every put, delete, bulk put and bulk delete through this
//!   cache (conditional or not, successful or not) drops the keys it touched after the inner
//!   write returns, and a read that was in flight while a key was written is not cached, so a
//!   read that starts after a write returned never sees what the key held before it.
//! - **Other writers' changes** (another process, another cache over the same store) are
//!   seen after at most `cache_ttl`, as with Workers KV's `cacheTtl`.
//! - **Listings** always go to the inner backend (they are not cached).
//! - **Compare-and-swap** stays atomic (conditional writes go to the inner backend), but the
//!   version read before it may be up to `cache_ttl` old: a condition that fails drops the key,
//!   so the next read is fresh and a read-modify-write loop makes progress.
//! - **Namespace deletion** through this cache stops caching for that namespace at once;
//!   handles still open on it read through to the inner backend.
//! - **Size**: at most [`max_entries`](ReadCacheBuilder::max_entries) entries across all
//!   namespaces (evicting the least useful first, S3-FIFO by `quick_cache`), and values larger
//!   than [`max_entry_bytes`](ReadCacheBuilder::max_entry_bytes) are never cached, so memory
//!   stays below about `max_entries × max_entry_bytes`.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use kv_core::{
    async_trait, is_expired, Backend, Capabilities, DeleteOutcome, Entry, ListOptions, ListPage,
    NamespaceInfo, NamespaceStore, NewEntry, PutOutcome, Result, SharedClock, WriteMode,
};
use quick_cache::sync::{Cache, DefaultLifecycle};
use quick_cache::{DefaultHashBuilder, Equivalent, OptionsBuilder, UnitWeighter};

/// The default [`ReadCacheBuilder::cache_ttl`]: 60 s, Workers KV's default `cacheTtl`.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(60);
/// The default [`ReadCacheBuilder::max_entries`].
pub const DEFAULT_MAX_ENTRIES: usize = 10_000;
/// The default [`ReadCacheBuilder::max_entry_bytes`]: 128 KiB.
pub const DEFAULT_MAX_ENTRY_BYTES: usize = 128 * 1024;

/// Write stripes per namespace: writes to keys of different stripes never wait for each other.
const STRIPES: usize = 64;

/// Configures a [`ReadCache`].
#[derive(Debug, Clone)]
pub struct ReadCacheBuilder {
    inner: Arc<dyn Backend>,
    cache_ttl: Duration,
    max_entries: usize,
    max_entry_bytes: usize,
}

impl ReadCacheBuilder {
    /// How long a cached answer is served (60 s by default, like Workers KV; Workers KV accepts
    /// no less than 30 s). Zero disables caching.
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self
    }

    /// The most entries held, across all namespaces (10 000 by default).
    pub fn max_entries(mut self, entries: usize) -> Self {
        self.max_entries = entries;
        self
    }

    /// Values larger than this are read through but not cached (128 KiB by default).
    pub fn max_entry_bytes(mut self, bytes: usize) -> Self {
        self.max_entry_bytes = bytes;
        self
    }

    /// Builds the cache.
    pub fn build(self) -> ReadCache {
        let clock = self.inner.clock();
        ReadCache {
            shared: Arc::new(Shared {
                cache: new_cache(self.max_entries),
                inner: self.inner,
                clock,
                ttl: self.cache_ttl,
                max_entries: self.max_entries,
                max_entry_bytes: self.max_entry_bytes,
                slots: Mutex::new(HashMap::new()),
                next_slot: AtomicU64::new(0),
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
            }),
        }
    }
}

/// A cache whose size never exceeds `max_entries`: shards are sized so that their capacities,
/// rounded up per shard, add up to at most the maximum.
fn new_cache(max_entries: usize) -> EntryCache {
    let parallelism = std::thread::available_parallelism().map_or(4, |n| n.get());
    // At least 32 entries per shard, at most 4 shards per core, a power of two.
    let mut shards = (parallelism * 4).next_power_of_two();
    while shards > 1 && max_entries / shards < 32 {
        shards /= 2;
    }
    let capacity = (max_entries / shards) * shards;
    let options = OptionsBuilder::new()
        .shards(shards)
        .estimated_items_capacity(capacity)
        .weight_capacity(capacity as u64)
        .build()
        .expect("the cache options are complete");
    Cache::with_options(
        options,
        UnitWeighter,
        DefaultHashBuilder::default(),
        DefaultLifecycle::default(),
    )
}

type EntryCache = Cache<CacheKey, Cached, UnitWeighter, DefaultHashBuilder>;

/// A read-through cache decorating another backend; see the [module docs](self) for its
/// semantics. Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct ReadCache {
    shared: Arc<Shared>,
}

impl fmt::Debug for ReadCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadCache")
            .field("inner", &self.shared.inner)
            .field("cache_ttl", &self.shared.ttl)
            .field("max_entries", &self.shared.max_entries)
            .field("cached", &self.shared.cache.len())
            .finish()
    }
}

/// How often reads were answered from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReadCacheStats {
    /// Reads of a key answered from the cache.
    pub hits: u64,
    /// Reads of a key that went to the inner backend.
    pub misses: u64,
}

/// The former name of [`ReadCacheStats`].
#[doc(hidden)]
#[deprecated(note = "renamed to `ReadCacheStats`")]
pub type CacheStats = ReadCacheStats;

impl ReadCache {
    /// A cache in front of `inner` with the defaults (60 s, 10 000 entries).
    pub fn new(inner: impl Backend) -> Self {
        Self::builder(inner).build()
    }

    /// Configures a cache in front of `inner`.
    pub fn builder(inner: impl Backend) -> ReadCacheBuilder {
        Self::builder_from_arc(Arc::new(inner))
    }

    /// Configures a cache in front of a shared backend.
    pub fn builder_from_arc(inner: Arc<dyn Backend>) -> ReadCacheBuilder {
        ReadCacheBuilder {
            inner,
            cache_ttl: DEFAULT_CACHE_TTL,
            max_entries: DEFAULT_MAX_ENTRIES,
            max_entry_bytes: DEFAULT_MAX_ENTRY_BYTES,
        }
    }

    /// How long cached answers are served.
    pub fn cache_ttl(&self) -> Duration {
        self.shared.ttl
    }

    /// How many answers the cache holds now (never more than `max_entries`).
    pub fn cached_entries(&self) -> usize {
        self.shared.cache.len()
    }

    /// Hits and misses since the cache was built.
    pub fn stats(&self) -> ReadCacheStats {
        ReadCacheStats {
            hits: self.shared.hits.load(Ordering::Relaxed),
            misses: self.shared.misses.load(Ordering::Relaxed),
        }
    }

    /// Drops every cached answer.
    pub fn clear(&self) {
        self.shared.cache.clear();
    }

    /// The backend behind the cache.
    pub fn inner(&self) -> &Arc<dyn Backend> {
        &self.shared.inner
    }
}

struct Shared {
    inner: Arc<dyn Backend>,
    cache: EntryCache,
    clock: SharedClock,
    ttl: Duration,
    max_entries: usize,
    max_entry_bytes: usize,
    /// The cache slot of each namespace opened through this cache, by id.
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    next_slot: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// A namespace's part of the cache: its number in cache keys and its write stripes.
#[derive(Debug)]
struct Slot {
    id: u64,
    /// Set when the namespace is deleted through the cache: its handles stop caching.
    retired: AtomicBool,
    /// Per stripe, the number of writes so far; a read caches what it fetched only if no write
    /// to its stripe happened meanwhile. The lock makes "check and insert" and "count and
    /// remove" exclusive.
    stripes: Box<[Mutex<u64>]>,
    hasher: std::collections::hash_map::RandomState,
}

impl Slot {
    fn new(id: u64) -> Self {
        Slot {
            id,
            retired: AtomicBool::new(false),
            stripes: (0..STRIPES).map(|_| Mutex::new(0)).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    fn stripe(&self, key: &str) -> &Mutex<u64> {
        let index = self.hasher.hash_one(key) as usize % self.stripes.len();
        &self.stripes[index]
    }

    fn retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }
}

fn lock(stripe: &Mutex<u64>) -> std::sync::MutexGuard<'_, u64> {
    // The guarded value is a counter that is always valid: recover from poisoning.
    stripe
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A cache key: the namespace's slot and the key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    slot: u64,
    key: Box<str>,
}

/// A borrowed [`CacheKey`], hashing the same, for lookups without allocating.
#[derive(Hash)]
struct KeyRef<'a> {
    slot: u64,
    key: &'a str,
}

impl Equivalent<CacheKey> for KeyRef<'_> {
    fn equivalent(&self, other: &CacheKey) -> bool {
        self.slot == other.slot && self.key == &*other.key
    }
}

/// A cached answer: the entry (or its absence) and when it was read.
#[derive(Debug, Clone)]
struct Cached {
    entry: Option<Entry>,
    read_at: SystemTime,
}

impl Shared {
    /// The cached answer for `key`, when it is still fresh and not expired.
    fn lookup(&self, slot: &Slot, key: &str, now: SystemTime) -> Option<Option<Entry>> {
        let cached = self.cache.get(&KeyRef { slot: slot.id, key })?;
        let age = now.duration_since(cached.read_at).ok()?;
        if age >= self.ttl {
            return None;
        }
        if let Some(entry) = &cached.entry {
            if is_expired(entry.expiration, now) {
                return None;
            }
        }
        Some(cached.entry)
    }

    /// The write count of `key`'s stripe, taken before a read.
    fn stamp(&self, slot: &Slot, key: &str) -> u64 {
        *lock(slot.stripe(key))
    }

    /// Caches what a read that started at `read_at` with `stamp` found, unless a write to the
    /// key's stripe happened since.
    fn store(&self, slot: &Slot, key: &str, stamp: u64, entry: Option<Entry>, read_at: SystemTime) {
        if self.ttl.is_zero() || self.max_entries == 0 {
            return;
        }
        if entry
            .as_ref()
            .is_some_and(|e| e.value.len() > self.max_entry_bytes)
        {
            return;
        }
        let guard = lock(slot.stripe(key));
        if *guard != stamp || slot.retired() {
            return;
        }
        self.cache.insert(
            CacheKey {
                slot: slot.id,
                key: key.into(),
            },
            Cached { entry, read_at },
        );
    }

    /// Drops `key` after a write and makes in-flight reads of its stripe not cache.
    fn invalidate(&self, slot: &Slot, key: &str) {
        let mut guard = lock(slot.stripe(key));
        *guard = guard.wrapping_add(1);
        self.cache.remove(&KeyRef { slot: slot.id, key });
    }

    fn slot(&self, id: &str) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots
            .entry(id.to_owned())
            .or_insert_with(|| Arc::new(Slot::new(self.next_slot.fetch_add(1, Ordering::Relaxed))))
            .clone()
    }

    fn retire(&self, id: &str) {
        let removed = self
            .slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        if let Some(slot) = removed {
            slot.retired.store(true, Ordering::Release);
            // Take every stripe so no read is between its check and its insert, then drop the
            // namespace's entries.
            let guards: Vec<_> = slot.stripes.iter().map(lock).collect();
            self.cache.retain(|key, _| key.slot != slot.id);
            drop(guards);
        }
    }
}

#[async_trait]
impl Backend for ReadCache {
    fn kind(&self) -> &'static str {
        self.shared.inner.kind()
    }

    fn clock(&self) -> SharedClock {
        self.shared.clock.clone()
    }

    fn capabilities(&self) -> Capabilities {
        self.shared.inner.capabilities()
    }

    async fn create_namespace(&self, title: &str) -> Result<NamespaceInfo> {
        self.shared.inner.create_namespace(title).await
    }

    async fn list_namespaces(&self) -> Result<Vec<NamespaceInfo>> {
        self.shared.inner.list_namespaces().await
    }

    async fn rename_namespace(&self, id: &str, title: &str) -> Result<()> {
        self.shared.inner.rename_namespace(id, title).await
    }

    async fn delete_namespace(&self, id: &str) -> Result<bool> {
        let result = self.shared.inner.delete_namespace(id).await;
        self.shared.retire(id);
        result
    }

    async fn open_namespace(&self, id: &str) -> Result<Arc<dyn NamespaceStore>> {
        let inner = self.shared.inner.open_namespace(id).await?;
        Ok(Arc::new(CachedNamespace {
            inner,
            slot: self.shared.slot(id),
            shared: self.shared.clone(),
        }))
    }
}

/// One namespace behind the cache.
struct CachedNamespace {
    inner: Arc<dyn NamespaceStore>,
    slot: Arc<Slot>,
    shared: Arc<Shared>,
}

impl fmt::Debug for CachedNamespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedNamespace")
            .field("inner", &self.inner)
            .field("cache_ttl", &self.shared.ttl)
            .finish()
    }
}

impl CachedNamespace {
    /// The fresh cached answer for `key`, counted as a hit.
    fn hit(&self, key: &str, now: SystemTime) -> Option<Option<Entry>> {
        let found = self.shared.lookup(&self.slot, key, now)?;
        self.shared.hits.fetch_add(1, Ordering::Relaxed);
        Some(found)
    }

    fn invalidate_all<'a>(&self, keys: impl IntoIterator<Item = &'a str>) {
        for key in keys {
            self.shared.invalidate(&self.slot, key);
        }
    }
}

#[async_trait]
impl NamespaceStore for CachedNamespace {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    // A hit is answered here, without a boxed future; a miss too when the inner store answers
    // at once. A miss it declines is left to `get`, which looks the key up again (a remote
    // read costs a round trip; the second look-up is noise beside it).
    fn get_now(&self, key: &str) -> Option<Result<Option<Entry>>> {
        let shared = &self.shared;
        if self.slot.retired() {
            return self.inner.get_now(key);
        }
        let now = shared.clock.now();
        if let Some(found) = self.hit(key, now) {
            return Some(Ok(found));
        }
        let stamp = shared.stamp(&self.slot, key);
        let read = self.inner.get_now(key)?;
        shared.misses.fetch_add(1, Ordering::Relaxed);
        Some(read.inspect(|entry| shared.store(&self.slot, key, stamp, entry.clone(), now)))
    }

    // Writes answered at once drop the key at once, as `put` and `delete` do after awaiting.
    fn put_now(
        &self,
        key: &str,
        entry: NewEntry,
        mode: WriteMode,
    ) -> std::result::Result<Result<PutOutcome>, NewEntry> {
        let result = self.inner.put_now(key, entry, mode)?;
        self.shared.invalidate(&self.slot, key);
        Ok(result)
    }

    fn delete_now(&self, key: &str, mode: WriteMode) -> Option<Result<DeleteOutcome>> {
        let result = self.inner.delete_now(key, mode)?;
        self.shared.invalidate(&self.slot, key);
        Some(result)
    }

    fn list_now(&self, options: &ListOptions) -> Option<Result<ListPage>> {
        self.inner.list_now(options)
    }

    async fn get(&self, key: &str) -> Result<Option<Entry>> {
        let shared = &self.shared;
        if self.slot.retired() {
            return self.inner.get(key).await;
        }
        let now = shared.clock.now();
        if let Some(found) = self.hit(key, now) {
            return Ok(found);
        }
        shared.misses.fetch_add(1, Ordering::Relaxed);
        let stamp = shared.stamp(&self.slot, key);
        let entry = self.inner.get(key).await?;
        shared.store(&self.slot, key, stamp, entry.clone(), now);
        Ok(entry)
    }

    async fn put(&self, key: &str, entry: NewEntry, mode: WriteMode) -> Result<PutOutcome> {
        let result = self.inner.put(key, entry, mode).await;
        self.shared.invalidate(&self.slot, key);
        result
    }

    async fn delete(&self, key: &str, mode: WriteMode) -> Result<DeleteOutcome> {
        let result = self.inner.delete(key, mode).await;
        self.shared.invalidate(&self.slot, key);
        result
    }

    async fn list(&self, options: &ListOptions) -> Result<ListPage> {
        self.inner.list(options).await
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Entry>>> {
        let shared = &self.shared;
        if self.slot.retired() {
            return self.inner.get_many(keys).await;
        }
        let now = shared.clock.now();
        let mut results: Vec<Option<Option<Entry>>> = Vec::with_capacity(keys.len());
        let mut missing: Vec<String> = Vec::new();
        let mut stamps: Vec<u64> = Vec::new();
        for key in keys {
            match self.hit(key, now) {
                Some(found) => results.push(Some(found)),
                None => {
                    shared.misses.fetch_add(1, Ordering::Relaxed);
                    results.push(None);
                    if !missing.contains(key) {
                        stamps.push(shared.stamp(&self.slot, key));
                        missing.push(key.clone());
                    }
                }
            }
        }
        if missing.is_empty() {
            return Ok(results.into_iter().map(Option::unwrap_or_default).collect());
        }
        let fetched = self.inner.get_many(&missing).await?;
        let mut by_key: HashMap<&str, Option<Entry>> = HashMap::with_capacity(missing.len());
        for ((key, stamp), entry) in missing.iter().zip(stamps).zip(fetched) {
            shared.store(&self.slot, key, stamp, entry.clone(), now);
            by_key.insert(key.as_str(), entry);
        }
        Ok(keys
            .iter()
            .zip(results)
            .map(|(key, result)| match result {
                Some(found) => found,
                None => by_key.get(key.as_str()).cloned().flatten(),
            })
            .collect())
    }

    async fn put_many(&self, items: Vec<(String, NewEntry)>) -> Result<()> {
        let keys: Vec<String> = items.iter().map(|(key, _)| key.clone()).collect();
        let result = self.inner.put_many(items).await;
        self.invalidate_all(keys.iter().map(String::as_str));
        result
    }

    async fn delete_many(&self, keys: &[String]) -> Result<()> {
        let result = self.inner.delete_many(keys).await;
        self.invalidate_all(keys.iter().map(String::as_str));
        result
    }
}

// `Hash` of `KeyRef` must equal `CacheKey`'s: both hash the slot, then the key as `str`.
#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn borrowed_keys_hash_like_owned_ones() {
        let hasher = DefaultHashBuilder::default();
        let owned = CacheKey {
            slot: 7,
            key: "ключ".into(),
        };
        let borrowed = KeyRef {
            slot: 7,
            key: "ключ",
        };
        assert_eq!(hasher.hash_one(&owned), hasher.hash_one(&borrowed));
        assert!(borrowed.equivalent(&owned));
    }

    #[test]
    fn cache_capacity_never_exceeds_the_maximum() {
        for max in [0, 1, 31, 100, 1000, 10_007] {
            let cache = new_cache(max);
            assert!(
                cache.capacity() <= max as u64,
                "{max}: {}",
                cache.capacity()
            );
        }
    }
}
