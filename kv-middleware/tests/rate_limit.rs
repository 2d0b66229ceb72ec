//! The rate-limit layer through axum, with a manual clock: headers and 429 bodies exactly,
//! Retry-After, keys (trusted proxies, IPv6 grouping, headers, allow-lists, missing keys),
//! store-error policies, per-route layers and nesting.
#![cfg(all(feature = "rate_limit", feature = "axum"))]

mod rate_limit_support;

use kv_core::testing::{Fault, Ops};
use std::time::Duration;

use axum::body::Body;
use axum::routing::{get, post};
use axum::Router;
use http::{HeaderName, Request, StatusCode};
use kv_middleware::rate_limit::{
    AllowList, ClientIp, ForwardedHeader, HeaderKey, HeaderStyle, KeyExtractor, MissingKey, PeerIp,
    Quota, RateLimitLayer, RateLimiter, Rejection, StoreErrorPolicy,
};
use rate_limit_support::{body_text, get_from, header, request_from, Fixture, START};
use tower::ServiceExt;

fn limiter(fx: &Fixture, name: &str, quota: &str) -> RateLimiter {
    RateLimiter::new(fx.namespace.clone(), name, quota.parse().unwrap()).unwrap()
}

fn app(layer: RateLimitLayer) -> Router {
    Router::new()
        .route("/", get(|| async { "hello" }))
        .route("/health", get(|| async { "ok" }))
        .route_layer(layer)
}

async fn send(app: &Router, request: Request<Body>) -> http::Response<Body> {
    app.clone().oneshot(request).await.unwrap()
}

async fn status(app: &Router, request: Request<Body>) -> StatusCode {
    send(app, request).await.status()
}

const PEER: &str = "203.0.113.7:50000";

