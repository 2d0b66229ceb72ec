//! The HTTP cache as an RFC 9111 shared cache: freshness defaults (heuristic, opt-in fixed
//! TTL), explicit freshness for any status, targeted cache control (RFC 9213), robust parsing
//! of `Expires`, `Age` and repeated directives, and qualified `private` / `no-cache` — through
//! axum, on the memory and the file backend, with a manual clock.
#![cfg(all(feature = "cache", feature = "axum"))]

#[macro_use]
mod cache_support;

use std::time::Duration;

use axum::body::Body;
use axum::Router;
use cache_support::{app, cache_control, layer, send, Fixture, Origin, Reply, Script};
use http::{Request, StatusCode};

backend_tests!(
    silent_response_without_last_modified_is_not_stored,
    heuristic_freshness_is_a_tenth_of_the_time_since_last_modified,
    heuristic_freshness_is_capped,
    heuristic_freshness_only_for_heuristically_cacheable_statuses,
    fixed_default_ttl_is_an_opt_in,
    server_errors_with_explicit_freshness_are_stored,
    server_error_with_freshness_still_gives_way_to_stale_if_error,
    cdn_cache_control_takes_precedence,
    cdn_cache_control_restrictions_apply,
    cdn_cache_control_without_freshness_disables_expires_and_cache_control,
    invalid_cdn_cache_control_is_ignored,
    own_targeted_field_comes_first,
    expires_in_every_date_form_and_case,
    invalid_expires_means_expired,
    age_is_read_only_as_a_plain_integer,
    conflicting_repeated_directives_are_stale,
    qualified_private_withholds_the_named_fields,
    qualified_no_cache_withholds_the_named_fields,
    list_metadata_says_until_when_an_entry_is_fresh_and_stale,
);

/// The manual clock's start as an HTTP date.
const START_DATE: &str = "Tue, 14 Nov 2023 22:13:20 GMT";

fn get(path: &str) -> Request<Body> {
    Request::get(path)
        .header("host", "example.com")
        .body(Body::empty())
        .unwrap()
}

