//! Memory-backend behaviour beyond the shared contract: physical removal of expired entries.
#![cfg(feature = "memory")]

use std::time::Duration;

use kv_backends::memory::MemoryBackend;
use kv_core::{ManualClock, PutOptions, Store};

fn ttl(secs: u64) -> PutOptions {
    PutOptions::new().ttl(Duration::from_secs(secs))
}

#[tokio::test(start_paused = true)]
async fn sweeper_removes_expired_entries_in_the_background() {
    let clock = ManualClock::at_unix_secs(1_700_000_000);
    let backend = MemoryBackend::builder()
        .clock(clock.shared())
        .sweep_interval(Duration::from_secs(5))
        .build();
    let store = Store::new(backend.clone());
    let ns = store.namespace("n").await.unwrap();
    for i in 0..100 {
        let options = if i < 60 { ttl(60) } else { ttl(600) };
        let _ = ns.put_with(&format!("k{i}"), "v", options).await.unwrap();
    }
    assert_eq!(backend.stored_entries(), 100);

    // Nothing has expired yet: a sweep removes nothing.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(backend.stored_entries(), 100);

    // Expired on the store's clock: hidden at once, removed by the next sweep.
    clock.advance(Duration::from_secs(60));
    assert_eq!(ns.get("k0").await.unwrap(), None);
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(backend.stored_entries(), 40);
    assert_eq!(ns.get_text("k99").await.unwrap().as_deref(), Some("v"));
}

#[tokio::test]
async fn purge_expired_counts_what_it_removed() {
    let clock = ManualClock::at_unix_secs(1_700_000_000);
    let backend = MemoryBackend::builder().clock(clock.shared()).build();
    let store = Store::new(backend.clone());
    let a = store.namespace("a").await.unwrap();
    let b = store.namespace("b").await.unwrap();
    let _ = a.put_with("x", "v", ttl(60)).await.unwrap();
    let _ = b.put_with("y", "v", ttl(120)).await.unwrap();
    b.put_text("z", "v").await.unwrap();
    assert_eq!(backend.purge_expired(), 0);
    clock.advance(Duration::from_secs(60));
    assert_eq!(backend.purge_expired(), 1);
    clock.advance(Duration::from_secs(60));
    assert_eq!(backend.purge_expired(), 1);
    assert_eq!(backend.stored_entries(), 1);
}

#[tokio::test]
async fn a_rewritten_key_is_not_purged() {
    let clock = ManualClock::at_unix_secs(1_700_000_000);
    let backend = MemoryBackend::builder().clock(clock.shared()).build();
    let ns = Store::new(backend.clone()).namespace("n").await.unwrap();
    let _ = ns.put_with("k", "old", ttl(60)).await.unwrap();
    clock.advance(Duration::from_secs(61));
    ns.put_text("k", "new").await.unwrap();
    assert_eq!(backend.purge_expired(), 0);
    assert_eq!(ns.get_text("k").await.unwrap().as_deref(), Some("new"));
}

#[tokio::test]
async fn deleted_namespace_handles_see_nothing() {
    let backend = MemoryBackend::new();
    let store = Store::new(backend.clone());
    let ns = store.namespace("gone").await.unwrap();
    ns.put_text("k", "v").await.unwrap();
    assert!(store.delete_namespace("gone").await.unwrap());
    assert!(!store.delete_namespace("gone").await.unwrap());
    assert_eq!(ns.get("k").await.unwrap(), None);
    assert!(store.list_namespaces().await.unwrap().is_empty());
}

/// Every key a listing returns, following the cursors.
async fn listed(ns: &kv_core::Namespace) -> Vec<String> {
    use futures::TryStreamExt;
    ns.list_all("")
        .map_ok(|info| info.name)
        .try_collect()
        .await
        .unwrap()
}

/// The hash index (point reads) and the ordered index (listings) agree after writers,
/// conditional writers and deleters race on the same keys from two threads.
#[test]
fn hash_and_ordered_indexes_agree_after_racing_writers() {
    use kv_core::WriteMode;
    use std::sync::Arc;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = Store::new(MemoryBackend::new());
        let ns = store.namespace("race").await.unwrap();
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let conflicts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let racers: Vec<_> = (0..2u64)
            .map(|racer| {
                let ns = ns.clone();
                let barrier = barrier.clone();
                let conflicts = conflicts.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    for round in 0..4000u64 {
                        let key = format!("k{:03}", (round * 7 + racer * 3) % 64);
                        match (round + racer) % 4 {
                            0 => ns.delete(&key).await.unwrap(),
                            1 => {
                                let created = ns
                                    .put_with(&key, "c", PutOptions::new().only_if_absent())
                                    .await
                                    .unwrap();
                                if created == kv_core::PutOutcome::ConditionFailed {
                                    conflicts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                }
                            }
                            2 => {
                                if let Some(entry) = ns.get_entry(&key).await.unwrap() {
                                    let _ = ns
                                        .delete_with(&key, WriteMode::OnlyIfVersion(entry.version))
                                        .await
                                        .unwrap();
                                }
                            }
                            _ => {
                                ns.put_text(&key, "w").await.unwrap();
                            }
                        }
                        if round % 64 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                })
            })
            .collect();
        for racer in racers {
            racer.await.unwrap();
        }
        assert!(
            conflicts.load(std::sync::atomic::Ordering::Relaxed) > 0,
            "the racers collided"
        );
        let mut found = Vec::new();
        for i in 0..64 {
            let key = format!("k{i:03}");
            if ns.get(&key).await.unwrap().is_some() {
                found.push(key);
            }
        }
        assert_eq!(listed(&ns).await, found, "listing and point reads agree");
    });
}

/// A cursor stays valid while keys change: the next page starts after the last key returned,
/// shows keys created after it since, and skips keys deleted since.
#[tokio::test]
async fn a_cursor_survives_writes_and_deletes() {
    let store = Store::new(MemoryBackend::new());
    let ns = store.namespace("paging").await.unwrap();
    for i in (0..20).step_by(2) {
        ns.put_text(&format!("k{i:02}"), "v").await.unwrap();
    }
    let first = ns
        .list(&kv_core::ListOptions::new().limit(3))
        .await
        .unwrap();
    let names: Vec<_> = first.keys.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(names, ["k00", "k02", "k04"]);
    // The last key returned is deleted, a key before it and keys after it are created, one
    // after it is deleted.
    ns.delete("k04").await.unwrap();
    ns.put_text("k01", "v").await.unwrap();
    ns.put_text("k05", "v").await.unwrap();
    ns.delete("k08").await.unwrap();
    let rest = ns
        .list(
            &kv_core::ListOptions::new()
                .limit(100)
                .cursor(first.cursor.expect("more to come")),
        )
        .await
        .unwrap();
    let names: Vec<_> = rest.keys.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(
        names,
        ["k05", "k06", "k10", "k12", "k14", "k16", "k18"],
        "after the cursor: new keys shown, deleted ones not, nothing before it"
    );
    assert!(rest.list_complete);
}
