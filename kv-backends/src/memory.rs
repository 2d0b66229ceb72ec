//! The in-memory backend: concurrent, ordered, gone when the process exits.
//!
//! Each namespace keeps its entries in a hash map of 64 shards (dashmap), which answers point
//! reads and writes, and the same keys in a lock-free skip list ordered by key bytes, which
//! answers listings: a listing walks only the page it returns and its cursor (the last key
//! returned) stays valid while keys come and go. A read takes its shard's read lock only to copy
//! the entry out (the value's bytes are shared, not copied); a write takes the shard's write
//! lock, which makes compare-and-swap atomic without a global lock; no lock is ever held across
//! an `.await`. A write to an existing key rewrites its entry in place (no allocation for the
//! key). Every operation answers at once, on the store contract's synchronous fast path, so a
//! call through a [`Namespace`](kv_core::Namespace) allocates no future. Expired entries are
//! invisible at once and removed by a background sweeper (or [`MemoryBackend::purge_expired`]).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> kv_core::Result<()> {
//! use kv_backends::memory::MemoryBackend;
//! use kv_core::{PutOptions, Store};
//!
//! let store = Store::new(MemoryBackend::new());
//! let flags = store.namespace("FLAGS").await?;
//! flags.put_json("new-ui", &serde_json::json!({"state": "ENABLED"})).await?;
//! let created = flags.put_with("new-ui", "x", PutOptions::new().only_if_absent()).await?;
//! assert_eq!(created, kv_core::PutOutcome::ConditionFailed);
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use crossbeam_skiplist::SkipSet;
use dashmap::DashMap;
use kv_core::{
    async_trait, collect_page, is_expired, list_start, new_namespace_id, Backend, Capabilities,
    DeleteOutcome, Entry, KeyInfo, KvError, ListOptions, ListPage, NamespaceInfo, NamespaceStore,
    NewEntry, PutOutcome, Result, SharedClock, SystemClock, Version, WriteMode,
};
use parking_lot::RwLock;
use serde_json::Value;

use crate::sweeper::{spawn_sweeper, DEFAULT_SWEEP_INTERVAL};

/// Hash shards per namespace: each a reader-writer lock over a hash table; more shards than
/// cores keep two writers (or a writer and readers) of different keys off each other's lock.
const SHARDS: usize = 64;

/// Builds a [`MemoryBackend`].
#[derive(Debug, Clone)]
pub struct MemoryBackendBuilder {
    clock: SharedClock,
    sweep_interval: Duration,
}

impl MemoryBackendBuilder {
    /// Decide expiry with this clock (the system clock by default).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// How often the background sweeper removes expired entries (60 s by default).
    pub fn sweep_interval(mut self, interval: Duration) -> Self {
        self.sweep_interval = interval;
        self
    }

    /// Builds the backend; inside a tokio runtime this also starts the sweeper.
    pub fn build(self) -> MemoryBackend {
        let shared = Arc::new(Shared {
            clock: self.clock,
            versions: Arc::new(AtomicU64::new(0)),
            namespaces: RwLock::new(BTreeMap::new()),
        });
        spawn_sweeper(
            Arc::downgrade(&shared),
            self.sweep_interval,
            |shared| async move { Ok(shared.purge_expired()) },
        );
        MemoryBackend { shared }
    }
}

/// The in-memory backend. Cheap to clone; clones share the same data.
#[derive(Debug, Clone)]
pub struct MemoryBackend {
    shared: Arc<Shared>,
}

impl Default for MemoryBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryBackend {
    /// A memory backend on the system clock.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// Configures a memory backend.
    pub fn builder() -> MemoryBackendBuilder {
        MemoryBackendBuilder {
            clock: SystemClock::shared(),
            sweep_interval: DEFAULT_SWEEP_INTERVAL,
        }
    }

    /// Removes every expired entry now; returns how many were removed.
    pub fn purge_expired(&self) -> usize {
        self.shared.purge_expired()
    }

    /// Entries physically held across all namespaces, expired ones not yet swept included.
    pub fn stored_entries(&self) -> usize {
        self.shared
            .namespaces
            .read()
            .values()
            .map(|ns| ns.store.index.len())
            .sum()
    }
}

