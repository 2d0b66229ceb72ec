//! The HTTP cache layer through axum, on the memory and the file backend, with a manual clock.
#![cfg(all(feature = "cache", feature = "axum"))]

#[macro_use]
mod cache_support;

use kv_core::testing::{Fault, Ops};
use std::time::Duration;

use axum::body::Body;
use cache_support::{app, cache_control, eventually, layer, send, Fixture, Origin, Script};
use http::{Method, Request, StatusCode};
use kv_middleware::cache::CacheEvent;

backend_tests!(
    states_and_headers,
    vary_with_two_variants,
    uncacheable_responses_and_requests,
    swr_serves_stale_at_once_with_one_refresh,
    sie_serves_stale_on_503_until_the_window_closes,
    must_revalidate_forbids_stale,
    revalidation_with_304,
    client_conditional_requests,
    unsafe_methods_invalidate,
    herd_of_1000_cold_requests_makes_one_origin_call,
    waiting_request_that_times_out_goes_to_the_origin,
    large_bodies_pass_through,
    failing_store_falls_back_to_the_origin,
    head_purge_and_keys,
    expires_and_defaults,
);

fn request(method: Method, path: &str) -> http::request::Builder {
    Request::builder()
        .method(method)
        .uri(path)
        .header("host", "example.com")
}

fn get(path: &str) -> Request<Body> {
    request(Method::GET, path).body(Body::empty()).unwrap()
}

async fn states_and_headers(fx: Fixture) {
    let origin = Origin::new(cache_control(
        "max-age=10, stale-while-revalidate=20, stale-if-error=60",
    ));
    let layer = layer(&fx);
    let mut events = layer.subscribe();
    let app = app(&origin, layer.clone());

    // Missing: to the origin, stored.
    let r = send(&app, get("/page")).await;
    assert_eq!(
        (r.status, r.body.as_str(), r.x_cache()),
        (StatusCode::OK, "v1", "MISS")
    );
    assert_eq!(
        r.cache_status(),
        "kv; fwd=uri-miss; fwd-status=200; stored; ttl=10"
    );
    assert_eq!(
        r.age(),
        "",
        "a response from the origin without Age gets none"
    );

    // Fresh: from the store, with its age.
    fx.advance(4);
    let r = send(&app, get("/page")).await;
    assert_eq!((r.body.as_str(), r.x_cache(), r.age()), ("v1", "HIT", "4"));
    assert_eq!(r.cache_status(), "kv; hit; ttl=6");
    assert_eq!(
        r.header("cache-control"),
        "max-age=10, stale-while-revalidate=20, stale-if-error=60"
    );
    assert_eq!(origin.calls(), 1);

    // Stale within stale-while-revalidate: served at once, refreshed behind.
    fx.advance(11);
    let r = send(&app, get("/page")).await;
    assert_eq!(
        (r.body.as_str(), r.x_cache(), r.age()),
        ("v1", "STALE", "15")
    );
    assert_eq!(
        r.cache_status(),
        "kv; hit; ttl=-5; detail=stale-while-revalidate"
    );
    let event = events.recv().await.unwrap();
    assert!(matches!(event, CacheEvent::Refreshed { .. }), "{event:?}");
    assert_eq!(origin.calls(), 2);
    let r = send(&app, get("/page")).await;
    assert_eq!((r.body.as_str(), r.x_cache(), r.age()), ("v2", "HIT", "0"));
    assert_eq!(r.cache_status(), "kv; hit; ttl=10");

    // Past stale-while-revalidate, within stale-if-error: the origin answers (coalesced).
    fx.advance(40);
    let r = send(&app, get("/page")).await;
    assert_eq!((r.body.as_str(), r.x_cache()), ("v3", "MISS"));
    assert_eq!(
        r.cache_status(),
        "kv; fwd=stale; fwd-status=200; stored; ttl=10"
    );

    // Past every window: the store forgot it (TTL = 10 + 60 s).
    fx.advance(71);
    let r = send(&app, get("/page")).await;
    assert_eq!((r.body.as_str(), r.x_cache()), ("v4", "MISS"));
    assert!(r.cache_status().starts_with("kv; fwd=uri-miss"));

    let stats = layer.stats();
    assert_eq!(
        (stats.hits, stats.stale_hits, stats.misses, stats.refreshes),
        (2, 1, 3, 1)
    );
    assert_eq!(stats.store_errors, 0);
}