fn script(headers: &[(&'static str, &str)]) -> Script {
    Script {
        headers: headers.iter().map(|(n, v)| (*n, (*v).to_owned())).collect(),
        ..Script::default()
    }
}

/// Sends `path` twice and says what the second answer was.
async fn second(app: &Router, path: &str) -> Reply {
    send(app, get(path)).await;
    send(app, get(path)).await
}

async fn silent_response_without_last_modified_is_not_stored(fx: Fixture) {
    // A page that varies by cookie but says nothing about caching: storing it would hand one
    // user's page to the next.
    let origin = Origin::new(script(&[("date", START_DATE), ("vary", "cookie")]));
    let app = app(&origin, layer(&fx));
    for _ in 0..2 {
        let r = send(&app, get("/account")).await;
        assert_eq!(
            r.cache_status(),
            "kv; fwd=uri-miss; fwd-status=200; detail=no-freshness"
        );
    }
    assert_eq!(origin.calls(), 2);
    assert!(fx.keys().await.is_empty());
}

async fn heuristic_freshness_is_a_tenth_of_the_time_since_last_modified(fx: Fixture) {
    // Modified 1000 s before its Date: fresh for 100 s.
    let origin = Origin::new(Script {
        etag: Some("\"a\"".into()),
        ..script(&[
            ("date", START_DATE),
            ("last-modified", "Tue, 14 Nov 2023 21:56:40 GMT"),
        ])
    });
    // Kept past its freshness, so that it can be revalidated.
    let grace = Duration::from_secs(3600);
    let app = app(&origin, layer(&fx).with_revalidation_grace(grace));
    let r = send(&app, get("/doc")).await;
    assert_eq!(
        r.cache_status(),
        "kv; fwd=uri-miss; fwd-status=200; stored; ttl=100"
    );
    fx.advance(99);
    let r = send(&app, get("/doc")).await;
    assert_eq!((r.x_cache(), r.cache_status()), ("HIT", "kv; hit; ttl=1"));
    assert_eq!(origin.calls(), 1);

    // Then it is revalidated with its validators.
    fx.advance(1);
    let r = send(&app, get("/doc")).await;
    assert_eq!((r.body.as_str(), r.x_cache()), ("v1", "REVALIDATED"));
    let (_, sent) = origin.last_request().unwrap();
    assert_eq!(sent["if-none-match"], "\"a\"");
    assert_eq!(sent["if-modified-since"], "Tue, 14 Nov 2023 21:56:40 GMT");
}

async fn heuristic_freshness_is_capped(fx: Fixture) {
    let old = script(&[
        ("date", START_DATE),
        ("last-modified", "Mon, 14 Nov 2022 22:13:20 GMT"),
    ]);
    let origin = Origin::new(old);
    let app1 = app(&origin, layer(&fx));
    assert_eq!(
        send(&app1, get("/a")).await.cache_status(),
        "kv; fwd=uri-miss; fwd-status=200; stored; ttl=86400",
        "a year old: one day, the default cap"
    );
    let app2 = app(
        &origin,
        layer(&fx).with_max_heuristic_freshness(Duration::from_secs(600)),
    );
    assert_eq!(
        send(&app2, get("/b")).await.cache_status(),
        "kv; fwd=uri-miss; fwd-status=200; stored; ttl=600"
    );
    let app3 = app(
        &origin,
        layer(&fx).with_max_heuristic_freshness(Duration::ZERO),
    );
    assert_eq!(
        send(&app3, get("/c")).await.cache_status(),
        "kv; fwd=uri-miss; fwd-status=200; detail=no-freshness",
        "a zero cap turns the heuristic off"
    );
}

async fn heuristic_freshness_only_for_heuristically_cacheable_statuses(fx: Fixture) {
    let modified = [
        ("date", START_DATE),
        ("last-modified", "Tue, 14 Nov 2023 21:56:40 GMT"),
    ];
    let origin = Origin::new(Script {
        status: StatusCode::FOUND,
        ..script(&modified)
    });
    let app = app(&origin, layer(&fx));
    assert!(send(&app, get("/moved"))
        .await
        .cache_status()
        .ends_with("detail=status"));
    // `public` marks it cacheable (RFC 9111 §4.2.2).
    origin.set(Script {
        status: StatusCode::FOUND,
        ..script(&[modified[0], modified[1], ("cache-control", "public")])
    });
    assert_eq!(second(&app, "/public").await.x_cache(), "HIT");
    // A 404 is heuristically cacheable.
    origin.set(Script {
        status: StatusCode::NOT_FOUND,
        ..script(&modified)
    });
    let r = second(&app, "/gone").await;
    assert_eq!((r.status, r.x_cache()), (StatusCode::NOT_FOUND, "HIT"));
}

async fn fixed_default_ttl_is_an_opt_in(fx: Fixture) {
    let origin = Origin::new(Script::default());
    let app = app(
        &origin,
        layer(&fx).with_default_ttl(Duration::from_secs(30)),
    );
    assert_eq!(
        send(&app, get("/route")).await.cache_status(),
        "kv; fwd=uri-miss; fwd-status=200; stored; ttl=30"
    );
    fx.advance(29);
    assert_eq!(send(&app, get("/route")).await.x_cache(), "HIT");
    // It replaces the heuristic too.
    origin.set(script(&[
        ("date", START_DATE),
        ("last-modified", "Mon, 14 Nov 2022 22:13:20 GMT"),
    ]));
    assert!(send(&app, get("/other"))
        .await
        .cache_status()
        .ends_with("stored; ttl=30"));
}

async fn server_errors_with_explicit_freshness_are_stored(fx: Fixture) {
    let origin = Origin::new(Script::default());
    let app = app(&origin, layer(&fx));
    for code in [500, 502, 503, 504] {
        let status = StatusCode::from_u16(code).unwrap();
        let path = format!("/error/{code}");
        origin.set(Script {
            status,
            ..cache_control("max-age=10")
        });
        let r = send(&app, get(&path)).await;
        assert_eq!(r.status, status);
        assert_eq!(
            r.cache_status(),
            format!("kv; fwd=uri-miss; fwd-status={code}; stored; ttl=10")
        );
        let before = origin.calls();
        let r = send(&app, get(&path)).await;
        assert_eq!((r.status, r.x_cache()), (status, "HIT"), "{code}");
        assert_eq!(origin.calls(), before);
    }
    // With an Expires instead.
    origin.set(Script {
        status: StatusCode::SERVICE_UNAVAILABLE,
        ..script(&[
            ("date", START_DATE),
            ("expires", "Tue, 14 Nov 2023 22:13:50 GMT"),
        ])
    });
    assert_eq!(second(&app, "/maintenance").await.x_cache(), "HIT");
    // Without explicit freshness, never.
    origin.set(Script {
        status: StatusCode::SERVICE_UNAVAILABLE,
        ..Script::default()
    });
    let r = second(&app, "/down").await;
    assert_eq!(r.x_cache(), "MISS");
    assert!(r.cache_status().ends_with("detail=status"));

    // A stored error expires like anything else.
    fx.advance(10);
    origin.set(cache_control("max-age=10"));
    let r = send(&app, get("/error/500")).await;
    assert_eq!((r.status, r.x_cache()), (StatusCode::OK, "MISS"));
}

async fn server_error_with_freshness_still_gives_way_to_stale_if_error(fx: Fixture) {
    let origin = Origin::new(cache_control("max-age=10, stale-if-error=60"));
    let app = app(&origin, layer(&fx));
    send(&app, get("/page")).await;
    fx.advance(20);
    origin.set(Script {
        status: StatusCode::SERVICE_UNAVAILABLE,
        ..cache_control("max-age=30")
    });
    let r = send(&app, get("/page")).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "v1"));
    assert_eq!(
        r.cache_status(),
        "kv; fwd=stale; fwd-status=503; ttl=-10; detail=stale-if-error"
    );
}