#[derive(Debug)]
struct Shared {
    clock: SharedClock,
    /// One counter for the whole backend, so a version is never reused, even across a delete.
    versions: Arc<AtomicU64>,
    /// The catalog, by id.
    namespaces: RwLock<BTreeMap<String, Catalogued>>,
}

impl Shared {
    fn purge_expired(&self) -> usize {
        let namespaces: Vec<_> = self
            .namespaces
            .read()
            .values()
            .map(|ns| ns.store.clone())
            .collect();
        namespaces.iter().map(|ns| ns.purge_expired()).sum()
    }
}

#[async_trait]
impl Backend for MemoryBackend {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn clock(&self) -> SharedClock {
        self.shared.clock.clone()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::atomic()
    }

    async fn create_namespace(&self, title: &str) -> Result<NamespaceInfo> {
        let mut namespaces = self.shared.namespaces.write();
        if namespaces.values().any(|ns| ns.title == title) {
            return Err(KvError::NamespaceExists {
                title: title.to_owned(),
            });
        }
        let id = new_namespace_id();
        let store = Arc::new(MemoryNamespace::new(
            self.shared.clock.clone(),
            self.shared.versions.clone(),
        ));
        namespaces.insert(
            id.clone(),
            Catalogued {
                title: title.to_owned(),
                store,
            },
        );
        Ok(NamespaceInfo {
            id,
            title: title.to_owned(),
        })
    }

    async fn list_namespaces(&self) -> Result<Vec<NamespaceInfo>> {
        let mut all: Vec<NamespaceInfo> = self
            .shared
            .namespaces
            .read()
            .iter()
            .map(|(id, ns)| NamespaceInfo {
                id: id.clone(),
                title: ns.title.clone(),
            })
            .collect();
        all.sort_by(|a, b| a.title.cmp(&b.title));
        Ok(all)
    }

    async fn rename_namespace(&self, id: &str, title: &str) -> Result<()> {
        let mut namespaces = self.shared.namespaces.write();
        if namespaces
            .iter()
            .any(|(other, ns)| ns.title == title && other != id)
        {
            return Err(KvError::NamespaceExists {
                title: title.to_owned(),
            });
        }
        let ns = namespaces
            .get_mut(id)
            .ok_or_else(|| KvError::NamespaceNotFound {
                name: id.to_owned(),
            })?;
        ns.title = title.to_owned();
        Ok(())
    }

    async fn delete_namespace(&self, id: &str) -> Result<bool> {
        let removed = self.shared.namespaces.write().remove(id);
        if let Some(ns) = &removed {
            // Handles still open on it read nothing and fail to write.
            ns.store.retire();
        }
        Ok(removed.is_some())
    }

    async fn open_namespace(&self, id: &str) -> Result<Arc<dyn NamespaceStore>> {
        match self.shared.namespaces.read().get(id) {
            Some(ns) => Ok(ns.store.clone()),
            None => Err(KvError::NamespaceNotFound {
                name: id.to_owned(),
            }),
        }
    }
}

/// A namespace with its catalog title.
#[derive(Debug)]
struct Catalogued {
    title: String,
    store: Arc<MemoryNamespace>,
}

/// What one key holds.
#[derive(Debug)]
struct Stored {
    value: Bytes,
    metadata: Option<Box<Value>>,
    expiration: Option<u64>,
    version: u64,
}

impl Stored {
    fn new(entry: NewEntry, version: u64) -> Self {
        Stored {
            value: entry.value,
            metadata: entry.metadata.map(Box::new),
            expiration: entry.expiration,
            version,
        }
    }

    fn to_entry(&self) -> Entry {
        Entry {
            value: self.value.clone(),
            metadata: self.metadata.as_deref().cloned(),
            expiration: self.expiration,
            version: Version::from_raw(self.version),
        }
    }
}

