//! The read-through cache's own semantics: hits, staleness bounded by `cache_ttl`, own writes
//! seen at once, expiry, the size bound, and reads racing writes.
#![cfg(all(feature = "read-cache", feature = "memory"))]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kv_backends::memory::MemoryBackend;
use kv_backends::ReadCache;
use kv_core::decorator::Decorated;
use kv_core::{
    async_trait, BulkPut, Capabilities, DeleteOutcome, Entry, ListOptions, ListPage, ManualClock,
    Namespace, NamespaceStore, NewEntry, PutOptions, PutOutcome, Result, Store, WriteMode,
};
use tokio::sync::oneshot;

#[derive(Debug, Default)]
struct Probe {
    gets: AtomicUsize,
    /// When set, the next get signals `read` once it has read, then waits for `release`.
    hold: Mutex<Option<(oneshot::Sender<()>, oneshot::Receiver<()>)>>,
}

impl Probe {
    fn gets(&self) -> usize {
        self.gets.load(Ordering::SeqCst)
    }
}

/// A namespace that counts the reads reaching it and can hold one read after it has read.
#[derive(Debug)]
struct CountingNamespace {
    inner: Arc<dyn NamespaceStore>,
    probe: Arc<Probe>,
}

#[async_trait]
impl NamespaceStore for CountingNamespace {
    fn kind(&self) -> &'static str {
        "counting"
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn get(&self, key: &str) -> Result<Option<Entry>> {
        self.probe.gets.fetch_add(1, Ordering::SeqCst);
        let entry = self.inner.get(key).await?;
        let hold = self.probe.hold.lock().unwrap().take();
        if let Some((read, release)) = hold {
            let _ = read.send(());
            let _ = release.await;
        }
        Ok(entry)
    }
    async fn put(&self, key: &str, entry: NewEntry, mode: WriteMode) -> Result<PutOutcome> {
        self.inner.put(key, entry, mode).await
    }
    async fn delete(&self, key: &str, mode: WriteMode) -> Result<DeleteOutcome> {
        self.inner.delete(key, mode).await
    }
    async fn list(&self, options: &ListOptions) -> Result<ListPage> {
        self.inner.list(options).await
    }
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Entry>>> {
        self.probe.gets.fetch_add(keys.len(), Ordering::SeqCst);
        self.inner.get_many(keys).await
    }
}

struct Setup {
    clock: ManualClock,
    probe: Arc<Probe>,
    cache: ReadCache,
    /// Through the cache.
    cached: Namespace,
    /// Another writer: the same namespace without the cache.
    other: Namespace,
}

async fn setup(configure: impl FnOnce(kv_backends::ReadCacheBuilder) -> ReadCache) -> Setup {
    let clock = ManualClock::at_unix_secs(1_700_000_000);
    let memory = MemoryBackend::builder().clock(clock.shared()).build();
    let probe = Arc::new(Probe::default());
    let counted = probe.clone();
    let counting = Decorated::new(memory.clone(), move |inner| {
        Arc::new(CountingNamespace {
            inner,
            probe: counted.clone(),
        }) as Arc<dyn NamespaceStore>
    });
    let cache = configure(ReadCache::builder(counting));
    let cached = Store::new(cache.clone()).namespace("NS").await.unwrap();
    let other = Store::new(memory).namespace("NS").await.unwrap();
    assert_eq!(cached.id(), other.id());
    Setup {
        clock,
        probe,
        cache,
        cached,
        other,
    }
}

async fn default_setup() -> Setup {
    setup(|builder| builder.build()).await
}

#[tokio::test]
async fn repeated_reads_are_served_from_the_cache() {
    let s = default_setup().await;
    s.cached.put_text("k", "v").await.unwrap();
    for _ in 0..5 {
        assert_eq!(s.cached.get_text("k").await.unwrap().as_deref(), Some("v"));
    }
    assert_eq!(s.probe.gets(), 1, "one read reached the store");
    let entry = s.cached.get_entry("k").await.unwrap().unwrap();
    assert_eq!(&entry.value[..], b"v");
    assert_eq!(s.probe.gets(), 1);
    assert_eq!(s.cache.stats().hits, 5);
    assert_eq!(s.cache.stats().misses, 1);
}