async fn vary_with_two_variants(fx: Fixture) {
    let origin = Origin::new(Script {
        headers: vec![
            ("cache-control", "max-age=60".into()),
            ("vary", "Accept-Language".into()),
        ],
        body: "{lang} v{n}".into(),
        ..Script::default()
    });
    let app = app(&origin, layer(&fx));
    let lang = |value: &str| {
        request(Method::GET, "/greeting")
            .header("accept-language", value)
            .body(Body::empty())
            .unwrap()
    };

    let r = send(&app, lang("en")).await;
    assert_eq!((r.body.as_str(), r.x_cache()), ("en v1", "MISS"));
    assert!(r.cache_status().starts_with("kv; fwd=uri-miss"));
    let r = send(&app, lang("fr")).await;
    assert_eq!((r.body.as_str(), r.x_cache()), ("fr v2", "MISS"));
    assert!(
        r.cache_status().starts_with("kv; fwd=vary-miss"),
        "{}",
        r.cache_status()
    );
    fx.advance(1);
    let r = send(&app, lang("en")).await;
    assert_eq!((r.body.as_str(), r.x_cache()), ("en v1", "HIT"));
    let r = send(&app, lang("fr")).await;
    assert_eq!((r.body.as_str(), r.x_cache()), ("fr v2", "HIT"));
    assert_eq!(r.header("vary"), "Accept-Language");
    let r = send(&app, get("/greeting")).await;
    assert_eq!((r.body.as_str(), r.x_cache()), ("- v3", "MISS"));
    assert_eq!(origin.calls(), 3);
    // One marker and three variants.
    let keys = fx.keys().await;
    assert_eq!(keys.len(), 4, "{keys:?}");
    assert!(keys.contains(&"/greeting#GET@example.com".to_owned()));
}

async fn uncacheable_responses_and_requests(fx: Fixture) {
    let origin = Origin::new(Script::default());
    let app = app(&origin, layer(&fx));
    for (name, value, detail) in [
        ("vary", "*", "vary-star"),
        ("cache-control", "no-store", "no-store"),
        ("cache-control", "private, max-age=60", "private"),
        ("set-cookie", "id=1", "set-cookie"),
    ] {
        origin.set(Script {
            headers: vec![(name, value.into())],
            ..Script::default()
        });
        let before = origin.calls();
        for _ in 0..2 {
            let r = send(&app, get("/nope")).await;
            assert_eq!(r.x_cache(), "MISS");
            assert_eq!(
                r.cache_status(),
                format!("kv; fwd=uri-miss; fwd-status=200; detail={detail}")
            );
        }
        assert_eq!(
            origin.calls(),
            before + 2,
            "{name}: {value} is never stored"
        );
    }
    assert!(fx.keys().await.is_empty());

    // A request with Authorization bypasses the cache.
    origin.set(cache_control("max-age=60"));
    let authorized = || {
        request(Method::GET, "/me")
            .header("authorization", "Bearer x")
            .body(Body::empty())
            .unwrap()
    };
    let r = send(&app, authorized()).await;
    assert_eq!(r.x_cache(), "BYPASS");
    assert_eq!(
        r.cache_status(),
        "kv; fwd=bypass; fwd-status=200; detail=authorization"
    );
    send(&app, authorized()).await;
    assert!(fx.keys().await.is_empty());

    // ... unless configured.
    let app = self::app(&origin, layer(&fx).with_authorized_requests(true));
    send(&app, authorized()).await;
    assert_eq!(send(&app, authorized()).await.x_cache(), "HIT");

    // A range request for a URL with nothing stored goes to the origin unchanged (one for a
    // stored URL is answered from storage: `cache_range_vary.rs`).
    let ranged = request(Method::GET, "/never-stored")
        .header("range", "bytes=0-1")
        .body(Body::empty())
        .unwrap();
    assert!(send(&app, ranged)
        .await
        .cache_status()
        .ends_with("detail=range"));
}