/// One namespace of the memory backend.
///
/// Two indexes over the same keys: a sharded hash map that holds the entries and answers point
/// reads and writes (a few memory accesses at any size), and a lock-free ordered set of the keys
/// for listings. A key enters and leaves the ordered set only under its hash shard's write lock,
/// so the two agree for every key at rest; a listing that meets a key being deleted skips it.
#[derive(Debug)]
pub struct MemoryNamespace {
    /// The entries. The shard lock of a key serializes its writes (so compare-and-swap is
    /// atomic); it is never held across an `.await`.
    index: DashMap<Arc<str>, Stored>,
    /// Every key of `index`, in byte order (the key's text is shared with `index`).
    order: SkipSet<Arc<str>>,
    clock: SharedClock,
    versions: Arc<AtomicU64>,
    /// Set when the namespace is deleted: writes through old handles fail.
    retired: AtomicBool,
}

impl MemoryNamespace {
    fn new(clock: SharedClock, versions: Arc<AtomicU64>) -> Self {
        MemoryNamespace {
            // SipHash (the default): keys come from clients, and a keyed hash keeps them from
            // piling onto one shard or bucket chain.
            index: DashMap::with_shard_amount(SHARDS),
            order: SkipSet::new(),
            clock,
            versions,
            retired: AtomicBool::new(false),
        }
    }