#[tokio::test]
async fn absent_keys_are_cached_too() {
    let s = default_setup().await;
    assert_eq!(s.cached.get("missing").await.unwrap(), None);
    assert_eq!(s.cached.get("missing").await.unwrap(), None);
    assert_eq!(s.probe.gets(), 1);
}

#[tokio::test]
async fn other_writers_are_seen_after_cache_ttl() {
    let s = setup(|b| b.cache_ttl(Duration::from_secs(30)).build()).await;
    s.other.put_text("k", "old").await.unwrap();
    assert_eq!(
        s.cached.get_text("k").await.unwrap().as_deref(),
        Some("old")
    );
    assert_eq!(s.cached.get_text("later").await.unwrap(), None);
    s.other.put_text("k", "new").await.unwrap();
    s.other.put_text("later", "x").await.unwrap();
    s.clock.advance(Duration::from_millis(29_999));
    assert_eq!(
        s.cached.get_text("k").await.unwrap().as_deref(),
        Some("old"),
        "stale within cache_ttl"
    );
    assert_eq!(s.cached.get_text("later").await.unwrap(), None);
    s.clock.advance(Duration::from_millis(1));
    assert_eq!(
        s.cached.get_text("k").await.unwrap().as_deref(),
        Some("new"),
        "fresh once cache_ttl has passed"
    );
    assert_eq!(
        s.cached.get_text("later").await.unwrap().as_deref(),
        Some("x")
    );
    assert_eq!(s.probe.gets(), 4);
}

#[tokio::test]
async fn own_writes_are_seen_at_once() {
    let s = default_setup().await;
    s.other.put_text("k", "one").await.unwrap();
    s.other.put_text("gone", "x").await.unwrap();
    assert_eq!(
        s.cached.get_text("k").await.unwrap().as_deref(),
        Some("one")
    );
    assert_eq!(
        s.cached.get_text("gone").await.unwrap().as_deref(),
        Some("x")
    );
    assert_eq!(s.cached.get_text("new").await.unwrap(), None);

    s.cached.put_text("k", "two").await.unwrap();
    s.cached.delete("gone").await.unwrap();
    s.cached.put_text("new", "here").await.unwrap();
    assert_eq!(
        s.cached.get_text("k").await.unwrap().as_deref(),
        Some("two")
    );
    assert_eq!(s.cached.get_text("gone").await.unwrap(), None);
    assert_eq!(
        s.cached.get_text("new").await.unwrap().as_deref(),
        Some("here")
    );

    // Bulk writes and deletes too.
    let keys = ["b1", "b2", "b3"];
    assert!(s
        .cached
        .get_many(&keys)
        .await
        .unwrap()
        .iter()
        .all(Option::is_none));
    s.cached
        .put_many(keys.iter().map(|k| BulkPut::new(*k, "v")).collect())
        .await
        .unwrap();
    assert!(s
        .cached
        .get_many(&keys)
        .await
        .unwrap()
        .iter()
        .all(Option::is_some));
    s.cached.delete_many(&keys[..2]).await.unwrap();
    let got = s.cached.get_many(&keys).await.unwrap();
    assert_eq!(
        got.iter().map(Option::is_some).collect::<Vec<_>>(),
        [false, false, true]
    );
}

