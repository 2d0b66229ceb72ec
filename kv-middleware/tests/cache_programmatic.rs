//! The programmatic cache on the memory and the file backend, with a manual clock.
#![cfg(feature = "cache")]

#[macro_use]
mod cache_support;

use kv_core::testing::{Fault, Ops};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cache_support::Fixture;
use kv_middleware::cache::{Cache, CacheError, CacheEvent, Source, Ttl};
use tokio::sync::Semaphore;

backend_tests!(
    fifty_concurrent_callers_run_the_fetcher_once,
    fresh_stale_expired_transitions,
    refresh_survives_the_caller,
    fetch_survives_a_dropped_caller,
    stale_if_error_with_backoff,
    fetch_timeout,
    invalidate_and_invalidate_prefix,
    warm_uses_one_bulk_get_one_loader_call_one_bulk_put,
    json_values,
    failing_store_still_fetches,
    store_ttl_is_at_least_the_minimum,
);

/// A fetcher factory that counts its runs and returns `"{name}{run}"`.
#[derive(Clone, Default)]
struct Fetcher {
    runs: Arc<AtomicUsize>,
}

impl Fetcher {
    fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }

    fn ok(
        &self,
        name: &'static str,
    ) -> impl FnOnce() -> std::future::Ready<Result<Bytes, std::io::Error>> + Send + 'static {
        let runs = self.runs.clone();
        move || {
            let n = runs.fetch_add(1, Ordering::SeqCst) + 1;
            std::future::ready(Ok(Bytes::from(format!("{name}{n}"))))
        }
    }

    fn failing(
        &self,
    ) -> impl FnOnce() -> std::future::Ready<Result<Bytes, std::io::Error>> + Send + 'static {
        let runs = self.runs.clone();
        move || {
            runs.fetch_add(1, Ordering::SeqCst);
            std::future::ready(Err(std::io::Error::other("database down")))
        }
    }
}

fn windows() -> Ttl {
    Ttl::fresh(Duration::from_secs(10))
        .stale_while_revalidate(Duration::from_secs(20))
        .stale_if_error(Duration::from_secs(60))
}

async fn fifty_concurrent_callers_run_the_fetcher_once(fx: Fixture) {
    let cache = Cache::new(fx.ns.clone());
    let runs = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(0));
    let callers: Vec<_> = (0..50)
        .map(|_| {
            let cache = cache.clone();
            let runs = runs.clone();
            let gate = gate.clone();
            tokio::spawn(async move {
                cache
                    .get_or_fetch_with_source("herd", windows(), move || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        let _permit = gate.acquire().await;
                        Ok::<_, std::io::Error>(Bytes::from_static(b"value"))
                    })
                    .await
            })
        })
        .collect();
    cache_support::eventually(|| runs.load(Ordering::SeqCst) == 1).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    gate.add_permits(100);
    let mut fetched = 0;
    for caller in callers {
        let got = caller.await.unwrap().unwrap();
        assert_eq!(&got.value[..], b"value");
        fetched += usize::from(got.source == Source::Fetched);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the fetcher ran once");
    // Normally one leader; a caller whose read raced the store write may lead a second flight
    // that finds the value stored and runs nothing.
    assert!(fetched >= 1);
    let stats = cache.stats();
    assert_eq!(stats.misses + stats.coalesced + stats.hits, 50);
}