async fn cdn_cache_control_takes_precedence(fx: Fixture) {
    // RFC 9213 §3.1: fresh for 600 s in a CDN, stored by no other cache.
    let origin = Origin::new(script(&[
        ("cache-control", "no-store"),
        (
            "cdn-cache-control",
            "max-age=600, stale-while-revalidate=30",
        ),
    ]));
    let app = app(&origin, layer(&fx));
    let r = send(&app, get("/cdn")).await;
    assert_eq!(
        r.cache_status(),
        "kv; fwd=uri-miss; fwd-status=200; stored; ttl=600"
    );
    fx.advance(610);
    let r = send(&app, get("/cdn")).await;
    assert_eq!(r.x_cache(), "STALE", "its stale-while-revalidate applies");
    // Both fields go on downstream unchanged.
    assert_eq!(
        r.header("cdn-cache-control"),
        "max-age=600, stale-while-revalidate=30"
    );
    assert_eq!(r.header("cache-control"), "no-store");

    // s-maxage in the targeted field, too.
    origin.set(script(&[
        ("cache-control", "max-age=5"),
        ("cdn-cache-control", "max-age=60, s-maxage=120"),
    ]));
    assert!(send(&app, get("/shared"))
        .await
        .cache_status()
        .ends_with("stored; ttl=120"));
}