#[tokio::test]
async fn headers_and_the_429_body_exactly() {
    let fx = Fixture::memory().await;
    let app = app(RateLimitLayer::new(limiter(&fx, "api", "3/min")));
    for (remaining, reset) in [(2, 20), (1, 40), (0, 60)] {
        let response = send(&app, get_from("/", PEER)).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "ratelimit-policy"), r#""api";q=3;w=60"#);
        assert_eq!(
            header(&response, "ratelimit"),
            format!(r#""api";r={remaining};t={reset}"#)
        );
        assert_eq!(header(&response, "retry-after"), "");
        assert_eq!(body_text(response).await, "hello");
    }
    let response = send(&app, get_from("/", PEER)).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&response, "retry-after"), "20");
    assert_eq!(header(&response, "ratelimit-policy"), r#""api";q=3;w=60"#);
    assert_eq!(header(&response, "ratelimit"), r#""api";r=0;t=60"#);
    assert_eq!(
        header(&response, "content-type"),
        "application/problem+json"
    );
    assert_eq!(header(&response, "x-ratelimit-limit"), "");
    assert_eq!(
        body_text(response).await,
        concat!(
            r#"{"type":"https://iana.org/assignments/http-problem-types#quota-exceeded","#,
            r#""title":"Request cannot be satisfied as assigned quota has been exceeded","#,
            r#""status":429,"detail":"Quota \"api\" is exhausted; retry in 20 s.","#,
            r#""violated-policies":["api"]}"#
        )
    );

    // 20 s later one unit is back, and the reset has moved with the clock.
    fx.clock.advance(Duration::from_millis(19_500));
    let response = send(&app, get_from("/", PEER)).await;
    assert_eq!(header(&response, "retry-after"), "1", "0.5 s rounds up");
    assert_eq!(header(&response, "ratelimit"), r#""api";r=0;t=41"#);
    fx.clock.advance(Duration::from_millis(500));
    let response = send(&app, get_from("/", PEER)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "ratelimit"), r#""api";r=0;t=60"#);
}

#[tokio::test]
async fn a_store_that_answers_later_gives_the_same_answers() {
    // Each store call yields once: the check completes in the response future, which then
    // calls the inner service (the path of remote stores).
    let fx = Fixture::faulty(true).await;
    fx.faults().always(Ops::All, Fault::Yield);
    let app = app(RateLimitLayer::new(limiter(&fx, "api", "2/min")));
    let response = send(&app, get_from("/", PEER)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "ratelimit"), r#""api";r=1;t=30"#);
    assert_eq!(body_text(response).await, "hello");
    assert_eq!(status(&app, get_from("/", PEER)).await, 200);
    let response = send(&app, get_from("/", PEER)).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&response, "retry-after"), "30");
    assert_eq!(header(&response, "ratelimit"), r#""api";r=0;t=60"#);
    assert!(fx.calls().1 >= 2);
}

#[tokio::test]
async fn several_quotas_are_listed_and_the_violated_ones_named() {
    let fx = Fixture::memory().await;
    let limiter = RateLimiter::builder(fx.namespace.clone())
        .with_quota("burst", "2/s".parse().unwrap())
        .with_quota("daily", "3/d".parse().unwrap())
        .build()
        .unwrap();
    let app = app(RateLimitLayer::new(limiter));
    let response = send(&app, get_from("/", PEER)).await;
    assert_eq!(
        header(&response, "ratelimit-policy"),
        r#""burst";q=2;w=1, "daily";q=3;w=86400"#
    );
    assert_eq!(
        header(&response, "ratelimit"),
        r#""burst";r=1;t=1, "daily";r=2;t=28800"#
    );
    send(&app, get_from("/", PEER)).await;
    fx.clock.advance(Duration::from_secs(1));
    send(&app, get_from("/", PEER)).await;
    let response = send(&app, get_from("/", PEER)).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    // Daily: 3 spent, the first unit back 8 h after the first request, 1 s ago.
    assert_eq!(header(&response, "retry-after"), "28799");
    assert_eq!(
        header(&response, "ratelimit"),
        r#""burst";r=1;t=1, "daily";r=0;t=86399"#
    );
    let body = body_text(response).await;
    assert!(body.contains(r#""violated-policies":["daily"]"#), "{body}");
}

#[tokio::test]
async fn retry_after_is_whole_seconds_rounded_up_and_never_zero() {
    let fx = Fixture::memory().await;
    // One request every 100 ms: every wait is under a second.
    let fast = Quota::per_second(10).unwrap().with_burst(1).unwrap();
    let fast = RateLimiter::builder(fx.namespace.clone())
        .with_quota("fast", fast)
        .build()
        .unwrap();
    let app = app(RateLimitLayer::new(fast));
    let mut denied = 0;
    for step in 0..200 {
        let response = send(&app, get_from("/", PEER)).await;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            denied += 1;
            assert_eq!(header(&response, "retry-after"), "1", "step {step}");
        } else {
            assert_eq!(header(&response, "retry-after"), "");
        }
        fx.clock.advance(Duration::from_millis(7 + step % 13));
    }
    assert!(denied > 50, "{denied}");

    // Longer waits round up to the next whole second.
    let app = self::app(RateLimitLayer::new(limiter(&fx, "slow", "1/min")));
    send(&app, get_from("/", PEER)).await;
    fx.clock.advance(Duration::from_millis(1));
    let response = send(&app, get_from("/", PEER)).await;
    assert_eq!(header(&response, "retry-after"), "60", "59.999 s rounds up");
}

#[tokio::test]
async fn trusted_proxies_are_walked_right_to_left_and_spoofed_entries_ignored() {
    let fx = Fixture::memory().await;
    let layer = RateLimitLayer::new(limiter(&fx, "api", "1/min"))
        .with_key(ClientIp::trusting(["10.0.0.0/8"]).unwrap());
    let app = app(layer);
    let via_proxy = |xff: &str| {
        let request = Request::get("/")
            .header("x-forwarded-for", xff)
            .body(Body::empty())
            .unwrap();
        request_from(request, "10.0.0.2:443")
    };
    // The client is 203.0.113.9, whatever it writes to the left of the proxies' entries.
    assert_eq!(
        status(&app, via_proxy("6.6.6.6, 203.0.113.9, 10.0.0.7")).await,
        200
    );
    assert_eq!(
        status(&app, via_proxy("1.2.3.4, 203.0.113.9, 10.0.0.7")).await,
        429
    );
    assert_eq!(status(&app, via_proxy("203.0.113.9")).await, 429);
    assert_eq!(status(&app, via_proxy("9.9.9.9, 10.0.0.7")).await, 200);
    // A client talking to us directly cannot pose as another by sending the header.
    let direct = request_from(
        Request::get("/")
            .header("x-forwarded-for", "198.51.100.1")
            .body(Body::empty())
            .unwrap(),
        "203.0.113.9:1234",
    );
    assert_eq!(status(&app, direct).await, 429, "keyed by its own address");

    // The Forwarded header, the same way.
    let layer = RateLimitLayer::new(limiter(&fx, "fwd", "1/min")).with_key(
        ClientIp::trusting(["10.0.0.0/8"])
            .unwrap()
            .with_header(ForwardedHeader::Forwarded),
    );
    let app = self::app(layer);
    let forwarded = |value: &str| {
        let request = Request::get("/")
            .header("forwarded", value)
            .body(Body::empty())
            .unwrap();
        request_from(request, "10.0.0.2:443")
    };
    assert_eq!(
        status(&app, forwarded("for=6.6.6.6, for=203.0.113.9")).await,
        200
    );
    assert_eq!(
        status(&app, forwarded("for=7.7.7.7, for=203.0.113.9")).await,
        429
    );
    // An entry a trusted proxy wrote that is no address: no key, 400 by default.
    let response = send(&app, forwarded("for=203.0.113.9, for=unknown")).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn ipv6_clients_are_grouped_by_their_64() {
    let fx = Fixture::memory().await;
    let app = app(RateLimitLayer::new(limiter(&fx, "api", "1/min")));
    assert_eq!(
        status(&app, get_from("/", "[2001:db8:1:2::1]:1000")).await,
        200
    );
    assert_eq!(
        status(&app, get_from("/", "[2001:db8:1:2:ffff::9]:1000")).await,
        429
    );
    assert_eq!(
        status(&app, get_from("/", "[2001:db8:1:3::1]:1000")).await,
        200
    );
    let stored = fx
        .namespace
        .get_entry("api:ip:2001:db8:1:2::/64")
        .await
        .unwrap();
    assert!(stored.is_some());

    let exact = RateLimitLayer::new(limiter(&fx, "exact", "1/min"))
        .with_key(PeerIp::new().with_ipv6_prefix(128));
    let app = self::app(exact);
    assert_eq!(
        status(&app, get_from("/", "[2001:db8:1:2::1]:1000")).await,
        200
    );
    assert_eq!(
        status(&app, get_from("/", "[2001:db8:1:2::2]:1000")).await,
        200
    );
    assert_eq!(
        status(&app, get_from("/", "[2001:db8:1:2::2]:1000")).await,
        429
    );
}

#[tokio::test]
async fn allow_listed_requests_bypass_the_limiter() {
    let fx = Fixture::faulty(true).await;
    let layer = RateLimitLayer::new(limiter(&fx, "api", "1/min"))
        .with_allow_list(AllowList::new().networks(["10.0.0.0/8", "::1"]).unwrap())
        .with_allow_if(|head| head.uri.path() == "/health");
    let app = app(layer.clone());
    for _ in 0..5 {
        let response = send(&app, get_from("/", "10.1.2.3:1")).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            header(&response, "ratelimit"),
            "",
            "not counted, no headers"
        );
        assert_eq!(status(&app, get_from("/", "[::1]:1")).await, 200);
        assert_eq!(status(&app, get_from("/health", PEER)).await, 200);
    }
    assert_eq!(fx.calls(), (0, 0), "the store never asked");
    assert_eq!(status(&app, get_from("/", PEER)).await, 200);
    assert_eq!(status(&app, get_from("/", PEER)).await, 429);
    assert_eq!(layer.stats().bypassed, 15);

    // Exact keys too: an internal API key.
    let layer = RateLimitLayer::new(limiter(&fx, "keys", "1/min"))
        .with_key(HeaderKey::parse("x-api-key").unwrap())
        .with_allow_list(AllowList::new().key("x-api-key:internal"));
    let app = self::app(layer);
    let with_key = |key: &str| {
        Request::get("/")
            .header("x-api-key", key)
            .body(Body::empty())
            .unwrap()
    };
    for _ in 0..3 {
        assert_eq!(status(&app, with_key("internal")).await, 200);
    }
    assert_eq!(status(&app, with_key("customer-1")).await, 200);
    assert_eq!(status(&app, with_key("customer-1")).await, 429);
    assert_eq!(status(&app, with_key("customer-2")).await, 200);
}

#[tokio::test]
async fn a_request_without_a_key_gets_a_documented_answer_not_a_500() {
    let fx = Fixture::memory().await;
    let no_peer = || Request::get("/").body(Body::empty()).unwrap();

    let app = app(RateLimitLayer::new(limiter(&fx, "api", "5/min")));
    let response = send(&app, no_peer()).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        header(&response, "content-type"),
        "application/problem+json"
    );
    assert_eq!(
        body_text(response).await,
        concat!(
            r#"{"type":"about:blank","title":"Bad Request","status":400,"#,
            r#""detail":"The request cannot be rate limited: no peer address in the request extensions."}"#
        )
    );

    let allow =
        RateLimitLayer::new(limiter(&fx, "api", "5/min")).with_missing_key(MissingKey::Allow);
    assert_eq!(status(&self::app(allow), no_peer()).await, 200);

    let shared = RateLimitLayer::new(limiter(&fx, "anon", "1/min"))
        .with_missing_key(MissingKey::Shared("anonymous".into()));
    let shared = self::app(shared);
    assert_eq!(status(&shared, no_peer()).await, 200);
    assert_eq!(status(&shared, no_peer()).await, 429);
    assert!(fx
        .namespace
        .get_entry("anon:anonymous")
        .await
        .unwrap()
        .is_some());

    // A header key that is absent, or too long, is missing too.
    let api_key = RateLimitLayer::new(limiter(&fx, "k", "5/min"))
        .with_key(HeaderKey::parse("x-api-key").unwrap());
    let api_key = self::app(api_key);
    let response = send(&api_key, no_peer()).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(body_text(response).await.contains("no x-api-key header"));
    let long = Request::get("/")
        .header("x-api-key", "k".repeat(300))
        .body(Body::empty())
        .unwrap();
    assert_eq!(status(&api_key, long).await, 400);

    // A fallback extractor fills in.
    let fallback = RateLimitLayer::new(limiter(&fx, "fb", "5/min"))
        .with_key(HeaderKey::parse("x-api-key").unwrap().or(PeerIp::new()));
    assert_eq!(status(&self::app(fallback), get_from("/", PEER)).await, 200);
    assert!(fx
        .namespace
        .get_entry("fb:ip:203.0.113.7")
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn store_errors_fail_open_by_default() {
    let fx = Fixture::faulty(true).await;
    let layer = RateLimitLayer::new(limiter(&fx, "api", "1/min"));
    let app = app(layer.clone());
    fx.faults().always(Ops::All, Fault::Error);
    for _ in 0..3 {
        let response = send(&app, get_from("/", PEER)).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            header(&response, "ratelimit"),
            "",
            "nothing known to report"
        );
    }
    let stats = layer.stats();
    assert_eq!((stats.store_errors, stats.failed_open), (3, 3));
    fx.faults().clear();
    assert_eq!(status(&app, get_from("/", PEER)).await, 200);
    assert_eq!(status(&app, get_from("/", PEER)).await, 429);
}

#[tokio::test]
async fn store_errors_fail_closed_on_request() {
    let fx = Fixture::faulty(true).await;
    let layer = RateLimitLayer::new(limiter(&fx, "login", "5/min"))
        .with_store_error_policy(StoreErrorPolicy::FailClosed);
    let app = app(layer.clone());
    fx.faults().always(Ops::All, Fault::Error);
    let response = send(&app, get_from("/", PEER)).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        header(&response, "content-type"),
        "application/problem+json"
    );
    assert_eq!(
        body_text(response).await,
        r#"{"type":"about:blank","title":"Service Unavailable","status":503,"detail":"The rate limiter cannot reach its store."}"#
    );
    assert_eq!(layer.stats().failed_closed, 1);
}

#[tokio::test(start_paused = true)]
async fn a_hanging_store_is_cut_off_by_the_timeout() {
    let fx = Fixture::faulty(true).await;
    let limiter = RateLimiter::builder(fx.namespace.clone())
        .with_quota("api", "5/min".parse().unwrap())
        .with_store_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let closed =
        app(RateLimitLayer::new(limiter.clone())
            .with_store_error_policy(StoreErrorPolicy::FailClosed));
    let open = app(RateLimitLayer::new(limiter.clone()));
    fx.faults().always(Ops::All, Fault::Hang);
    assert_eq!(status(&closed, get_from("/", PEER)).await, 503);
    assert_eq!(status(&open, get_from("/", PEER)).await, 200);
    assert_eq!(limiter.stats().timeouts, 2);
}

#[tokio::test]
async fn each_route_has_its_own_limit_on_one_router() {
    let fx = Fixture::memory().await;
    let login = RateLimitLayer::new(limiter(&fx, "login", "2/15min"))
        .with_store_error_policy(StoreErrorPolicy::FailClosed);
    let api = RateLimitLayer::new(limiter(&fx, "api", "100/min"));
    let app = Router::new()
        .route("/login", post(|| async { "welcome" }))
        .route_layer(login)
        .merge(
            Router::new()
                .route("/api/items", get(|| async { "[]" }))
                .route_layer(api),
        )
        .route("/", get(|| async { "home" }));
    let login = || request_from(Request::post("/login").body(Body::empty()).unwrap(), PEER);
    assert_eq!(status(&app, login()).await, 200);
    assert_eq!(status(&app, login()).await, 200);
    let response = send(&app, login()).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&response, "retry-after"), "450");
    assert_eq!(
        header(&response, "ratelimit-policy"),
        r#""login";q=2;w=900"#
    );

    let response = send(&app, get_from("/api/items", PEER)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "ratelimit-policy"), r#""api";q=100;w=60"#);
    assert_eq!(header(&response, "ratelimit"), r#""api";r=99;t=1"#);

    let response = send(&app, get_from("/", PEER)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "ratelimit"), "", "an unlimited route");
    // An unknown path is a plain 404, not counted anywhere.
    assert_eq!(status(&app, get_from("/nope", PEER)).await, 404);
}