async fn fresh_stale_expired_transitions(fx: Fixture) {
    let cache = Cache::new(fx.ns.clone()).with_key_prefix("t:");
    let mut events = cache.subscribe();
    let f = Fetcher::default();
    let get = |name| cache.get_or_fetch_with_source("k", windows(), f.ok(name));

    let got = get("a").await.unwrap();
    assert_eq!((&got.value[..], got.source), (&b"a1"[..], Source::Fetched));
    fx.advance(9);
    let got = get("b").await.unwrap();
    assert_eq!((&got.value[..], got.source), (&b"a1"[..], Source::Fresh));
    assert_eq!(f.runs(), 1);

    // Stale: the old value at once, a background refresh behind it.
    fx.advance(2);
    let got = get("c").await.unwrap();
    assert_eq!((&got.value[..], got.source), (&b"a1"[..], Source::Stale));
    assert_eq!(
        events.recv().await.unwrap(),
        CacheEvent::Refreshed { key: "t:k".into() }
    );
    let got = get("d").await.unwrap();
    assert_eq!((&got.value[..], got.source), (&b"c2"[..], Source::Fresh));

    // Past stale-while-revalidate, within stale-if-error: fetched in the request.
    fx.advance(40);
    let got = get("e").await.unwrap();
    assert_eq!((&got.value[..], got.source), (&b"e3"[..], Source::Fetched));

    // Past everything: fetched.
    fx.advance(100);
    let got = get("f").await.unwrap();
    assert_eq!((&got.value[..], got.source), (&b"f4"[..], Source::Fetched));
    assert_eq!(
        cache.peek("k").await.unwrap().unwrap().source,
        Source::Fresh
    );
    assert_eq!(fx.keys().await, vec!["t:k".to_owned()]);
}

async fn refresh_survives_the_caller(fx: Fixture) {
    let cache = Cache::new(fx.ns.clone());
    let mut events = cache.subscribe();
    cache.set("k", "old", windows()).await.unwrap();
    fx.advance(15);
    let gate = Arc::new(Semaphore::new(0));
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let fetch = {
        let gate = gate.clone();
        move || async move {
            let _ = started_tx.send(());
            let _permit = gate.acquire().await;
            Ok::<_, std::io::Error>(Bytes::from_static(b"new"))
        }
    };
    // The caller gets the stale value and is gone before the refresh finishes.
    let got = cache
        .get_or_fetch_with_source("k", windows(), fetch)
        .await
        .unwrap();
    assert_eq!((&got.value[..], got.source), (&b"old"[..], Source::Stale));
    drop(got);
    started_rx.await.unwrap();
    assert_eq!(&cache.peek("k").await.unwrap().unwrap().value[..], b"old");
    gate.add_permits(1);
    assert_eq!(
        events.recv().await.unwrap(),
        CacheEvent::Refreshed { key: "k".into() }
    );
    let now = cache.peek("k").await.unwrap().unwrap();
    assert_eq!((&now.value[..], now.source), (&b"new"[..], Source::Fresh));
}

async fn fetch_survives_a_dropped_caller(fx: Fixture) {
    let cache = Cache::new(fx.ns.clone());
    let gate = Arc::new(Semaphore::new(0));
    let runs = Arc::new(AtomicUsize::new(0));
    let fetch = {
        let (gate, runs) = (gate.clone(), runs.clone());
        move || async move {
            runs.fetch_add(1, Ordering::SeqCst);
            let _permit = gate.acquire().await;
            Ok::<_, std::io::Error>(Bytes::from_static(b"loaded"))
        }
    };
    // The caller gives up (its future is dropped) while the fetcher runs.
    let caller = cache.get_or_fetch("slow", windows(), fetch);
    assert!(tokio::time::timeout(Duration::from_millis(30), caller)
        .await
        .is_err());
    cache_support::eventually(|| runs.load(Ordering::SeqCst) == 1).await;
    gate.add_permits(1);
    // The next caller gets the first fetcher's value (waiting on it, or from the store).
    let f = Fetcher::default();
    let got = cache
        .get_or_fetch("slow", windows(), f.ok("never"))
        .await
        .unwrap();
    assert_eq!(&got[..], b"loaded");
    assert_eq!(f.runs(), 0);
    cache_support::eventually(|| fx.faults.counts().puts == 1).await;
}