async fn cdn_cache_control_restrictions_apply(fx: Fixture) {
    let origin = Origin::new(Script::default());
    let app = app(&origin, layer(&fx));
    for (value, detail) in [("no-store", "no-store"), ("private", "private")] {
        origin.set(script(&[
            ("cache-control", "public, max-age=600"),
            ("cdn-cache-control", value),
        ]));
        let r = second(&app, "/restricted").await;
        assert_eq!(
            r.cache_status(),
            format!("kv; fwd=uri-miss; fwd-status=200; detail={detail}")
        );
    }
    // no-cache: stored, but revalidated before every use.
    origin.set(Script {
        etag: Some("\"t\"".into()),
        ..script(&[
            ("cache-control", "max-age=600"),
            ("cdn-cache-control", "max-age=600, no-cache"),
        ])
    });
    let r = second(&app, "/no-cache").await;
    assert_eq!(r.x_cache(), "REVALIDATED");
    // must-revalidate: no stale, though Cache-Control would allow it.
    origin.set(script(&[
        ("cache-control", "max-age=10, stale-if-error=600"),
        ("cdn-cache-control", "max-age=10, must-revalidate"),
    ]));
    send(&app, get("/strict")).await;
    fx.advance(15);
    origin.update(|s| s.status = StatusCode::BAD_GATEWAY);
    let r = send(&app, get("/strict")).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
}

async fn cdn_cache_control_without_freshness_disables_expires_and_cache_control(fx: Fixture) {
    let origin = Origin::new(script(&[
        ("date", START_DATE),
        ("cache-control", "max-age=600"),
        ("expires", "Tue, 14 Nov 2023 23:13:20 GMT"),
        ("cdn-cache-control", "stale-if-error=60"),
    ]));
    let app = app(&origin, layer(&fx));
    let r = second(&app, "/page").await;
    assert_eq!(
        r.cache_status(),
        "kv; fwd=uri-miss; fwd-status=200; detail=no-freshness"
    );
    // With a Last-Modified, the heuristic gives its freshness.
    origin.update(|s| {
        s.headers
            .push(("last-modified", "Tue, 14 Nov 2023 21:56:40 GMT".into()))
    });
    assert!(send(&app, get("/modified"))
        .await
        .cache_status()
        .ends_with("stored; ttl=100"));
}

async fn invalid_cdn_cache_control_is_ignored(fx: Fixture) {
    let origin = Origin::new(Script::default());
    let app = app(&origin, layer(&fx));
    // Not a Structured Fields Dictionary (upper case, a trailing comma, a bad string): the
    // field is ignored as a whole and Cache-Control decides.
    for (n, value) in ["Max-Age=600", "max-age=600,", "no-cache=\"x"]
        .iter()
        .enumerate()
    {
        origin.set(script(&[
            ("cache-control", "max-age=60"),
            ("cdn-cache-control", value),
        ]));
        assert!(
            send(&app, get(&format!("/p{n}")))
                .await
                .cache_status()
                .ends_with("stored; ttl=60"),
            "{value}"
        );
    }
}

async fn own_targeted_field_comes_first(fx: Fixture) {
    let origin = Origin::new(script(&[
        ("cache-control", "max-age=5"),
        ("cdn-cache-control", "max-age=600"),
        ("kv-cache-control", "max-age=60"),
    ]));
    let own = app(
        &origin,
        layer(&fx).with_targeted_cache_control("Kv-Cache-Control"),
    );
    let r = send(&own, get("/a")).await;
    assert!(r.cache_status().ends_with("stored; ttl=60"));
    assert_eq!(r.header("kv-cache-control"), "max-age=60", "passed on");
    // Without it, CDN-Cache-Control is next on the list.
    origin.set(script(&[
        ("cache-control", "max-age=5"),
        ("cdn-cache-control", "max-age=600"),
    ]));
    assert!(send(&own, get("/b"))
        .await
        .cache_status()
        .ends_with("stored; ttl=600"));
    // A layer with no target list reads Cache-Control only.
    let plain = app(&origin, layer(&fx).without_targeted_cache_control());
    assert!(send(&plain, get("/c"))
        .await
        .cache_status()
        .ends_with("stored; ttl=5"));
    // The default list is CDN-Cache-Control alone: another cache's field changes nothing.
    origin.set(script(&[
        ("cache-control", "max-age=5"),
        ("kv-cache-control", "max-age=60"),
    ]));
    let default = app(&origin, layer(&fx));
    assert!(send(&default, get("/d"))
        .await
        .cache_status()
        .ends_with("stored; ttl=5"));
}