#[tokio::test]
async fn bulk_reads_use_and_fill_the_cache() {
    let s = default_setup().await;
    s.cached.put_text("a", "A").await.unwrap();
    s.cached.put_text("b", "B").await.unwrap();
    assert_eq!(s.cached.get_text("a").await.unwrap().as_deref(), Some("A"));
    assert_eq!(s.probe.gets(), 1);
    let got = s.cached.get_many(&["a", "b", "c", "b"]).await.unwrap();
    let values: Vec<Option<&[u8]>> = got
        .iter()
        .map(|e| e.as_ref().map(|e| &e.value[..]))
        .collect();
    assert_eq!(values, [Some(&b"A"[..]), Some(b"B"), None, Some(b"B")]);
    assert_eq!(s.probe.gets(), 3, "only b and c (once) were read");
    let again = s.cached.get_many(&["a", "b", "c"]).await.unwrap();
    assert_eq!(again.iter().filter(|e| e.is_some()).count(), 2);
    assert_eq!(s.probe.gets(), 3, "all three from the cache");
}

#[tokio::test]
async fn expired_entries_are_not_served() {
    let s = setup(|b| b.cache_ttl(Duration::from_secs(3600)).build()).await;
    let _ = s
        .other
        .put_with("k", "v", PutOptions::new().ttl(Duration::from_secs(60)))
        .await
        .unwrap();
    assert!(s.cached.get("k").await.unwrap().is_some());
    s.clock.advance(Duration::from_secs(59));
    assert!(
        s.cached.get("k").await.unwrap().is_some(),
        "cached, not expired"
    );
    assert_eq!(s.probe.gets(), 1);
    s.clock.advance(Duration::from_secs(1));
    assert_eq!(
        s.cached.get("k").await.unwrap(),
        None,
        "expired: not served"
    );
    assert_eq!(s.cached.get_many(&["k"]).await.unwrap()[0], None);
}

#[tokio::test]
async fn the_size_bound_holds() {
    let s = setup(|b| b.max_entries(50).build()).await;
    let items: Vec<BulkPut> = (0..500)
        .map(|i| BulkPut::new(format!("k{i:03}"), "v"))
        .collect();
    s.other.put_many(items).await.unwrap();
    for i in 0..500 {
        assert!(s.cached.get(&format!("k{i:03}")).await.unwrap().is_some());
        assert!(
            s.cache.cached_entries() <= 50,
            "{} cached",
            s.cache.cached_entries()
        );
    }
    assert!(s.cache.cached_entries() > 0);
}

#[tokio::test]
async fn large_values_are_read_through() {
    let s = setup(|b| b.max_entry_bytes(1024).build()).await;
    s.cached
        .put("big", Bytes::from(vec![1u8; 1025]))
        .await
        .unwrap();
    s.cached
        .put("small", Bytes::from(vec![1u8; 1024]))
        .await
        .unwrap();
    for _ in 0..3 {
        s.cached.get("big").await.unwrap().unwrap();
        s.cached.get("small").await.unwrap().unwrap();
    }
    assert_eq!(s.probe.gets(), 3 + 1);
}

#[tokio::test]
async fn a_failed_condition_drops_the_stale_entry() {
    let s = default_setup().await;
    s.other.put_text("counter", "1").await.unwrap();
    let stale = s.cached.get_entry("counter").await.unwrap().unwrap();
    s.other.put_text("counter", "2").await.unwrap();
    let outcome = s
        .cached
        .put_with(
            "counter",
            "2",
            PutOptions::new().only_if_version(stale.version),
        )
        .await
        .unwrap();
    assert_eq!(outcome, PutOutcome::ConditionFailed);
    assert_eq!(
        s.cached.get_text("counter").await.unwrap().as_deref(),
        Some("2"),
        "the next read is fresh"
    );
}

