//! The HTTP cache's range requests from storage (RFC 9110 §14), Vary normalisation (RFC 9111
//! §4.1) and invalidation by every unsafe method (RFC 9111 §4.4), over a plain tower service on
//! the memory and the file backend, with a manual clock.
#![cfg(feature = "cache")]

#[macro_use]
mod cache_support;

use cache_support::{cache_control, layer, send, Fixture, Origin, Script};
use http::{Method, Request, Response, StatusCode};
use kv_middleware::cache::{CacheEvent, CacheLayer};
use tower::{service_fn, Layer, Service};

backend_tests!(
    ranges_are_served_from_a_stored_response,
    unsatisfiable_ranges_get_416,
    if_range_decides_between_part_and_whole,
    ranges_with_nothing_servable_go_to_the_origin_unchanged,
    ranges_of_stale_and_non_200_responses,
    vary_matches_equivalent_requests,
    vary_keeps_case_and_order_where_they_matter,
    every_unsafe_method_invalidates_and_only_those,
);

const ALPHABET: &str = "abcdefghijklmnopqrstuvwxyz";

/// The origin as a tower service, behind the cache.
fn app(
    origin: &Origin,
    layer: &CacheLayer,
) -> impl Service<
    Request<String>,
    Response = Response<impl http_body::Body<Error = impl std::fmt::Debug>>,
    Error = std::io::Error,
> + Clone {
    let origin = origin.clone();
    layer.layer(service_fn(move |request: Request<String>| {
        let origin = origin.clone();
        async move { origin.answer(request).await }
    }))
}

/// A request to `path` on example.com with `headers`.
fn request(method: &str, path: &str, headers: &[(&str, &str)]) -> Request<String> {
    let mut builder = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).unwrap())
        .uri(path)
        .header("host", "example.com");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(String::new()).unwrap()
}

fn get(path: &str, headers: &[(&str, &str)]) -> Request<String> {
    request("GET", path, headers)
}

/// A script answering the alphabet, fresh for `cache_control`.
fn alphabet(cache_control: &str) -> Script {
    Script {
        headers: vec![
            ("cache-control", cache_control.to_owned()),
            ("content-length", ALPHABET.len().to_string()),
        ],
        body: ALPHABET.to_owned(),
        ..Script::default()
    }
}

/// The Range the origin received last, if any.
fn range_at_origin(origin: &Origin) -> Option<String> {
    let (_, headers) = origin.last_request().unwrap();
    headers.get("range").map(|v| v.to_str().unwrap().to_owned())
}

async fn ranges_are_served_from_a_stored_response(fx: Fixture) {
    let origin = Origin::new(alphabet("max-age=60"));
    let layer = layer(&fx);
    let app = app(&origin, &layer);
    send(&app, get("/file", &[])).await;
    fx.advance(5);

    let part = |range: &'static str| get("/file", &[("range", range)]);
    let r = send(&app, part("bytes=0-4")).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (StatusCode::PARTIAL_CONTENT, "abcde")
    );
    assert_eq!(r.header("content-range"), "bytes 0-4/26");
    assert_eq!(r.header("content-length"), "5");
    assert_eq!(r.cache_status(), "kv; hit; ttl=55");
    assert_eq!((r.header("x-cache"), r.header("age")), ("HIT", "5"));
    assert_eq!(
        r.header("cache-control"),
        "max-age=60",
        "the stored headers"
    );

    // Open-ended, suffix, past the end, unit in capitals, list whitespace.
    for (range, body, content_range) in [
        ("bytes=20-", "uvwxyz", "bytes 20-25/26"),
        ("bytes=-3", "xyz", "bytes 23-25/26"),
        ("bytes=-100", ALPHABET, "bytes 0-25/26"),
        ("bytes=24-1000", "yz", "bytes 24-25/26"),
        ("BYTES=1-1", "b", "bytes 1-1/26"),
        ("bytes= 2-3 ,", "cd", "bytes 2-3/26"),
        // Overlapping and adjacent ranges coalesce into one part.
        ("bytes=0-1, 1-2, 3-3", "abcd", "bytes 0-3/26"),
        // An unsatisfiable member is dropped.
        ("bytes=100-200, 0-0", "a", "bytes 0-0/26"),
    ] {
        let r = send(&app, part(range)).await;
        assert_eq!(r.status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(r.body, body, "{range}");
        assert_eq!(r.header("content-range"), content_range, "{range}");
        assert_eq!(
            r.header("content-length"),
            body.len().to_string(),
            "{range}"
        );
    }

    // Disjoint ranges would need multipart/byteranges: the whole response instead.
    let r = send(&app, part("bytes=0-0, -1")).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, ALPHABET));
    assert_eq!(r.header("content-range"), "");
    assert_eq!(r.header("content-length"), "26");
    assert_eq!(r.cache_status(), "kv; hit; ttl=55");

    assert_eq!(origin.calls(), 1, "every range answered from storage");
    assert_eq!(layer.stats().hits, 10);
}