async fn stale_if_error_with_backoff(fx: Fixture) {
    let cache =
        Cache::new(fx.ns.clone()).with_backoff(Duration::from_secs(5), Duration::from_secs(5));
    let f = Fetcher::default();
    cache.set("k", "good", windows()).await.unwrap();

    // Within stale-if-error the failing fetcher is run, and the stale value served.
    fx.advance(35);
    let got = cache
        .get_or_fetch_with_source("k", windows(), f.failing())
        .await
        .unwrap();
    assert_eq!(
        (&got.value[..], got.source),
        (&b"good"[..], Source::StaleIfError)
    );
    assert_eq!(f.runs(), 1);
    // Backing off: no fetcher run at all.
    let got = cache
        .get_or_fetch_with_source("k", windows(), f.failing())
        .await
        .unwrap();
    assert_eq!(got.source, Source::StaleIfError);
    assert_eq!(f.runs(), 1);
    fx.advance(5);
    cache
        .get_or_fetch("k", windows(), f.failing())
        .await
        .unwrap();
    assert_eq!(f.runs(), 2);

    // A failing background refresh announces itself and backs off too.
    let mut events = cache.subscribe();
    cache.set("s", "stale", windows()).await.unwrap();
    fx.advance(15);
    let got = cache
        .get_or_fetch_with_source("s", windows(), f.failing())
        .await
        .unwrap();
    assert_eq!(got.source, Source::Stale);
    let event = events.recv().await.unwrap();
    assert!(
        matches!(event, CacheEvent::RefreshFailed { ref key, .. } if key == "s"),
        "{event:?}"
    );
    assert_eq!(f.runs(), 3);
    cache
        .get_or_fetch("s", windows(), f.failing())
        .await
        .unwrap();
    assert_eq!(f.runs(), 3, "no refresh while backing off");

    // Past the window, the error comes through.
    fx.advance(70);
    let error = cache
        .get_or_fetch("k", windows(), f.failing())
        .await
        .unwrap_err();
    assert!(
        matches!(error, CacheError::Fetch { ref key, .. } if key == "k"),
        "{error:?}"
    );
    assert!(error.to_string().contains("database down"));
}

async fn fetch_timeout(fx: Fixture) {
    let cache = Cache::new(fx.ns.clone()).with_fetch_timeout(Duration::from_millis(20));
    let error = cache
        .get_or_fetch("slow", windows(), || async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok::<_, std::io::Error>(Bytes::new())
        })
        .await
        .unwrap_err();
    assert!(matches!(error, CacheError::Timeout { .. }), "{error:?}");
}

async fn invalidate_and_invalidate_prefix(fx: Fixture) {
    let cache = Cache::new(fx.ns.clone()).with_key_prefix("app:");
    for key in ["user:1", "user:2", "org:1"] {
        cache.set(key, "x", windows()).await.unwrap();
    }
    cache.invalidate("org:1").await.unwrap();
    assert!(cache.peek("org:1").await.unwrap().is_none());
    assert_eq!(cache.invalidate_prefix("user:").await.unwrap(), 2);
    assert!(fx.keys().await.is_empty());
    let f = Fetcher::default();
    cache
        .get_or_fetch("user:1", windows(), f.ok("u"))
        .await
        .unwrap();
    assert_eq!(f.runs(), 1);
}

async fn warm_uses_one_bulk_get_one_loader_call_one_bulk_put(fx: Fixture) {
    let cache = Cache::new(fx.ns.clone());
    cache.set("a", "fresh", windows()).await.unwrap();
    cache.set("old", "stale", windows()).await.unwrap();
    fx.advance(11);
    cache.set("a", "fresh", windows()).await.unwrap();
    let gets = fx.faults.counts().get_manys;
    let puts = fx.faults.counts().put_manys;
    let calls = AtomicUsize::new(0);
    let report = cache
        .warm(&["a", "b", "c", "old", "b"], windows(), |missing| {
            calls.fetch_add(1, Ordering::SeqCst);
            assert_eq!(missing, vec!["b", "c", "old"]);
            async move {
                Ok::<_, std::io::Error>(vec![
                    ("b".to_owned(), Bytes::from_static(b"B")),
                    ("old".to_owned(), Bytes::from_static(b"O")),
                    ("unasked".to_owned(), Bytes::from_static(b"?")),
                ])
            }
        })
        .await
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(fx.faults.counts().get_manys - gets, 1, "one bulk get");
    assert_eq!(fx.faults.counts().put_manys - puts, 1, "one bulk put");
    assert_eq!((report.requested, report.fresh, report.loaded), (4, 1, 2));
    assert_eq!(report.not_found, vec!["c".to_owned()]);
    assert!(report.stored);
    assert_eq!(&cache.peek("b").await.unwrap().unwrap().value[..], b"B");
    assert!(cache.peek("unasked").await.unwrap().is_none());

    // Everything fresh: no loader call.
    let report = cache
        .warm(&["a", "b"], windows(), |_| async {
            Err::<Vec<(String, Bytes)>, _>(std::io::Error::other("not called"))
        })
        .await
        .unwrap();
    assert_eq!(report.fresh, 2);

    // More than 100 keys: one bulk get per 100, still one loader call.
    let keys: Vec<String> = (0..250).map(|i| format!("k{i}")).collect();
    let gets = fx.faults.counts().get_manys;
    let report = cache
        .warm_json(&keys, windows(), |missing| async move {
            Ok::<_, std::io::Error>(missing.into_iter().map(|k| (k, 1u32)))
        })
        .await
        .unwrap();
    assert_eq!(report.loaded, 250);
    assert_eq!(fx.faults.counts().get_manys - gets, 3);

    // A failing loader is an error.
    let error = cache
        .warm(&["zz"], windows(), |_| async {
            Err::<Vec<(String, Bytes)>, _>(std::io::Error::other("loader down"))
        })
        .await
        .unwrap_err();
    assert!(matches!(error, CacheError::Fetch { .. }));
}