async fn swr_serves_stale_at_once_with_one_refresh(fx: Fixture) {
    let origin = Origin::new(cache_control("max-age=10, stale-while-revalidate=60"));
    let layer = layer(&fx);
    let mut events = layer.subscribe();
    let app = app(&origin, layer.clone());
    assert_eq!(send(&app, get("/swr")).await.body, "v1");
    fx.advance(15);

    // The refresh will hang at the origin until opened: every request still gets stale at once.
    origin.close();
    let requests: Vec<_> = (0..100)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { send(&app, get("/swr")).await })
        })
        .collect();
    for request in requests {
        let r = request.await.unwrap();
        assert_eq!((r.body.as_str(), r.x_cache()), ("v1", "STALE"));
    }
    eventually(|| origin.calls() >= 2).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(origin.calls(), 2, "exactly one refresh reached the origin");
    origin.open();
    assert!(matches!(
        events.recv().await.unwrap(),
        CacheEvent::Refreshed { .. }
    ));
    assert_eq!(origin.calls(), 2);
    let r = send(&app, get("/swr")).await;
    assert_eq!((r.body.as_str(), r.x_cache()), ("v2", "HIT"));
    assert_eq!(layer.stats().refreshes, 1);
    assert_eq!(layer.stats().stale_hits, 100);
}

async fn sie_serves_stale_on_503_until_the_window_closes(fx: Fixture) {
    let origin = Origin::new(cache_control("max-age=10, stale-if-error=60"));
    let app = app(&origin, layer(&fx));
    assert_eq!(send(&app, get("/sie")).await.body, "v1");

    fx.advance(20);
    origin.update(|s| s.status = StatusCode::SERVICE_UNAVAILABLE);
    let r = send(&app, get("/sie")).await;
    assert_eq!(
        (r.status, r.body.as_str(), r.x_cache()),
        (StatusCode::OK, "v1", "STALE")
    );
    assert_eq!(
        r.cache_status(),
        "kv; fwd=stale; fwd-status=503; ttl=-10; detail=stale-if-error"
    );
    assert_eq!(r.age(), "20");
    assert_eq!(origin.calls(), 2);

    // The key backs off (1 s): stale without asking the origin.
    let r = send(&app, get("/sie")).await;
    assert_eq!((r.body.as_str(), r.x_cache()), ("v1", "STALE"));
    assert_eq!(r.cache_status(), "kv; hit; ttl=-10; detail=stale-if-error");
    assert_eq!(origin.calls(), 2);

    // After the pause the origin is asked again.
    fx.advance(2);
    assert_eq!(send(&app, get("/sie")).await.body, "v1");
    assert_eq!(origin.calls(), 3);

    // The window closes at age 70: the error goes through.
    fx.advance(49);
    let r = send(&app, get("/sie")).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.x_cache(), "MISS");
    assert!(
        r.cache_status().contains("fwd-status=503"),
        "{}",
        r.cache_status()
    );
    assert!(
        r.cache_status().ends_with("stored; ttl=10"),
        "a 503 with max-age is stored"
    );
}

async fn must_revalidate_forbids_stale(fx: Fixture) {
    let origin = Origin::new(cache_control(
        "max-age=10, must-revalidate, stale-while-revalidate=60, stale-if-error=60",
    ));
    let app = app(
        &origin,
        layer(&fx).with_stale_while_revalidate(Duration::from_secs(60)),
    );
    send(&app, get("/strict")).await;
    fx.advance(15);
    origin.update(|s| s.status = StatusCode::BAD_GATEWAY);
    let r = send(&app, get("/strict")).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "no stale on error");
    fx.advance(11); // The 502 came with max-age=10 and was stored: let it expire.
    origin.update(|s| s.status = StatusCode::OK);
    let r = send(&app, get("/strict")).await;
    assert_eq!(
        (r.body.as_str(), r.x_cache()),
        ("v3", "MISS"),
        "no stale while revalidating"
    );
    assert!(r
        .cache_status()
        .starts_with("kv; fwd=stale; fwd-status=200; stored"));
}