async fn unsatisfiable_ranges_get_416(fx: Fixture) {
    let origin = Origin::new(Script {
        etag: Some("\"v1\"".into()),
        ..alphabet("max-age=60")
    });
    let layer = layer(&fx);
    let app = app(&origin, &layer);
    send(&app, get("/file", &[])).await;

    for range in ["bytes=26-", "bytes=-0", "bytes=30-40, 26-26"] {
        let r = send(&app, get("/file", &[("range", range)])).await;
        assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_eq!(r.header("content-range"), "bytes */26", "{range}");
        assert_eq!((r.body.as_str(), r.header("content-length")), ("", "0"));
        assert_eq!(r.header("etag"), "\"v1\"");
        // Never the stored freshness: a cache downstream must not keep the 416.
        assert_eq!(r.header("cache-control"), "");
        assert_eq!(r.cache_status(), "kv; hit; ttl=60");
    }
    assert_eq!(origin.calls(), 1);
}

async fn if_range_decides_between_part_and_whole(fx: Fixture) {
    let origin = Origin::new(Script {
        etag: Some("\"v1\"".into()),
        headers: vec![
            ("cache-control", "max-age=60".into()),
            ("last-modified", "Tue, 14 Nov 2023 20:00:00 GMT".into()),
            ("date", "Tue, 14 Nov 2023 22:13:20 GMT".into()),
        ],
        body: ALPHABET.to_owned(),
        ..Script::default()
    });
    let layer = layer(&fx);
    let app = app(&origin, &layer);
    send(&app, get("/file", &[])).await;

    let ranged =
        |if_range: &'static str| get("/file", &[("range", "bytes=0-2"), ("if-range", if_range)]);
    // The strong entity-tag or the exact (strong) Last-Modified: the part.
    for if_range in ["\"v1\"", "Tue, 14 Nov 2023 20:00:00 GMT"] {
        let r = send(&app, ranged(if_range)).await;
        assert_eq!(
            (r.status, r.body.as_str()),
            (StatusCode::PARTIAL_CONTENT, "abc"),
            "{if_range}"
        );
    }
    // Another tag, a weak one, another date, garbage: the whole response.
    for if_range in [
        "\"v0\"",
        "W/\"v1\"",
        "Tue, 14 Nov 2023 20:00:01 GMT",
        "yesterday",
    ] {
        let r = send(&app, ranged(if_range)).await;
        assert_eq!(
            (r.status, r.body.as_str()),
            (StatusCode::OK, ALPHABET),
            "{if_range}"
        );
    }
    // If-None-Match is evaluated before the range (RFC 9110 §13.2.2).
    let r = send(
        &app,
        get(
            "/file",
            &[("range", "bytes=0-2"), ("if-none-match", "\"v1\"")],
        ),
    )
    .await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::NOT_MODIFIED, ""));
    assert_eq!(origin.calls(), 1);
}