#[tokio::test]
async fn nested_layers_add_up() {
    let fx = Fixture::memory().await;
    let app = Router::new()
        .route("/", get(|| async { "hello" }))
        .route_layer(RateLimitLayer::new(limiter(&fx, "route", "1/min")))
        .layer(RateLimitLayer::new(limiter(&fx, "global", "10/min")));
    let response = send(&app, get_from("/", PEER)).await;
    assert_eq!(
        header(&response, "ratelimit-policy"),
        r#""route";q=1;w=60 | "global";q=10;w=60"#
    );
    assert_eq!(
        header(&response, "ratelimit"),
        r#""route";r=0;t=60 | "global";r=9;t=6"#
    );
    let response = send(&app, get_from("/", PEER)).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        header(&response, "ratelimit"),
        r#""route";r=0;t=60 | "global";r=8;t=12"#
    );
}

#[tokio::test]
async fn legacy_headers_on_request() {
    let fx = Fixture::memory().await;
    let layer =
        RateLimitLayer::new(limiter(&fx, "api", "10/min")).with_headers(HeaderStyle::Legacy);
    let app = app(layer);
    let response = send(&app, get_from("/", PEER)).await;
    assert_eq!(header(&response, "x-ratelimit-limit"), "10");
    assert_eq!(header(&response, "x-ratelimit-remaining"), "9");
    assert_eq!(
        header(&response, "x-ratelimit-reset"),
        (START + 6).to_string()
    );
    assert_eq!(header(&response, "ratelimit"), "");

    let both = RateLimitLayer::new(limiter(&fx, "both", "10/min")).with_headers(HeaderStyle::Both);
    let response = send(&self::app(both), get_from("/", PEER)).await;
    assert_eq!(header(&response, "x-ratelimit-remaining"), "9");
    assert_eq!(header(&response, "ratelimit"), r#""both";r=9;t=6"#);

    let none = RateLimitLayer::new(limiter(&fx, "none", "1/min")).with_headers(HeaderStyle::None);
    let none = self::app(none);
    let response = send(&none, get_from("/", PEER)).await;
    assert!(response
        .headers()
        .keys()
        .all(|k| !k.as_str().contains("ratelimit")));
    let response = send(&none, get_from("/", PEER)).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        header(&response, "retry-after"),
        "60",
        "a 429 always says when"
    );
    assert!(response
        .headers()
        .keys()
        .all(|k| !k.as_str().contains("ratelimit")));
}

