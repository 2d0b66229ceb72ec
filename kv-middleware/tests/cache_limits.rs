//! What a client can make the HTTP cache store is bounded: long URLs and unknown hosts bypass
//! it, the query can be reduced, and the namespace holds a bounded number of entries and bytes
//! however many distinct URLs arrive, from one process or two. On the memory and the file
//! backend (the bound on Redis too), with a manual clock.
#![cfg(all(feature = "cache", feature = "axum"))]

#[macro_use]
mod cache_support;

use std::time::Duration;

use axum::body::Body;
use axum::Router;
use cache_support::{app, cache_control, Fixture, Origin, Script};
use http::{Request, StatusCode};
use kv_core::testing::{Fault, Ops};
use kv_middleware::cache::{CacheLayer, OtherHosts, QueryKey};
use tower::ServiceExt;

backend_tests!(
    long_queries_bypass_and_store_nothing,
    huge_and_many_hosts_are_bounded,
    query_ignore_allow_list_and_sorting_share_entries,
    entry_bound_holds_after_ten_times_as_many_urls,
    byte_bound_holds,
    two_processes_share_one_bound,
    a_failing_trim_never_fails_a_request,
);

/// The bound over Redis too, the store processes usually share.
mod redis {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn entry_bound_holds_after_ten_times_as_many_urls() {
        super::entry_bound_holds_after_ten_times_as_many_urls(
            super::cache_support::Fixture::redis().await,
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_processes_share_one_bound() {
        super::two_processes_share_one_bound(super::cache_support::Fixture::redis().await).await;
    }
}

/// Sends a GET for `uri` to `host`; the status and `Cache-Status`.
async fn get(app: &Router, uri: &str, host: &str) -> (StatusCode, String) {
    let request = Request::get(uri)
        .header("host", host)
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let cache_status = response.headers()["cache-status"]
        .to_str()
        .unwrap()
        .to_owned();
    let _ = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, cache_status)
}

/// Waits (up to 5 s) until the namespace holds at most `max` entries, the background trims
/// having run; returns the keys.
async fn settled(fx: &Fixture, max: usize) -> Vec<String> {
    for _ in 0..1000 {
        let keys = fx.keys().await;
        if keys.len() <= max {
            return keys;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!(
        "the namespace still holds {} entries, more than {max}",
        fx.keys().await.len()
    );
}

/// The stored keys and the layer's statistics once no trim is deleting any more: the same
/// keys listed before and after reading the statistics, and `written` = stored + evicted.
async fn quiesced(
    fx: &Fixture,
    layer: &CacheLayer,
    written: u64,
) -> (Vec<String>, kv_middleware::cache::CacheStats) {
    for _ in 0..2000 {
        let before = fx.keys().await;
        let stats = layer.stats();
        let after = fx.keys().await;
        if before == after && before.len() as u64 + stats.evictions == written {
            return (after, stats);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("trims never settled: {:?}", layer.stats());
}

/// The attack: 200 requests, each with its own 60 KB query, used to grow the store by 60 KB
/// each. Now they reach the origin and nothing is stored.
async fn long_queries_bypass_and_store_nothing(fx: Fixture) {
    let origin = Origin::new(cache_control("max-age=60"));
    let layer = CacheLayer::new(fx.ns.clone());
    let app = app(&origin, layer.clone());
    for i in 0..200 {
        let uri = format!("/search?q={i}&pad={}", "x".repeat(60_000));
        let (status, cache_status) = get(&app, &uri, "example.com").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            cache_status,
            "kv; fwd=bypass; fwd-status=200; detail=url-too-long"
        );
    }
    assert_eq!(origin.calls(), 200);
    assert!(fx.keys().await.is_empty(), "nothing stored");
    assert_eq!((layer.stats().bypassed, layer.stats().stored), (200, 0));

    // Up to the cap (2 KiB of path, query and host) a URL is cached as before.
    let fits = format!("/search?q={}", "y".repeat(2048 - 10 - 11));
    assert_eq!(fits.len() + "example.com".len(), 2048);
    let (_, first) = get(&app, &fits, "example.com").await;
    assert!(first.ends_with("stored; ttl=60"), "{first}");
    let (_, second) = get(&app, &fits, "example.com").await;
    assert_eq!(second, "kv; hit; ttl=60");
    let over = format!("{fits}z");
    let (_, third) = get(&app, &over, "example.com").await;
    assert!(third.ends_with("detail=url-too-long"), "{third}");
    // Every recorded whole key is bounded: the one entry's key is short.
    assert_eq!(fx.keys().await.len(), 1);
    assert!(fx.keys().await[0].len() <= 512);

    // The cap is a setting.
    let app = self::app(
        &origin,
        CacheLayer::new(fx.ns.clone()).with_max_url_size(64 * 1024),
    );
    let uri = format!("/search?pad={}", "x".repeat(60_000));
    let (_, cache_status) = get(&app, &uri, "example.com").await;
    assert!(cache_status.ends_with("stored; ttl=60"), "{cache_status}");
}

/// The attack: 100 requests with their own 300 KB `Host` each; and many short hosts. By
/// default a long host exceeds the URL cap; with an allow-list, other hosts bypass or share
/// one host's entries.
async fn huge_and_many_hosts_are_bounded(fx: Fixture) {
    let origin = Origin::new(cache_control("max-age=60"));
    let app = app(&origin, CacheLayer::new(fx.ns.clone()));
    for i in 0..100 {
        let host = format!("h{i}{}.example.com", "h".repeat(300_000));
        let (status, cache_status) = get(&app, "/page", &host).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            cache_status.ends_with("detail=url-too-long"),
            "{cache_status}"
        );
    }
    assert!(fx.keys().await.is_empty(), "nothing stored");

    // An allow-list; other hosts bypass (the default policy).
    let listed =
        CacheLayer::new(fx.ns.clone()).with_allowed_hosts(["Example.com", "example.com:8080"]);
    let app = self::app(&origin, listed.clone());
    for i in 0..100 {
        let (status, cache_status) = get(&app, "/page", &format!("host{i}.test")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            cache_status,
            "kv; fwd=bypass; fwd-status=200; detail=host-not-allowed"
        );
    }
    assert!(
        fx.keys().await.is_empty(),
        "nothing stored for unlisted hosts"
    );
    // Case does not matter; the port is part of the name.
    assert!(get(&app, "/page", "EXAMPLE.COM").await.1.contains("stored"));
    assert_eq!(get(&app, "/page", "example.com").await.1, "kv; hit; ttl=60");
    assert!(get(&app, "/page", "example.com:8080")
        .await
        .1
        .contains("stored"));
    assert!(get(&app, "/page", "example.com:9999")
        .await
        .1
        .ends_with("host-not-allowed"));
    assert_eq!(
        fx.keys().await,
        vec![
            "/page#GET@example.com".to_owned(),
            "/page#GET@example.com:8080".to_owned()
        ]
    );

    // Other hosts keyed as one fixed host: 100 hosts, one entry, one origin call.
    let before = origin.calls();
    let fixed = listed.with_other_hosts(OtherHosts::KeyAs("Default.example".into()));
    let app = self::app(&origin, fixed);
    for i in 0..100 {
        get(&app, "/other", &format!("host{i}.test")).await;
    }
    assert_eq!(origin.calls() - before, 1);
    let keys = fx.keys().await;
    assert!(keys.contains(&"/other#GET@default.example".to_owned()));
    assert_eq!(keys.len(), 3);
}

/// Query handling: ignoring it, an allow-list of parameters, and sorting all make
/// differently spelled URLs share one entry, and purges reduce their target alike.
async fn query_ignore_allow_list_and_sorting_share_entries(fx: Fixture) {
    let origin = Origin::new(cache_control("max-age=60"));
    let host = "example.com";

    let ignore = CacheLayer::new(fx.ns.clone())
        .with_key_prefix("i:")
        .with_query(QueryKey::ignore());
    let app = app(&origin, ignore);
    for i in 0..50 {
        get(&app, &format!("/p?utm={i}&pad={}", "x".repeat(1000)), host).await;
    }
    assert_eq!(origin.calls(), 1, "one entry for every query");

    let only = CacheLayer::new(fx.ns.clone())
        .with_key_prefix("o:")
        .with_query(QueryKey::only(["page"]));
    let app = self::app(&origin, only.clone());
    let before = origin.calls();
    for i in 0..50 {
        get(&app, &format!("/l?page=1&utm={i}"), host).await;
    }
    assert_eq!(origin.calls() - before, 1, "utm is not keyed");
    get(&app, "/l?page=2", host).await;
    // An encoded spelling of a kept name is kept, so it cannot be served page 1.
    get(&app, "/l?pa%67e=3&utm=1", host).await;
    assert_eq!(origin.calls() - before, 3);

    let sorted = CacheLayer::new(fx.ns.clone())
        .with_key_prefix("s:")
        .with_query(QueryKey::keep().sorted());
    let app = self::app(&origin, sorted);
    let before = origin.calls();
    get(&app, "/s?a=1&b=2", host).await;
    assert_eq!(get(&app, "/s?b=2&a=1", host).await.1, "kv; hit; ttl=60");
    assert_eq!(get(&app, "/s?b=2&&a=1", host).await.1, "kv; hit; ttl=60");
    get(&app, "/s?a=2&b=1", host).await;
    assert_eq!(origin.calls() - before, 2);

    let mut keys = fx.keys().await;
    keys.sort();
    assert_eq!(
        keys,
        vec![
            "i:/p#GET@example.com",
            "o:/l?pa%67e=3#GET@example.com",
            "o:/l?page=1#GET@example.com",
            "o:/l?page=2#GET@example.com",
            "s:/s?a=1&b=2#GET@example.com",
            "s:/s?a=2&b=1#GET@example.com",
        ]
    );
    // A purge names the URL as clients spell it.
    assert_eq!(only.purge("/l?utm=9&page=1").await.unwrap(), 1);
    assert!(!fx
        .keys()
        .await
        .contains(&"o:/l?page=1#GET@example.com".to_owned()));
}

/// The namespace bound: 10x as many distinct URLs as the bound leaves at most the bound, the
/// oldest gone and the newest kept.
async fn entry_bound_holds_after_ten_times_as_many_urls(fx: Fixture) {
    let origin = Origin::new(cache_control("max-age=600"));
    let layer = CacheLayer::new(fx.ns.clone()).with_max_entries(60);
    let app = app(&origin, layer.clone());
    for i in 0..600 {
        let (_, cache_status) = get(&app, &format!("/u{i}"), "example.com").await;
        assert!(cache_status.ends_with("stored; ttl=600"), "{cache_status}");
        fx.clock.advance(Duration::from_millis(1));
    }
    settled(&fx, 60).await;
    // A trim may still be deleting: wait until what is stored and what was evicted agree.
    let (keys, stats) = quiesced(&fx, &layer, 600).await;
    // Trims leave the low-water mark (60 less two steps of 3); the last writes come on top.
    assert!(keys.len() >= 54, "{} left", keys.len());
    assert!(
        keys.contains(&"/u599#GET@example.com".to_owned()),
        "{keys:?}"
    );
    assert!(!keys.contains(&"/u0#GET@example.com".to_owned()));
    // Exactly the newest survive.
    let mut survivors: Vec<usize> = keys
        .iter()
        .map(|k| k[2..k.find('#').unwrap()].parse().unwrap())
        .collect();
    survivors.sort_unstable();
    assert_eq!(survivors, ((600 - keys.len())..600).collect::<Vec<_>>());
    assert_eq!(stats.evictions, 600 - keys.len() as u64, "{stats:?}");
    // A trim per step (3 writes) at most, not per write (fewer when a busy machine lets
    // steps coalesce into one running trim).
    assert!((1..=250).contains(&stats.trims), "{stats:?}");
    // A kept entry is still served.
    assert_eq!(
        get(&app, "/u599", "example.com").await.1,
        "kv; hit; ttl=600"
    );
}

/// The byte bound: keys plus values stay within it; a response larger than the bound is not
/// stored.
async fn byte_bound_holds(fx: Fixture) {
    let origin = Origin::new(Script {
        body: format!("{{n}}{}", "b".repeat(1000)),
        ..cache_control("max-age=600")
    });
    let max_bytes = 20 * 1024;
    let layer = CacheLayer::new(fx.ns.clone()).with_max_bytes(max_bytes);
    let app = app(&origin, layer.clone());
    for i in 0..200 {
        get(&app, &format!("/b{i}"), "example.com").await;
        fx.clock.advance(Duration::from_millis(1));
    }
    let mut total = 0;
    for _ in 0..1000 {
        let keys = fx.keys().await;
        total = 0;
        for key in &keys {
            let value = fx.ns.get(key).await.unwrap().map_or(0, |v| v.len());
            total += key.len() + value;
        }
        if total as u64 <= max_bytes {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(total as u64 <= max_bytes, "{total} bytes stored");
    assert!(total as u64 > max_bytes / 2, "not emptied: {total}");
    let keys = fx.keys().await;
    assert!(keys.contains(&"/b199#GET@example.com".to_owned()));
    assert!(layer.stats().evictions >= 150);

    origin.set(Script {
        body: "x".repeat(30 * 1024),
        ..cache_control("max-age=600")
    });
    let (status, cache_status) = get(&app, "/big", "example.com").await;
    assert_eq!(status, StatusCode::OK);
    assert!(cache_status.ends_with("detail=too-large"), "{cache_status}");
    assert!(!fx.keys().await.contains(&"/big#GET@example.com".to_owned()));
}

/// Two processes (two layers with their own state) over one store keep the namespace within
/// one bound between them.
async fn two_processes_share_one_bound(fx: Fixture) {
    let origin = Origin::new(cache_control("max-age=600"));
    let a = CacheLayer::new(fx.ns.clone()).with_max_entries(40);
    let b = CacheLayer::new(fx.ns.clone()).with_max_entries(40);
    let (app_a, app_b) = (app(&origin, a.clone()), app(&origin, b.clone()));
    for i in 0..200 {
        get(&app_a, &format!("/a{i:03}"), "example.com").await;
        fx.clock.advance(Duration::from_millis(1));
        get(&app_b, &format!("/b{i:03}"), "example.com").await;
        fx.clock.advance(Duration::from_millis(1));
    }
    let keys = settled(&fx, 40).await;
    assert!(keys.len() >= 30, "{} left", keys.len());
    assert!(
        keys.contains(&"/a199#GET@example.com".to_owned()),
        "{keys:?}"
    );
    assert!(
        keys.contains(&"/b199#GET@example.com".to_owned()),
        "{keys:?}"
    );
    assert!(!keys.contains(&"/a000#GET@example.com".to_owned()));
    assert!(!keys.contains(&"/b000#GET@example.com".to_owned()));
    let (sa, sb) = (a.stats(), b.stats());
    assert!(sa.evictions > 0 && sb.evictions > 0, "{sa:?} {sb:?}");
    // What both deleted is at least what was too much (concurrent trims may overlap).
    assert!(sa.evictions + sb.evictions >= 400 - 40, "{sa:?} {sb:?}");
    // Each answers from entries the other stored.
    assert_eq!(
        get(&app_a, "/b199", "example.com").await.1,
        "kv; hit; ttl=600"
    );
}

/// A store whose reads hang: lookups and the trim's listing time out, the requests are
/// answered by the origin, and the failures are counted.
async fn a_failing_trim_never_fails_a_request(fx: Fixture) {
    let origin = Origin::new(cache_control("max-age=60"));
    let layer = CacheLayer::new(fx.ns.clone())
        .with_max_entries(4)
        .with_store_timeout(Duration::from_millis(50));
    let app = app(&origin, layer.clone());
    fx.faults.always(Ops::Reads, Fault::Hang);
    for i in 0..8 {
        let (status, _) = get(&app, &format!("/f{i}"), "example.com").await;
        assert_eq!(status, StatusCode::OK);
    }
    fx.faults.clear();
    // 8 lookups and at least one trim failed; none was retried in a loop.
    let mut stats = layer.stats();
    // Up to 20 s for the failed trim to be counted: a loaded machine can be slow to run it.
    for _ in 0..4000 {
        stats = layer.stats();
        if stats.store_errors > 8 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(stats.store_errors > 8, "{stats:?}");
    assert!(stats.store_errors <= 8 + 8, "{stats:?}");
    // With the store back, writes after the failed trim's step trim it to the bound (a trim
    // still hanging when the store came back may have taken the first few).
    for i in 8..40 {
        get(&app, &format!("/f{i}"), "example.com").await;
        fx.clock.advance(Duration::from_millis(1));
        for _ in 0..20 {
            if fx.keys().await.len() <= 4 {
                assert!(layer.stats().evictions > 0);
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    panic!(
        "never trimmed after the store came back: {:?}",
        layer.stats()
    );
}