async fn ranges_with_nothing_servable_go_to_the_origin_unchanged(fx: Fixture) {
    let origin = Origin::new(alphabet("max-age=60"));
    let layer = layer(&fx);
    let app = app(&origin, &layer);

    // Nothing stored: to the origin as sent, and its answer is not stored.
    let r = send(
        &app,
        get("/file", &[("range", "bytes=0-4"), ("if-range", "\"x\"")]),
    )
    .await;
    assert_eq!(
        r.cache_status(),
        "kv; fwd=bypass; fwd-status=200; detail=range"
    );
    assert_eq!(r.header("x-cache"), "BYPASS");
    assert_eq!(range_at_origin(&origin).as_deref(), Some("bytes=0-4"));
    let (_, sent) = origin.last_request().unwrap();
    assert_eq!(sent["if-range"], "\"x\"");
    assert!(fx.keys().await.is_empty(), "a range answer is never stored");

    send(&app, get("/file", &[])).await;
    assert_eq!(origin.calls(), 2);

    // Stored, but a Range the cache cannot answer (another unit, invalid, two lines): the
    // origin decides.
    let two_lines = {
        let mut request = get("/file", &[("range", "bytes=0-1")]);
        request
            .headers_mut()
            .append("range", "bytes=2-3".parse().unwrap());
        request
    };
    for request in [
        get("/file", &[("range", "items=0-1")]),
        get("/file", &[("range", "bytes=5-1")]),
        two_lines,
    ] {
        let before = origin.calls();
        let r = send(&app, request).await;
        assert_eq!(
            r.cache_status(),
            "kv; fwd=bypass; fwd-status=200; detail=range"
        );
        assert_eq!(origin.calls(), before + 1);
        assert!(range_at_origin(&origin).is_some());
    }

    // A HEAD ignores Range (it is defined for GET only): an ordinary cached HEAD, and the
    // origin is asked for the whole response.
    let head = || request("HEAD", "/file", &[("range", "bytes=0-4")]);
    let r = send(&app, head()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r
        .cache_status()
        .starts_with("kv; fwd=uri-miss; fwd-status=200; stored"));
    assert_eq!(
        range_at_origin(&origin),
        None,
        "the cache fetches whole responses"
    );
    let r = send(&app, head()).await;
    assert_eq!(
        (r.status, r.cache_status()),
        (StatusCode::OK, "kv; hit; ttl=60")
    );
}

async fn ranges_of_stale_and_non_200_responses(fx: Fixture) {
    let origin = Origin::new(alphabet("max-age=10, stale-while-revalidate=60"));
    let layer = layer(&fx);
    let mut events = layer.subscribe();
    let app = app(&origin, &layer);
    send(&app, get("/file", &[])).await;

    // Stale within stale-while-revalidate: the part at once, a whole response fetched behind
    // (one without stale windows from now on).
    fx.advance(15);
    origin.set(alphabet("max-age=10"));
    let r = send(&app, get("/file", &[("range", "bytes=-2")])).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (StatusCode::PARTIAL_CONTENT, "yz")
    );
    assert_eq!(
        r.cache_status(),
        "kv; hit; ttl=-5; detail=stale-while-revalidate"
    );
    let event = events.recv().await.unwrap();
    assert!(matches!(event, CacheEvent::Refreshed { .. }), "{event:?}");
    assert_eq!(origin.calls(), 2);
    assert_eq!(
        range_at_origin(&origin),
        None,
        "the refresh asks for the whole"
    );

    // Past every window but still in the store (its TTL is at least 60 s): the origin answers
    // the range, as sent.
    fx.advance(20);
    let r = send(&app, get("/file", &[("range", "bytes=0-0")])).await;
    assert_eq!(
        r.cache_status(),
        "kv; fwd=bypass; fwd-status=200; detail=range"
    );
    assert_eq!(range_at_origin(&origin).as_deref(), Some("bytes=0-0"));
    assert_eq!(origin.calls(), 3);

    // A stored response that is not a 200 is served as it is.
    origin.set(Script {
        status: StatusCode::NOT_FOUND,
        body: "no such page".into(),
        ..cache_control("max-age=60")
    });
    send(&app, get("/missing", &[])).await;
    let r = send(&app, get("/missing", &[("range", "bytes=0-1")])).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (StatusCode::NOT_FOUND, "no such page")
    );
    assert_eq!(r.cache_status(), "kv; hit; ttl=60");
    assert_eq!(origin.calls(), 4);
}