#[tokio::test]
async fn the_rejection_is_replaceable() {
    let fx = Fixture::memory().await;
    let layer = RateLimitLayer::new(limiter(&fx, "api", "1/min")).with_rejection(
        |rejection: &Rejection<'_>| match rejection {
            Rejection::QuotaExceeded(outcome) => {
                let mut response =
                    http::Response::new(format!("slow down: {} left", outcome.remaining()).into());
                *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
                response
            }
            other => other.default_response(),
        },
    );
    let app = app(layer);
    send(&app, get_from("/", PEER)).await;
    let response = send(&app, get_from("/", PEER)).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&response, "retry-after"), "60");
    assert_eq!(header(&response, "ratelimit"), r#""api";r=0;t=60"#);
    assert_eq!(header(&response, "content-type"), "");
    assert_eq!(body_text(response).await, "slow down: 0 left");
}

#[tokio::test]
async fn costs_per_request() {
    let fx = Fixture::memory().await;
    let layer = RateLimitLayer::new(limiter(&fx, "api", "10/min")).with_cost_fn(|head| {
        if head.method == http::Method::POST {
            4
        } else {
            1
        }
    });
    let app = Router::new()
        .route("/", get(|| async { "read" }).post(|| async { "write" }))
        .route_layer(layer);
    let write = || request_from(Request::post("/").body(Body::empty()).unwrap(), PEER);
    let response = send(&app, write()).await;
    assert_eq!(header(&response, "ratelimit"), r#""api";r=6;t=24"#);
    send(&app, write()).await;
    let response = send(&app, write()).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        header(&response, "ratelimit"),
        r#""api";r=2;t=48"#,
        "what is left"
    );
    assert_eq!(header(&response, "retry-after"), "12");
    assert_eq!(status(&app, get_from("/", PEER)).await, 200);

    // More than the burst can never pass: a 429 without Retry-After.
    let huge = RateLimitLayer::new(limiter(&fx, "huge", "10/min")).with_cost(11);
    let response = send(&self::app(huge), get_from("/", PEER)).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&response, "retry-after"), "");
    assert!(body_text(response)
        .await
        .contains("too small for this request"));
}