    fn next_version(&self) -> u64 {
        self.versions.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Whether an entry is expired; the clock is read only for entries that can expire, which
    /// keeps it off the hot path of the (common) entries without an expiration.
    fn is_expired(&self, stored: &Stored) -> bool {
        stored.expiration.is_some() && is_expired(stored.expiration, self.clock.now())
    }

    fn get_sync(&self, key: &str) -> Option<Entry> {
        let stored = self.index.get(key)?;
        (!self.is_expired(&stored)).then(|| stored.to_entry())
    }

    /// Writes `entry` under `mode`. An existing entry (live or expired) is checked and rewritten
    /// in place under its shard lock, so only a new key allocates (its key and its set node).
    fn put_sync(&self, key: &str, entry: NewEntry, mode: WriteMode) -> Result<PutOutcome> {
        self.check_live()?;
        if let Some(mut stored) = self.index.get_mut(key) {
            if mode.is_conditional() {
                let current =
                    (!self.is_expired(&stored)).then(|| Version::from_raw(stored.version));
                if !mode.allows(current) {
                    return Ok(PutOutcome::ConditionFailed);
                }
            }
            let version = self.next_version();
            let old = std::mem::replace(&mut *stored, Stored::new(entry, version));
            drop(stored);
            // The old value is freed outside the shard lock.
            drop(old);
            return Ok(PutOutcome::Written(Version::from_raw(version)));
        }
        // A new key (or one that another writer creates meanwhile: the entry decides).
        match self.index.entry(Arc::from(key)) {
            dashmap::Entry::Occupied(mut occupied) => {
                let stored = occupied.get_mut();
                let current = (!self.is_expired(stored)).then(|| Version::from_raw(stored.version));
                if !mode.allows(current) {
                    return Ok(PutOutcome::ConditionFailed);
                }
                let version = self.next_version();
                *stored = Stored::new(entry, version);
                Ok(PutOutcome::Written(Version::from_raw(version)))
            }
            dashmap::Entry::Vacant(vacant) => {
                if !mode.allows(None) {
                    return Ok(PutOutcome::ConditionFailed);
                }
                let version = self.next_version();
                // Listed before the shard lock is released: no writer of this key sees the
                // two indexes disagree.
                self.order.insert(vacant.key().clone());
                vacant.insert(Stored::new(entry, version));
                Ok(PutOutcome::Written(Version::from_raw(version)))
            }
        }
    }

    fn delete_sync(&self, key: &str, mode: WriteMode) -> DeleteOutcome {
        let mut decided = None;
        // The predicate runs under the shard's write lock, and the key leaves the ordered set
        // there too, so a concurrent re-creation of the key cannot be unlisted by this delete.
        self.index.remove_if(key, |stored_key, stored| {
            let current = (!self.is_expired(stored)).then(|| Version::from_raw(stored.version));
            if !mode.allows(current) {
                decided = Some(DeleteOutcome::ConditionFailed);
                return false;
            }
            decided = Some(DeleteOutcome::Deleted {
                existed: current.is_some(),
            });
            self.order.remove(stored_key);
            true
        });
        // No entry at all: decided on absence.
        decided.unwrap_or(if mode.allows(None) {
            DeleteOutcome::Deleted { existed: false }
        } else {
            DeleteOutcome::ConditionFailed
        })
    }

    fn list_sync(&self, options: &ListOptions) -> Result<ListPage> {
        let prefix = options.prefix.as_deref().unwrap_or("");
        let start = list_start(prefix, options.cursor.as_deref())?;
        let start = match &start {
            Bound::Included(key) => Bound::Included(key.as_str()),
            Bound::Excluded(key) => Bound::Excluded(key.as_str()),
            Bound::Unbounded => Bound::Unbounded,
        };
        let items = self
            .order
            .range::<str, _>((start, Bound::Unbounded))
            .filter_map(|key| {
                let name: &str = key.value();
                if !name.starts_with(prefix) {
                    // The end of the listing: `collect_page` stops here without looking inside.
                    return Some(Ok(KeyInfo {
                        name: name.to_owned(),
                        expiration: None,
                        metadata: None,
                    }));
                }
                // A key deleted since the set was read is skipped.
                let stored = self.index.get(name)?;
                Some(Ok(KeyInfo {
                    name: name.to_owned(),
                    expiration: stored.expiration,
                    metadata: stored.metadata.as_deref().cloned(),
                }))
            });
        collect_page(items, prefix, options.limit, self.clock.now())
    }

    fn purge_expired(&self) -> usize {
        let now = self.clock.now();
        // Collected first: removing while iterating would wait on the iterator's own shard lock.
        let expired: Vec<(Arc<str>, u64)> = self
            .index
            .iter()
            .filter(|item| is_expired(item.value().expiration, now))
            .map(|item| (item.key().clone(), item.value().version))
            .collect();
        let mut removed = 0;
        for (key, version) in expired {
            // Re-checked under the lock: the key may have been rewritten since.
            let gone = self.index.remove_if(&*key, |stored_key, stored| {
                let still = stored.version == version && is_expired(stored.expiration, now);
                if still {
                    self.order.remove(stored_key);
                }
                still
            });
            removed += usize::from(gone.is_some());
        }
        removed
    }

    fn retire(&self) {
        self.retired.store(true, Ordering::SeqCst);
        self.index.clear();
        self.order.clear();
    }

    fn check_live(&self) -> Result<()> {
        if self.retired.load(Ordering::Relaxed) {
            return Err(KvError::NamespaceNotFound {
                name: "(deleted)".to_owned(),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl NamespaceStore for MemoryNamespace {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::atomic()
    }

    // Everything answers at once: the `Namespace` handle takes these and never awaits the
    // boxed futures below (which remain for callers of the trait itself).
    fn get_now(&self, key: &str) -> Option<Result<Option<Entry>>> {
        Some(Ok(self.get_sync(key)))
    }

    fn put_now(
        &self,
        key: &str,
        entry: NewEntry,
        mode: WriteMode,
    ) -> std::result::Result<Result<PutOutcome>, NewEntry> {
        Ok(self.put_sync(key, entry, mode))
    }

    fn delete_now(&self, key: &str, mode: WriteMode) -> Option<Result<DeleteOutcome>> {
        Some(Ok(self.delete_sync(key, mode)))
    }

    fn list_now(&self, options: &ListOptions) -> Option<Result<ListPage>> {
        Some(self.list_sync(options))
    }

    async fn get(&self, key: &str) -> Result<Option<Entry>> {
        Ok(self.get_sync(key))
    }

    async fn put(&self, key: &str, entry: NewEntry, mode: WriteMode) -> Result<PutOutcome> {
        self.put_sync(key, entry, mode)
    }

    async fn delete(&self, key: &str, mode: WriteMode) -> Result<DeleteOutcome> {
        Ok(self.delete_sync(key, mode))
    }

    async fn list(&self, options: &ListOptions) -> Result<ListPage> {
        self.list_sync(options)
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Entry>>> {
        Ok(keys.iter().map(|key| self.get_sync(key)).collect())
    }
}