async fn json_values(fx: Fixture) {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct User {
        name: String,
    }
    let cache = Cache::new(fx.ns.clone());
    let user = cache
        .get_or_fetch_json("u", windows(), || async {
            Ok::<_, std::io::Error>(User { name: "Ada".into() })
        })
        .await
        .unwrap();
    assert_eq!(user.name, "Ada");
    let again: User = cache
        .get_or_fetch_json("u", windows(), || async {
            Ok::<_, std::io::Error>(User {
                name: "Grace".into(),
            })
        })
        .await
        .unwrap();
    assert_eq!(again.name, "Ada");

    // A stored value of another shape counts as missing.
    cache.set_json("u", &[1, 2, 3], windows()).await.unwrap();
    let got = cache
        .get_or_fetch_json_with_source("u", windows(), || async {
            Ok::<_, std::io::Error>(User { name: "Lin".into() })
        })
        .await
        .unwrap();
    assert_eq!(
        (got.value.name.as_str(), got.source),
        ("Lin", Source::Fetched)
    );
}

async fn failing_store_still_fetches(fx: Fixture) {
    let cache = Cache::new(fx.ns.clone()).with_store_timeout(Duration::from_millis(50));
    let f = Fetcher::default();
    fx.faults.clear().always(Ops::All, Fault::Error);
    let got = cache
        .get_or_fetch_with_source("k", windows(), f.ok("v"))
        .await
        .unwrap();
    assert_eq!((&got.value[..], got.source), (&b"v1"[..], Source::Fetched));
    fx.faults.clear();
    fx.faults.always(Ops::All, Fault::Hang);
    let got = cache.get_or_fetch("k", windows(), f.ok("v")).await.unwrap();
    assert_eq!(&got[..], b"v2");
    fx.faults.clear();
    assert!(cache.stats().store_errors >= 4, "{:?}", cache.stats());
    // A key the store refuses is fetched every time, never an error.
    let long = "k".repeat(600);
    let got = cache
        .get_or_fetch(&long, windows(), f.ok("v"))
        .await
        .unwrap();
    assert_eq!(&got[..], b"v3");
}

async fn store_ttl_is_at_least_the_minimum(fx: Fixture) {
    let cache = Cache::new(fx.ns.clone());
    cache
        .set("short", "x", Duration::from_secs(1))
        .await
        .unwrap();
    cache.set("long", "x", windows()).await.unwrap();
    let short = fx.ns.get_entry("short").await.unwrap().unwrap();
    let long = fx.ns.get_entry("long").await.unwrap().unwrap();
    let start = cache_support::START;
    assert_eq!(short.expiration, Some(start + 60));
    assert_eq!(long.expiration, Some(start + 70));
    // Checked on read: stale after 1 s although the store keeps it for 60.
    fx.advance(2);
    assert!(cache.peek("short").await.unwrap().is_none());
}