async fn expires_in_every_date_form_and_case(fx: Fixture) {
    let origin = Origin::new(Script::default());
    let app = app(&origin, layer(&fx));
    for (n, expires) in [
        "Tue, 14 Nov 2023 22:15:20 GMT",
        "tue, 14 nov 2023 22:15:20 gmt",
        "TUE, 14 NOV 2023 22:15:20 GMT",
        "Tuesday, 14-Nov-23 22:15:20 GMT",
        "tuesday, 14-nov-23 22:15:20 Gmt",
        "Tue Nov 14 22:15:20 2023",
        "tue nov 14 22:15:20 2023",
    ]
    .iter()
    .enumerate()
    {
        origin.set(script(&[("date", START_DATE), ("expires", expires)]));
        let r = second(&app, &format!("/e{n}")).await;
        assert_eq!(
            (r.x_cache(), r.cache_status()),
            ("HIT", "kv; hit; ttl=120"),
            "{expires}"
        );
    }
}

async fn invalid_expires_means_expired(fx: Fixture) {
    let origin = Origin::new(Script::default());
    let app = app(
        &origin,
        layer(&fx).with_default_ttl(Duration::from_secs(60)),
    );
    // Even with a default TTL for silent responses: an invalid Expires is not silence.
    for value in ["0", "-1", "soon", "Tue, 14 Nov 2023 22:15:20 UTC"] {
        origin.set(script(&[("date", START_DATE), ("expires", value)]));
        let r = second(&app, "/x").await;
        assert_eq!(
            r.cache_status(),
            "kv; fwd=uri-miss; fwd-status=200; detail=no-freshness",
            "{value}"
        );
    }
    // With a validator it is stored, and revalidated on every use.
    origin.set(Script {
        etag: Some("\"e\"".into()),
        ..script(&[("expires", "0")])
    });
    assert_eq!(second(&app, "/validated").await.x_cache(), "REVALIDATED");
    // Two Expires lines that disagree: stale (RFC 9111 §4.2.1).
    origin.set(script(&[
        ("date", START_DATE),
        ("expires", "Tue, 14 Nov 2023 22:15:20 GMT"),
        ("expires", "Tue, 14 Nov 2023 23:15:20 GMT"),
    ]));
    assert!(second(&app, "/two")
        .await
        .cache_status()
        .ends_with("detail=no-freshness"));
}

async fn age_is_read_only_as_a_plain_integer(fx: Fixture) {
    let origin = Origin::new(Script::default());
    let app = app(&origin, layer(&fx));
    // A list: its first member (RFC 9111 §5.1).
    origin.set(script(&[
        ("cache-control", "max-age=60"),
        ("age", "20, 30"),
    ]));
    assert!(send(&app, get("/list"))
        .await
        .cache_status()
        .ends_with("stored; ttl=40"));
    // Not a non-negative integer: ignored, never read as a prefix.
    for (n, age) in ["20s", "-20", "+20", "2.0e1", "0x14"].iter().enumerate() {
        origin.set(script(&[("cache-control", "max-age=60"), ("age", age)]));
        assert!(
            send(&app, get(&format!("/bad{n}")))
                .await
                .cache_status()
                .ends_with("stored; ttl=60"),
            "{age}"
        );
    }
}