async fn revalidation_with_304(fx: Fixture) {
    let origin = Origin::new(Script {
        etag: Some("\"e1\"".into()),
        ..cache_control("max-age=10")
    });
    let app = app(&origin, layer(&fx));
    let r = send(&app, get("/doc")).await;
    assert_eq!((r.body.as_str(), r.header("etag")), ("v1", "\"e1\""));

    // Expired (the store keeps it for its 60 s minimum TTL): a conditional request.
    fx.advance(30);
    origin.update(|s| s.headers = vec![("cache-control", "max-age=20".into())]);
    let r = send(&app, get("/doc")).await;
    let (method, sent) = origin.last_request().unwrap();
    assert_eq!(method, Method::GET);
    assert_eq!(sent["if-none-match"], "\"e1\"");
    assert_eq!(
        (r.status, r.body.as_str(), r.x_cache()),
        (StatusCode::OK, "v1", "REVALIDATED")
    );
    assert_eq!(
        r.cache_status(),
        "kv; fwd=stale; fwd-status=304; stored; ttl=20"
    );
    assert_eq!(
        r.header("cache-control"),
        "max-age=20",
        "the 304's headers update the entry"
    );
    assert_eq!(r.age(), "0");

    fx.advance(5);
    let r = send(&app, get("/doc")).await;
    assert_eq!((r.body.as_str(), r.x_cache(), r.age()), ("v1", "HIT", "5"));
    assert_eq!(origin.calls(), 2);
}

async fn client_conditional_requests(fx: Fixture) {
    let origin = Origin::new(Script {
        etag: Some("\"e7\"".into()),
        headers: vec![
            ("cache-control", "max-age=60".into()),
            ("last-modified", "Tue, 14 Nov 2023 22:00:00 GMT".into()),
        ],
        ..Script::default()
    });
    let app = app(&origin, layer(&fx));
    let conditional = |name: &str, value: &str| {
        request(Method::GET, "/etag")
            .header(name, value)
            .body(Body::empty())
            .unwrap()
    };

    // On a miss the client's condition is not forwarded; the cache answers it.
    let r = send(&app, conditional("if-none-match", "\"e7\"")).await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    assert!(!origin
        .last_request()
        .unwrap()
        .1
        .contains_key("if-none-match"));
    assert_eq!(r.body, "");

    // From the cache: 304 with the validators, or the full response when they differ.
    let r = send(&app, conditional("if-none-match", "\"zz\", W/\"e7\"")).await;
    assert_eq!((r.status, r.x_cache()), (StatusCode::NOT_MODIFIED, "HIT"));
    assert_eq!(
        (r.header("etag"), r.header("cache-control")),
        ("\"e7\"", "max-age=60")
    );
    assert_eq!(r.cache_status(), "kv; hit; ttl=60");
    let r = send(&app, conditional("if-none-match", "\"other\"")).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "v1"));
    let r = send(
        &app,
        conditional("if-modified-since", "Tue, 14 Nov 2023 22:05:00 GMT"),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    let r = send(
        &app,
        conditional("if-modified-since", "Tue, 14 Nov 2023 21:00:00 GMT"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(origin.calls(), 1);
}

async fn unsafe_methods_invalidate(fx: Fixture) {
    let origin = Origin::new(cache_control("max-age=60"));
    let layer = layer(&fx);
    let app = app(&origin, layer.clone());
    send(&app, get("/items")).await;
    send(&app, get("/items/7")).await;
    assert_eq!(send(&app, get("/items")).await.x_cache(), "HIT");

    origin.update(|s| s.status = StatusCode::CREATED);
    origin.update(|s| s.headers.push(("location", "/items/7".into())));
    let post = request(Method::POST, "/items")
        .body(Body::from("new"))
        .unwrap();
    let r = send(&app, post).await;
    assert_eq!((r.status, r.x_cache()), (StatusCode::CREATED, "BYPASS"));
    assert_eq!(
        r.cache_status(),
        "kv; fwd=method; fwd-status=201; detail=invalidated"
    );
    origin.set(cache_control("max-age=60"));
    assert_eq!(send(&app, get("/items")).await.x_cache(), "MISS");
    assert_eq!(
        send(&app, get("/items/7")).await.x_cache(),
        "MISS",
        "Location too"
    );

    // A failed unsafe request invalidates nothing.
    origin.update(|s| s.status = StatusCode::BAD_REQUEST);
    let r = send(
        &app,
        request(Method::DELETE, "/items")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.cache_status(), "kv; fwd=method; fwd-status=400");
    origin.set(cache_control("max-age=60"));
    assert_eq!(send(&app, get("/items")).await.x_cache(), "HIT");
    assert_eq!(layer.stats().invalidations, 1);
}

async fn herd_of_1000_cold_requests_makes_one_origin_call(fx: Fixture) {
    let origin = Origin::new(cache_control("max-age=60"));
    let layer = layer(&fx);
    let app = app(&origin, layer.clone());
    origin.close();
    let requests: Vec<_> = (0..1000)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { send(&app, get("/cold")).await })
        })
        .collect();
    eventually(|| origin.calls() >= 1).await;
    // Give the others time to queue up behind the leader; late ones find the stored entry.
    tokio::time::sleep(Duration::from_millis(100)).await;
    origin.open();
    let mut collapsed = 0;
    for request in requests {
        let r = request.await.unwrap();
        assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "v1"));
        collapsed += usize::from(r.cache_status().contains("collapsed"));
    }
    assert_eq!(origin.calls(), 1, "exactly one origin call");
    let stats = layer.stats();
    assert_eq!(stats.misses, 1);
    assert_eq!(stats.coalesced + stats.hits, 999);
    assert!(collapsed > 0);
}