#[tokio::test]
async fn a_read_racing_a_write_is_not_cached() {
    let s = default_setup().await;
    s.cached.put_text("k", "old").await.unwrap();
    let (read_tx, read_rx) = oneshot::channel();
    let (release_tx, release_rx) = oneshot::channel();
    *s.probe.hold.lock().unwrap() = Some((read_tx, release_rx));
    let reader = {
        let ns = s.cached.clone();
        tokio::spawn(async move { ns.get_text("k").await.unwrap() })
    };
    read_rx.await.unwrap(); // the reader has read "old" from the store
    s.cached.put_text("k", "new").await.unwrap();
    release_tx.send(()).unwrap();
    assert_eq!(reader.await.unwrap().as_deref(), Some("old"));
    assert_eq!(
        s.cached.get_text("k").await.unwrap().as_deref(),
        Some("new"),
        "the racing read did not cache the old value"
    );
}

#[tokio::test]
async fn a_zero_ttl_disables_caching() {
    let s = setup(|b| b.cache_ttl(Duration::ZERO).build()).await;
    s.cached.put_text("k", "v").await.unwrap();
    for _ in 0..3 {
        s.cached.get("k").await.unwrap();
    }
    assert_eq!(s.probe.gets(), 3);
    assert_eq!(s.cache.cached_entries(), 0);
}

#[tokio::test]
async fn a_deleted_namespace_is_not_served_from_the_cache() {
    let s = default_setup().await;
    s.cached.put_text("k", "v").await.unwrap();
    assert!(s.cached.get("k").await.unwrap().is_some());
    let store = Store::new(s.cache.clone());
    assert!(store.delete_namespace("NS").await.unwrap());
    assert_eq!(s.cached.get("k").await.unwrap(), None);
    assert_eq!(s.cache.cached_entries(), 0);
}

#[tokio::test]
async fn hits_are_answered_on_the_fast_path() {
    // The counting store declines the synchronous fast path, like a remote store.
    let s = default_setup().await;
    s.cached.put_text("k", "v").await.unwrap();
    let raw = s.cached.raw();
    assert!(
        raw.get_now("k").is_none(),
        "a miss the inner store declines is left to the async read"
    );
    assert_eq!(s.probe.gets(), 0);
    assert_eq!(s.cache.stats().misses, 0, "a declined read is not counted");
    assert_eq!(s.cached.get_text("k").await.unwrap().as_deref(), Some("v"));
    assert_eq!(s.probe.gets(), 1);
    let hit = raw
        .get_now("k")
        .expect("a hit is answered at once")
        .unwrap();
    assert_eq!(&hit.expect("cached entry").value[..], b"v");
    assert_eq!(s.probe.gets(), 1, "the hit did not reach the store");
    assert_eq!(
        s.cache.stats(),
        kv_backends::ReadCacheStats { hits: 1, misses: 1 }
    );
}

#[tokio::test]
async fn a_store_answering_at_once_fills_and_drops_cached_answers_at_once() {
    let cache = ReadCache::new(MemoryBackend::new());
    let ns = Store::new(cache.clone()).namespace("NS").await.unwrap();
    let raw = ns.raw();
    // A miss read through the memory store's fast path, and cached ("absent").
    assert_eq!(raw.get_now("k").expect("answered at once").unwrap(), None);
    assert_eq!(raw.get_now("k").expect("answered at once").unwrap(), None);
    assert_eq!(cache.stats().misses, 1);
    assert_eq!(cache.stats().hits, 1);
    // A write the store answers at once drops the cached absence at once.
    let entry = NewEntry {
        value: Bytes::from_static(b"v"),
        metadata: None,
        expiration: None,
    };
    let written = raw.put_now("k", entry, WriteMode::Overwrite);
    assert!(matches!(written, Ok(Ok(PutOutcome::Written(_)))));
    let found = raw.get_now("k").expect("answered at once").unwrap();
    assert_eq!(&found.expect("the new value").value[..], b"v");
    // And so does a delete.
    let deleted = raw.delete_now("k", WriteMode::Overwrite);
    assert!(matches!(
        deleted,
        Some(Ok(DeleteOutcome::Deleted { existed: true }))
    ));
    assert_eq!(raw.get_now("k").expect("answered at once").unwrap(), None);
}