#[tokio::test]
async fn axum_connect_info_is_the_peer() {
    use axum::extract::ConnectInfo;
    let fx = Fixture::memory().await;
    let app = app(RateLimitLayer::new(limiter(&fx, "api", "1/min")));
    let with_info = || {
        let mut request = Request::get("/").body(Body::empty()).unwrap();
        let addr: std::net::SocketAddr = PEER.parse().unwrap();
        request.extensions_mut().insert(ConnectInfo(addr));
        request
    };
    assert_eq!(status(&app, with_info()).await, 200);
    assert_eq!(status(&app, with_info()).await, 429);
    assert_eq!(status(&app, get_from("/", PEER)).await, 429, "the same key");
}

#[tokio::test]
async fn a_real_server_keys_by_the_connection() {
    use std::net::SocketAddr;
    let fx = Fixture::memory().await;
    let app = app(RateLimitLayer::new(limiter(&fx, "api", "2/min")));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    // A plain blocking client: three requests on three connections from 127.0.0.1.
    let statuses = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        (0..3)
            .map(|_| {
                let mut stream = std::net::TcpStream::connect(addr).unwrap();
                stream
                    .write_all(b"GET / HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n")
                    .unwrap();
                let mut answer = String::new();
                stream.read_to_string(&mut answer).unwrap();
                answer.lines().next().unwrap_or_default().to_owned()
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    server.abort();
    assert_eq!(
        statuses,
        [
            "HTTP/1.1 200 OK",
            "HTTP/1.1 200 OK",
            "HTTP/1.1 429 Too Many Requests"
        ]
    );
    assert!(fx
        .namespace
        .get_entry("api:ip:127.0.0.1")
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn a_custom_header_name_is_part_of_the_key() {
    let fx = Fixture::memory().await;
    let layer = RateLimitLayer::new(limiter(&fx, "api", "1/min"))
        .with_key(HeaderKey::new(HeaderName::from_static("x-tenant")));
    let app = app(layer);
    let request = Request::get("/")
        .header("x-tenant", "acme")
        .body(Body::empty())
        .unwrap();
    assert_eq!(status(&app, request).await, 200);
    assert!(fx
        .namespace
        .get_entry("api:x-tenant:acme")
        .await
        .unwrap()
        .is_some());
}

#[cfg(feature = "session")]
#[tokio::test]
async fn the_session_user_is_a_key() {
    use kv_middleware::rate_limit::SessionKey;
    use kv_middleware::session::{Session, SessionLayer};

    let fx = Fixture::memory().await;
    let sessions = SessionLayer::new(fx.namespace.clone());
    let layer = RateLimitLayer::new(limiter(&fx, "api", "1/min"))
        .with_key(SessionKey::new("user").or(PeerIp::new()));
    let app = Router::new()
        .route(
            "/login",
            post(|session: Session| async move {
                session.insert("user", "ada").await.unwrap();
                "in"
            }),
        )
        .route("/", get(|| async { "hello" }))
        .route_layer(layer)
        .layer(sessions);
    // Logging in is itself keyed by address (no user yet).
    let response = send(
        &app,
        request_from(Request::post("/login").body(Body::empty()).unwrap(), PEER),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = header(&response, "set-cookie");
    let cookie = cookie.split(';').next().unwrap().to_owned();
    assert!(fx
        .namespace
        .get_entry("api:ip:203.0.113.7")
        .await
        .unwrap()
        .is_some());
    // Logged in, the user is the key, from any address.
    let as_ada = |peer: &str| {
        let request = Request::get("/")
            .header("cookie", &cookie)
            .body(Body::empty())
            .unwrap();
        request_from(request, peer)
    };
    assert_eq!(status(&app, as_ada("198.51.100.1:1")).await, 200);
    assert_eq!(status(&app, as_ada("198.51.100.2:1")).await, 429);
    assert!(fx
        .namespace
        .get_entry("api:user:ada")
        .await
        .unwrap()
        .is_some());
}

/// Two limiters sharing one memory namespace, as two processes share a store: each remembers
/// the states it wrote, so every request after the other's is decided on a stale memory. The
/// layer's check without a future (a remembered key over a store that answers at once) must
/// lose that race, forget the state and leave the request to the full check: exactly the
/// quota is admitted between them, and the lost races are counted.
#[tokio::test]
async fn two_processes_sharing_a_memory_store_admit_exactly_the_quota() {
    let fx = Fixture::memory().await;
    let first = limiter(&fx, "api", "6/min");
    let second = limiter(&fx, "api", "6/min");
    let (a, b) = (
        app(RateLimitLayer::new(first.clone())),
        app(RateLimitLayer::new(second.clone())),
    );
    let mut admitted = 0;
    for round in 0..10 {
        let app = if round % 2 == 0 { &a } else { &b };
        // Twice in a row through the same process: the second is decided on its own memory.
        for _ in 0..2 {
            if status(app, get_from("/", PEER)).await == StatusCode::OK {
                admitted += 1;
            }
        }
    }
    assert_eq!(admitted, 6);
    let (one, two) = (first.stats(), second.stats());
    assert_eq!(one.allowed + two.allowed, 6);
    assert!(
        one.conflicts + two.conflicts > 0,
        "the processes never raced"
    );
    assert_eq!(one.store_errors + two.store_errors, 0);
}