async fn vary_matches_equivalent_requests(fx: Fixture) {
    let origin = Origin::new(Script {
        headers: vec![
            ("cache-control", "max-age=60".into()),
            ("vary", "Accept-Encoding, Accept-Language, Accept".into()),
        ],
        body: "{n}:{lang}".into(),
        ..Script::default()
    });
    let layer = layer(&fx);
    let app = app(&origin, &layer);

    let first = send(
        &app,
        get(
            "/page",
            &[
                ("accept-encoding", "gzip, br;q=0.5"),
                ("accept-language", "en-US, fr;q=0.8"),
                ("accept", "text/html, application/json;q=0.9"),
            ],
        ),
    )
    .await;
    assert_eq!(first.body, "1:en-US, fr;q=0.8");

    // Other whitespace, letter case, member order and line splitting: the same variant.
    let equivalent = [
        [
            ("accept-encoding", "br;q=0.5,gzip"),
            ("accept-language", "FR;Q=0.8 , en-us"),
            ("accept", "Application/JSON; q=0.9,text/html"),
        ],
        [
            ("accept-encoding", " GZIP ,, br ; q=0.5 "),
            ("accept-language", "fr;q=0.8,en-US,en-US"),
            ("accept", "text/html ,application/json ;q=0.9"),
        ],
    ];
    for headers in &equivalent {
        let r = send(&app, get("/page", headers)).await;
        assert_eq!(r.cache_status(), "kv; hit; ttl=60", "{headers:?}");
        assert_eq!(r.body, "1:en-US, fr;q=0.8");
    }
    let mut split = get("/page", &[("accept", "application/json;q=0.9, text/html")]);
    for (name, value) in [
        ("accept-encoding", "br;q=0.5"),
        ("accept-encoding", "gzip"),
        ("accept-language", "fr;q=0.8"),
        ("accept-language", "en-us"),
    ] {
        split.headers_mut().append(name, value.parse().unwrap());
    }
    assert_eq!(send(&app, split).await.cache_status(), "kv; hit; ttl=60");

    // A different weight or language is a different variant.
    for headers in [
        [
            ("accept-encoding", "gzip, br;q=0.4"),
            ("accept-language", "en-US, fr;q=0.8"),
            ("accept", "text/html, application/json;q=0.9"),
        ],
        [
            ("accept-encoding", "gzip, br;q=0.5"),
            ("accept-language", "de"),
            ("accept", "text/html, application/json;q=0.9"),
        ],
    ] {
        let r = send(&app, get("/page", &headers)).await;
        assert!(
            r.cache_status().starts_with("kv; fwd=vary-miss"),
            "{headers:?}"
        );
    }
    assert_eq!(origin.calls(), 3);
}