async fn waiting_request_that_times_out_goes_to_the_origin(fx: Fixture) {
    let origin = Origin::new(cache_control("max-age=60"));
    let app = app(
        &origin,
        layer(&fx).with_coalesce_timeout(Duration::from_millis(50)),
    );
    origin.close();
    let first = tokio::spawn({
        let app = app.clone();
        async move { send(&app, get("/slow")).await }
    });
    eventually(|| origin.calls() == 1).await;
    let second = tokio::spawn({
        let app = app.clone();
        async move { send(&app, get("/slow")).await }
    });
    eventually(|| origin.calls() == 2).await;
    origin.open();
    first.await.unwrap();
    let r = second.await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert!(!r.cache_status().contains("collapsed"));
}

async fn large_bodies_pass_through(fx: Fixture) {
    let big = "x".repeat(100);
    let origin = Origin::new(Script {
        body: big.clone(),
        ..cache_control("max-age=60")
    });
    let app = app(&origin, layer(&fx).with_max_body_size(16));
    for _ in 0..2 {
        let r = send(&app, get("/big")).await;
        assert_eq!(r.body, big);
        assert_eq!(
            r.cache_status(),
            "kv; fwd=uri-miss; fwd-status=200; detail=too-large"
        );
    }
    assert_eq!(origin.calls(), 2);
    origin.update(|s| s.body = "small".into());
    send(&app, get("/big")).await;
    assert_eq!(send(&app, get("/big")).await.x_cache(), "HIT");
}

async fn failing_store_falls_back_to_the_origin(fx: Fixture) {
    let origin = Origin::new(cache_control("max-age=60"));
    let layer = layer(&fx).with_store_timeout(Duration::from_millis(50));
    let app = app(&origin, layer.clone());
    send(&app, get("/ok")).await;

    fx.faults.clear().always(Ops::All, Fault::Error);
    let r = send(&app, get("/ok")).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "v2"));
    assert_eq!(
        r.cache_status(),
        "kv; fwd=miss; fwd-status=200; detail=store-error"
    );
    // Reads work, writes fail: served, not stored.
    fx.faults.clear().always(Ops::Writes, Fault::Error);
    let r = send(&app, get("/new")).await;
    assert_eq!(
        r.cache_status(),
        "kv; fwd=uri-miss; fwd-status=200; detail=store-error"
    );

    // A store that hangs is given up on after the store timeout.
    fx.faults.clear();
    fx.faults.always(Ops::All, Fault::Hang);
    let r = send(&app, get("/ok")).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "v4"));
    fx.faults.clear();
    assert!(layer.stats().store_errors >= 4, "{:?}", layer.stats());
    assert_eq!(send(&app, get("/ok")).await.x_cache(), "HIT");
}

