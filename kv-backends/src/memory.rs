//! The in-memory backend: concurrent, ordered, gone when the process exits.
//!
//! Each namespace is a lock-free skip list ordered by key bytes, so a listing walks only the
//! page it returns and no lock guards the whole namespace. Writes to one key are serialized by
//! one of 64 striped mutexes, which makes compare-and-swap atomic without a global lock; no lock
//! is ever held across an `.await`. A write to a key that is already in the list rewrites its
//! entry in place (one search, no allocation for the key or the node), under a lock of that
//! entry alone, which a read holds only to copy the entry out. Expired entries are invisible at
//! once and removed by a background sweeper (or [`MemoryBackend::purge_expired`]).
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

use std::collections::hash_map::RandomState;
use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use crossbeam_skiplist::SkipMap;
use kv_core::{
    async_trait, collect_page, is_expired, list_start, new_namespace_id, Backend, Capabilities,
    DeleteOutcome, Entry, KeyInfo, KvError, ListOptions, ListPage, NamespaceInfo, NamespaceStore,
    NewEntry, PutOutcome, Result, SharedClock, SystemClock, Version, WriteMode,
};
use parking_lot::{Mutex, RwLock};
use serde_json::Value;

use crate::sweeper::{spawn_sweeper, DEFAULT_SWEEP_INTERVAL};

const WRITE_STRIPES: usize = 64;

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
            .map(|ns| ns.store.map.len())
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
#[derive(Debug)]
pub struct MemoryNamespace {
    /// Each entry behind its own lock: a write to an existing key replaces the contents in
    /// place (under the key's write stripe too), a read copies them out.
    map: SkipMap<Box<str>, RwLock<Stored>>,
    write_locks: Box<[Mutex<()>]>,
    /// A random seed for the stripe of a key.
    seed: u64,
    clock: SharedClock,
    versions: Arc<AtomicU64>,
    /// Set when the namespace is deleted: writes through old handles fail.
    retired: AtomicBool,
}

impl MemoryNamespace {
    fn new(clock: SharedClock, versions: Arc<AtomicU64>) -> Self {
        MemoryNamespace {
            map: SkipMap::new(),
            write_locks: (0..WRITE_STRIPES).map(|_| Mutex::new(())).collect(),
            seed: RandomState::new().build_hasher().finish(),
            clock,
            versions,
            retired: AtomicBool::new(false),
        }
    }

    /// The stripe of a key: a seeded multiply-rotate hash of its 8-byte words (keys that
    /// collide only share a lock that is never held across an `.await`, so a keyed hash as
    /// strong as SipHash would buy nothing here but its cost on every write).
    fn write_lock(&self, key: &str) -> &Mutex<()> {
        let mut hash = self.seed ^ key.len() as u64;
        for chunk in key.as_bytes().chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            hash = (hash.rotate_left(23) ^ u64::from_le_bytes(word))
                .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
        // Fold the last word's high bytes down before taking the high bits.
        let hash = (hash ^ (hash >> 32)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let stripe = (hash >> 32) as usize % self.write_locks.len();
        &self.write_locks[stripe]
    }

    fn next_version(&self) -> u64 {
        self.versions.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Whether an entry is expired; the clock is read only for entries that can expire, which
    /// keeps it off the hot path of the (common) entries without an expiration.
    fn is_expired(&self, stored: &Stored) -> bool {
        stored.expiration.is_some() && is_expired(stored.expiration, self.clock.now())
    }

    /// Writes `entry` under `mode`; call with the key's write lock held. One search of the
    /// list: an entry already there (live or expired) is checked and rewritten in place, so
    /// only a new key allocates (its node and its key).
    fn write(&self, key: &str, entry: NewEntry, mode: WriteMode) -> PutOutcome {
        match self.map.get(key) {
            Some(existing) => {
                let mut stored = existing.value().write();
                if mode.is_conditional() {
                    let current =
                        (!self.is_expired(&stored)).then(|| Version::from_raw(stored.version));
                    if !mode.allows(current) {
                        return PutOutcome::ConditionFailed;
                    }
                }
                let version = self.next_version();
                let old = std::mem::replace(&mut *stored, Stored::new(entry, version));
                drop(stored);
                // The old value is freed outside the entry's lock.
                drop(old);
                PutOutcome::Written(Version::from_raw(version))
            }
            None => {
                if !mode.allows(None) {
                    return PutOutcome::ConditionFailed;
                }
                let version = self.next_version();
                self.map
                    .insert(key.into(), RwLock::new(Stored::new(entry, version)));
                PutOutcome::Written(Version::from_raw(version))
            }
        }
    }

    fn purge_expired(&self) -> usize {
        let now = self.clock.now();
        let mut removed = 0;
        for item in self.map.iter() {
            if !is_expired(item.value().read().expiration, now) {
                continue;
            }
            let key = item.key();
            let _guard = self.write_lock(key).lock();
            // Re-check under the lock: the key may have been rewritten since.
            if let Some(current) = self.map.get(&**key) {
                if is_expired(current.value().read().expiration, now) {
                    current.remove();
                    removed += 1;
                }
            }
        }
        removed
    }

    fn retire(&self) {
        self.retired.store(true, Ordering::SeqCst);
        self.map.clear();
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

    async fn get(&self, key: &str) -> Result<Option<Entry>> {
        Ok(self.map.get(key).and_then(|e| {
            let stored = e.value().read();
            (!self.is_expired(&stored)).then(|| stored.to_entry())
        }))
    }

    async fn put(&self, key: &str, entry: NewEntry, mode: WriteMode) -> Result<PutOutcome> {
        self.check_live()?;
        let _guard = self.write_lock(key).lock();
        Ok(self.write(key, entry, mode))
    }

    async fn delete(&self, key: &str, mode: WriteMode) -> Result<DeleteOutcome> {
        let _guard = self.write_lock(key).lock();
        // One search: the entry found is the one checked and removed.
        let entry = self.map.get(key);
        let current = entry.as_ref().and_then(|e| {
            let stored = e.value().read();
            (!self.is_expired(&stored)).then(|| Version::from_raw(stored.version))
        });
        if !mode.allows(current) {
            return Ok(DeleteOutcome::ConditionFailed);
        }
        if let Some(entry) = entry {
            entry.remove();
        }
        Ok(DeleteOutcome::Deleted {
            existed: current.is_some(),
        })
    }

    async fn list(&self, options: &ListOptions) -> Result<ListPage> {
        let prefix = options.prefix.as_deref().unwrap_or("");
        let start = list_start(prefix, options.cursor.as_deref())?;
        let start = match &start {
            Bound::Included(key) => Bound::Included(key.as_str()),
            Bound::Excluded(key) => Bound::Excluded(key.as_str()),
            Bound::Unbounded => Bound::Unbounded,
        };
        let items = self
            .map
            .range::<str, _>((start, Bound::Unbounded))
            .map(|e| {
                let stored = e.value().read();
                Ok(KeyInfo {
                    name: e.key().to_string(),
                    expiration: stored.expiration,
                    metadata: stored.metadata.as_deref().cloned(),
                })
            });
        collect_page(items, prefix, options.limit, self.clock.now())
    }
}