async fn conflicting_repeated_directives_are_stale(fx: Fixture) {
    let origin = Origin::new(Script::default());
    let app = app(&origin, layer(&fx));
    // The same directive twice with different values: stale, and with no validator, not kept.
    for (n, value) in ["max-age=60, max-age=120", "s-maxage=60, s-maxage=120"]
        .iter()
        .enumerate()
    {
        origin.set(cache_control(value));
        assert!(
            second(&app, &format!("/c{n}"))
                .await
                .cache_status()
                .ends_with("detail=no-freshness"),
            "{value}"
        );
    }
    // Across field lines too.
    origin.set(script(&[
        ("cache-control", "max-age=60"),
        ("cache-control", "max-age=120"),
    ]));
    assert!(second(&app, "/lines")
        .await
        .cache_status()
        .ends_with("detail=no-freshness"));
    // Repeated with one value: no conflict.
    origin.set(cache_control("max-age=60, max-age=60"));
    assert_eq!(second(&app, "/same").await.x_cache(), "HIT");
    // Conflicting directives: the most restrictive wins.
    origin.set(cache_control("max-age=60, no-store"));
    assert!(second(&app, "/store")
        .await
        .cache_status()
        .ends_with("detail=no-store"));
    origin.set(cache_control("public, max-age=60, private"));
    assert!(second(&app, "/private")
        .await
        .cache_status()
        .ends_with("detail=private"));
}

async fn qualified_private_withholds_the_named_fields(fx: Fixture) {
    let origin = Origin::new(script(&[
        (
            "cache-control",
            "max-age=60, private=\"set-cookie, x-user\"",
        ),
        ("set-cookie", "session=alice"),
        ("x-user", "alice"),
        ("x-shared", "yes"),
    ]));
    let app = app(&origin, layer(&fx));
    let first = send(&app, get("/home")).await;
    assert!(first.cache_status().ends_with("stored; ttl=60"));
    assert_eq!(
        (first.header("set-cookie"), first.header("x-user")),
        ("session=alice", "alice"),
        "the client that asked gets the whole response"
    );
    let r = send(&app, get("/home")).await;
    assert_eq!(r.x_cache(), "HIT");
    assert!(!r.headers.contains_key("set-cookie"));
    assert!(!r.headers.contains_key("x-user"));
    assert_eq!(r.header("x-shared"), "yes");
    assert_eq!(origin.calls(), 1);
}

async fn qualified_no_cache_withholds_the_named_fields(fx: Fixture) {
    let origin = Origin::new(script(&[
        ("cache-control", "max-age=60, no-cache=\"x-debug\""),
        ("x-debug", "request 1"),
    ]));
    let app = app(&origin, layer(&fx));
    let first = send(&app, get("/page")).await;
    assert_eq!(first.header("x-debug"), "request 1");
    let r = send(&app, get("/page")).await;
    assert_eq!(
        r.x_cache(),
        "HIT",
        "the rest is served fresh, not revalidated"
    );
    assert!(!r.headers.contains_key("x-debug"));
    assert_eq!(origin.calls(), 1);
}

async fn list_metadata_says_until_when_an_entry_is_fresh_and_stale(fx: Fixture) {
    // What a listing shows (the console's cache view) without reading the entries: the moments
    // the entry stops being fresh, usable while revalidating and usable on origin errors,
    // counted from when it was received (its `Age` of 10 s included).
    let origin = Origin::new(script(&[
        ("date", START_DATE),
        ("age", "10"),
        (
            "cache-control",
            "max-age=60, stale-while-revalidate=30, stale-if-error=300",
        ),
    ]));
    let app = app(&origin, layer(&fx));
    send(&app, get("/page")).await;
    let mut metadata = None;
    for _ in 0..1000 {
        let page = fx.ns.list(&kv_core::ListOptions::new()).await.unwrap();
        if let Some(key) = page.keys.into_iter().next() {
            metadata = key.metadata;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let metadata = metadata.expect("the response was stored with list metadata");
    let stored_at = cache_support::START * 1000;
    let fresh_until = stored_at - 10_000 + 60_000;
    assert_eq!(metadata["stored_at"], stored_at);
    assert_eq!(metadata["fresh_until"], fresh_until);
    assert_eq!(metadata["revalidate_until"], fresh_until + 30_000);
    assert_eq!(metadata["error_until"], fresh_until + 300_000);
}
