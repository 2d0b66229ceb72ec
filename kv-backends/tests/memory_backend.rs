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