async fn head_purge_and_keys(fx: Fixture) {
    let origin = Origin::new(cache_control("max-age=60"));
    let layer = layer(&fx);
    let app = app(&origin, layer.clone());
    let head = || request(Method::HEAD, "/a").body(Body::empty()).unwrap();
    let r = send(&app, head()).await;
    assert_eq!((r.x_cache(), r.body.as_str()), ("MISS", ""));
    let r = send(&app, head()).await;
    assert_eq!((r.x_cache(), r.body.as_str()), ("HIT", ""));
    for path in ["/a", "/a?x=1", "/ab", "/b"] {
        send(&app, get(path)).await;
    }
    assert_eq!(
        layer.cache_key(&get("/a?x=1")).as_deref(),
        Some("/a?x=1#GET@example.com")
    );
    assert_eq!(fx.keys().await.len(), 5);

    assert_eq!(layer.purge("/a").await.unwrap(), 2, "GET and HEAD of /a");
    assert_eq!(send(&app, get("/a?x=1")).await.x_cache(), "HIT");
    assert_eq!(layer.purge_prefix("/a").await.unwrap(), 2);
    assert_eq!(fx.keys().await, vec!["/b#GET@example.com".to_owned()]);
    assert_eq!(send(&app, get("/a")).await.x_cache(), "MISS");

    // Without the host in the key.
    let app = self::app(
        &origin,
        self::layer(&fx)
            .with_host_in_key(false)
            .with_key_prefix("c:"),
    );
    send(&app, get("/h")).await;
    assert!(fx.keys().await.contains(&"c:/h#GET".to_owned()));

    // A very long URL is keyed within the store's limit, and still cached.
    let long = format!("/{}", "l".repeat(600));
    send(&app, get(&long)).await;
    assert_eq!(send(&app, get(&long)).await.x_cache(), "HIT");
}

async fn expires_and_defaults(fx: Fixture) {
    let origin = Origin::new(Script {
        headers: vec![
            ("date", "Tue, 14 Nov 2023 22:13:20 GMT".into()),
            ("expires", "Tue, 14 Nov 2023 22:13:50 GMT".into()),
            ("age", "5".into()),
        ],
        ..Script::default()
    });
    let app = app(
        &origin,
        layer(&fx).with_default_ttl(Duration::from_secs(60)),
    );
    let r = send(&app, get("/expires")).await;
    assert_eq!(
        r.cache_status(),
        "kv; fwd=uri-miss; fwd-status=200; stored; ttl=25"
    );
    assert_eq!(r.age(), "5", "the origin's Age is passed on");
    fx.advance(3);
    let r = send(&app, get("/expires")).await;
    assert_eq!((r.x_cache(), r.age()), ("HIT", "8"));

    // Saying nothing: the layer's default TTL, or nothing stored without one.
    origin.set(Script::default());
    let r = send(&app, get("/plain")).await;
    assert_eq!(
        r.cache_status(),
        "kv; fwd=uri-miss; fwd-status=200; stored; ttl=60"
    );
    let app = self::app(&origin, layer(&fx));
    let r = send(&app, get("/other")).await;
    assert_eq!(
        r.cache_status(),
        "kv; fwd=uri-miss; fwd-status=200; detail=no-freshness"
    );
    let app = self::app(
        &origin,
        layer(&fx)
            .with_default_ttl(Duration::from_secs(5))
            .with_stale_if_error(Duration::from_secs(100)),
    );
    let r = send(&app, get("/third")).await;
    assert_eq!(
        r.cache_status(),
        "kv; fwd=uri-miss; fwd-status=200; stored; ttl=5"
    );
    // A 404 is cached by default too; a 302 only with explicit freshness.
    origin.set(Script {
        status: StatusCode::NOT_FOUND,
        ..Script::default()
    });
    send(&app, get("/missing")).await;
    assert_eq!(send(&app, get("/missing")).await.x_cache(), "HIT");
    origin.set(Script {
        status: StatusCode::FOUND,
        ..Script::default()
    });
    assert!(send(&app, get("/moved"))
        .await
        .cache_status()
        .ends_with("detail=status"));
}