async fn vary_keeps_case_and_order_where_they_matter(fx: Fixture) {
    let origin = Origin::new(Script {
        headers: vec![
            ("cache-control", "max-age=60".into()),
            ("vary", "Cookie, X-Tenant".into()),
        ],
        ..Script::default()
    });
    let layer = layer(&fx);
    let app = app(&origin, &layer);

    send(
        &app,
        get(
            "/me",
            &[("cookie", "id=Abc; theme=dark"), ("x-tenant", "Acme")],
        ),
    )
    .await;
    // Whitespace alone differs: the same variant.
    let r = send(
        &app,
        get(
            "/me",
            &[("cookie", " id=Abc;   theme=dark "), ("x-tenant", " Acme")],
        ),
    )
    .await;
    assert_eq!(
        (r.cache_status(), r.body.as_str()),
        ("kv; hit; ttl=60", "v1")
    );
    // HTTP/2 splits Cookie into lines: joined with "; " they are the same cookie string.
    let mut split = get("/me", &[("cookie", "id=Abc"), ("x-tenant", "Acme")]);
    split
        .headers_mut()
        .append("cookie", "theme=dark".parse().unwrap());
    assert_eq!(send(&app, split).await.body, "v1");

    // Cookie values and unknown fields keep their case and order: other variants.
    for headers in [
        [("cookie", "id=abc; theme=dark"), ("x-tenant", "Acme")],
        [("cookie", "theme=dark; id=Abc"), ("x-tenant", "Acme")],
        [("cookie", "id=Abc; theme=dark"), ("x-tenant", "acme")],
    ] {
        let r = send(&app, get("/me", &headers)).await;
        assert!(
            r.cache_status().starts_with("kv; fwd=vary-miss"),
            "{headers:?}"
        );
    }
    assert_eq!(origin.calls(), 4);
}

async fn every_unsafe_method_invalidates_and_only_those(fx: Fixture) {
    let origin = Origin::new(cache_control("max-age=60"));
    let layer = layer(&fx);
    let app = app(&origin, &layer);

    send(&app, get("/doc", &[])).await;
    send(&app, get("/other", &[])).await;
    for method in [
        "M-SEARCH",
        "PURGE",
        "PROPPATCH",
        "POST",
        "DELETE",
        "CONNECT",
    ] {
        assert_eq!(send(&app, get("/doc", &[])).await.header("x-cache"), "HIT");
        assert_eq!(
            send(&app, get("/other", &[])).await.header("x-cache"),
            "HIT"
        );

        // A 2xx or 3xx answer invalidates the URL, and Content-Location on the same host.
        origin.set(Script {
            status: StatusCode::NO_CONTENT,
            headers: vec![("content-location", "http://example.com/other".into())],
            ..Script::default()
        });
        let r = send(&app, request(method, "/doc", &[])).await;
        assert_eq!(r.header("x-cache"), "BYPASS", "{method}");
        assert_eq!(
            r.cache_status(),
            "kv; fwd=method; fwd-status=204; detail=invalidated",
            "{method}"
        );
        origin.set(cache_control("max-age=60"));
        for path in ["/doc", "/other"] {
            let r = send(&app, get(path, &[])).await;
            assert_eq!(r.header("x-cache"), "MISS", "{method} {path}");
        }
    }
    // Two first fills, then per method: itself and the two refills.
    assert_eq!(origin.calls(), 2 + 6 * 3);
    assert_eq!(layer.stats().invalidations, 6);

    // Safe methods never invalidate.
    for method in ["OPTIONS", "TRACE"] {
        let r = send(&app, request(method, "/doc", &[])).await;
        assert_eq!(
            r.cache_status(),
            "kv; fwd=method; fwd-status=200",
            "{method}"
        );
    }
    // An unsafe extension method the origin refuses invalidates nothing.
    origin.set(Script {
        status: StatusCode::METHOD_NOT_ALLOWED,
        ..Script::default()
    });
    let r = send(&app, request("M-SEARCH", "/doc", &[])).await;
    assert_eq!(r.cache_status(), "kv; fwd=method; fwd-status=405");
    origin.set(cache_control("max-age=60"));
    assert_eq!(send(&app, get("/doc", &[])).await.header("x-cache"), "HIT");
    assert_eq!(layer.stats().invalidations, 6);
}
