//! Every layer over a store that fails, stalls or hangs (kv_core::testing::FaultyStore): each
//! answers as its documented store-error policy says — never a panic, never a hung request,
//! never a status the policy does not promise — loses nothing it acknowledged, and recovers by
//! itself when the store does.
//!
//! Time is tokio's paused clock (hangs meet their timeouts at once) and the store's manual clock.
#![cfg(all(
    feature = "session",
    feature = "rate_limit",
    feature = "cache",
    feature = "flags",
    feature = "config",
    feature = "axum"
))]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::routing::{get, post};
use axum::Router;
use http::{header, Request, Response, StatusCode};
use http_body_util::BodyExt;
use kv_backends::memory::MemoryBackend;
use kv_core::testing::{Fault, Faults, FaultyStore, Ops};
use kv_core::{ManualClock, Namespace, Store};
use kv_middleware::cache::CacheLayer;
use kv_middleware::config::{Config, ConfigError};
use kv_middleware::flags::{FlagDefinition, FlagStore, Rule};
use kv_middleware::rate_limit::{RateLimitLayer, RateLimiter, StoreErrorPolicy};
use kv_middleware::session::{LoadErrorPolicy, Session, SessionLayer};
use tower::ServiceExt;

const START: u64 = 1_700_000_000;

/// A memory namespace on a manual clock, seen through a fault injector.
async fn faulty(name: &str, seed: u64) -> (Namespace, Faults, ManualClock) {
    let clock = ManualClock::at_unix_secs(START);
    let store = Store::new(MemoryBackend::builder().clock(clock.shared()).build());
    let real = store.namespace(name).await.unwrap();
    let (namespace, faults) = FaultyStore::wrap_seeded(&real, seed);
    (namespace, faults, clock)
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, http::HeaderMap, String) {
    let response: Response<Body> = app.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

// ---- sessions ----

fn session_app(layer: SessionLayer) -> Router {
    Router::new()
        .route(
            "/incr",
            post(|session: Session| async move {
                let n: u64 = session.get("n").await?.unwrap_or(0) + 1;
                session.insert("n", n).await?;
                Ok::<_, kv_middleware::session::SessionError>(n.to_string())
            }),
        )
        .route(
            "/read",
            get(|session: Session| async move {
                let n: Option<u64> = session.get("n").await?;
                Ok::<_, kv_middleware::session::SessionError>(
                    n.map_or("none".to_owned(), |n| n.to_string()),
                )
            }),
        )
        .layer(layer)
}

fn with_cookie(method: &str, path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    request.body(Body::empty()).unwrap()
}

fn set_cookie(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get(header::SET_COOKIE)
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
}

#[tokio::test(start_paused = true)]
async fn sessions_fail_closed_on_load_errors_and_lose_nothing() {
    let (ns, faults, _clock) = faulty("SESSIONS", 1).await;
    let app = session_app(SessionLayer::new(ns));
    let (status, headers, body) = send(&app, with_cookie("POST", "/incr", None)).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "1"));
    let cookie = set_cookie(&headers).unwrap();

    faults.always(Ops::Reads, Fault::Error);
    let (status, headers, _) = send(&app, with_cookie("POST", "/incr", Some(&cookie))).await;
    assert_eq!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "the documented 500"
    );
    assert!(
        headers.get(header::SET_COOKIE).is_none(),
        "no cookie on a failed load"
    );

    faults.clear();
    let (status, _, body) = send(&app, with_cookie("GET", "/read", Some(&cookie))).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "1"),
        "the session survived"
    );
}

#[tokio::test(start_paused = true)]
async fn sessions_fail_open_with_the_empty_policy() {
    let (ns, faults, _clock) = faulty("SESSIONS", 2).await;
    let app = session_app(SessionLayer::new(ns).with_load_error_policy(LoadErrorPolicy::Empty));
    let (_, headers, _) = send(&app, with_cookie("POST", "/incr", None)).await;
    let cookie = set_cookie(&headers).unwrap();
    faults.always(Ops::Reads, Fault::Error);
    let (status, _, body) = send(&app, with_cookie("GET", "/read", Some(&cookie))).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "none"));
    faults.clear();
    let (_, _, body) = send(&app, with_cookie("GET", "/read", Some(&cookie))).await;
    assert_eq!(body, "1", "the stored session was not overwritten");
}

#[tokio::test(start_paused = true)]
async fn a_hung_session_store_times_out_instead_of_hanging_the_request() {
    let (ns, faults, _clock) = faulty("SESSIONS", 3).await;
    let layer = SessionLayer::new(ns);
    let app = session_app(layer.clone());
    let (_, headers, _) = send(&app, with_cookie("POST", "/incr", None)).await;
    let cookie = set_cookie(&headers).unwrap();

    faults.always(Ops::All, Fault::Hang);
    let started = tokio::time::Instant::now();
    let (status, _, _) = send(&app, with_cookie("GET", "/read", Some(&cookie))).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(started.elapsed(), kv_middleware::DEFAULT_STORE_TIMEOUT);

    // A save that hangs: also bounded, also the documented 500.
    faults.clear().always(Ops::Writes, Fault::Hang);
    let (status, _, _) = send(&app, with_cookie("POST", "/incr", Some(&cookie))).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(layer.stats().save_errors >= 1);

    // A slow store within the timeout is just slow.
    faults
        .clear()
        .always(Ops::All, Fault::Delay(Duration::from_secs(1)));
    let (status, _, body) = send(&app, with_cookie("POST", "/incr", Some(&cookie))).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "2"));
}

#[tokio::test(start_paused = true)]
async fn sessions_under_random_faults_keep_every_acknowledged_count() {
    let (ns, faults, _clock) = faulty("SESSIONS", 4).await;
    let app = session_app(SessionLayer::new(ns));
    let mut cookies = Vec::new();
    for _ in 0..20 {
        let (_, headers, _) = send(&app, with_cookie("POST", "/incr", None)).await;
        cookies.push(set_cookie(&headers).unwrap());
    }
    let mut acknowledged: HashMap<usize, u64> = (0..20).map(|i| (i, 1)).collect();
    faults.with_probability(Ops::All, 0.3, Fault::Error);
    let mut statuses: HashMap<StatusCode, usize> = HashMap::new();
    for round in 0..500 {
        let i = round % cookies.len();
        let (status, _, body) = send(&app, with_cookie("POST", "/incr", Some(&cookies[i]))).await;
        *statuses.entry(status).or_default() += 1;
        match status {
            StatusCode::OK => {
                let n: u64 = body.parse().unwrap();
                assert_eq!(n, acknowledged[&i] + 1, "counts only what was saved");
                acknowledged.insert(i, n);
            }
            StatusCode::INTERNAL_SERVER_ERROR => {}
            other => panic!("status {other} is not in the session policy"),
        }
    }
    assert!(statuses[&StatusCode::OK] > 100 && statuses[&StatusCode::INTERNAL_SERVER_ERROR] > 100);
    assert!(faults.counts().errors > 100);
    faults.clear();
    for (i, cookie) in cookies.iter().enumerate() {
        let (status, _, body) = send(&app, with_cookie("GET", "/read", Some(cookie))).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, acknowledged[&i].to_string(), "session {i}");
    }
}

// ---- rate limits ----

fn limited_app(layer: RateLimitLayer) -> Router {
    Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(layer)
}

fn from_peer() -> Request<Body> {
    let mut request = Request::get("/").body(Body::empty()).unwrap();
    request
        .extensions_mut()
        .insert("192.0.2.7:4000".parse::<SocketAddr>().unwrap());
    request
}

async fn limiter(quota: &str, seed: u64) -> (RateLimiter, Faults) {
    let (ns, faults, _clock) = faulty("RATE_LIMITS", seed).await;
    let limiter = RateLimiter::builder(ns)
        .with_quota("api", quota.parse().unwrap())
        .with_store_timeout(Duration::from_millis(250))
        .build()
        .unwrap();
    (limiter, faults)
}

#[tokio::test(start_paused = true)]
async fn rate_limit_fails_open_by_default_and_closed_when_asked() {
    let (open, open_faults) = limiter("3/h", 5).await;
    let open_app = limited_app(RateLimitLayer::new(open.clone()));
    let (closed, closed_faults) = limiter("3/h", 6).await;
    let closed_app = limited_app(
        RateLimitLayer::new(closed.clone()).with_store_error_policy(StoreErrorPolicy::FailClosed),
    );

    for fault in [Fault::Error, Fault::Hang] {
        open_faults.clear().always(Ops::All, fault);
        closed_faults.clear().always(Ops::All, fault);
        let started = tokio::time::Instant::now();
        for _ in 0..10 {
            let (status, headers, body) = send(&open_app, from_peer()).await;
            assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"), "{fault:?}");
            assert!(
                headers.get("ratelimit").is_none(),
                "no headers when unchecked"
            );
            let (status, _, _) = send(&closed_app, from_peer()).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{fault:?}");
        }
        assert!(
            started.elapsed() <= Duration::from_millis(250) * 20,
            "bounded by the timeout"
        );
    }
    assert_eq!(open.stats().store_errors + open.stats().timeouts, 20);
    assert_eq!(open.stats().timeouts, 10);

    // Recovery: the limit is enforced again, exactly, with nothing counted during the outage.
    open_faults.clear();
    let statuses: Vec<u16> =
        futures::future::join_all((0..5).map(|_| send(&open_app, from_peer())))
            .await
            .into_iter()
            .map(|(status, _, _)| status.as_u16())
            .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        2,
        "{statuses:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn rate_limit_under_random_faults_never_admits_more_than_the_quota_when_closed() {
    let (limiter, faults) = limiter("50/h", 7).await;
    let app = limited_app(
        RateLimitLayer::new(limiter).with_store_error_policy(StoreErrorPolicy::FailClosed),
    );
    faults
        .with_probability(Ops::All, 0.2, Fault::Error)
        .with_probability(Ops::All, 0.1, Fault::Delay(Duration::from_millis(100)));
    let mut counts: HashMap<u16, usize> = HashMap::new();
    for _ in 0..300 {
        let (status, _, _) = send(&app, from_peer()).await;
        *counts.entry(status.as_u16()).or_default() += 1;
    }
    assert!(
        counts.keys().all(|s| [200, 429, 503].contains(s)),
        "{counts:?}"
    );
    assert!(counts[&503] > 20, "{counts:?}");
    // A failed write is not an admission: at most the quota passed, and it did fill up.
    assert_eq!(counts[&200], 50, "{counts:?}");
}

// ---- cache ----

#[tokio::test(start_paused = true)]
async fn cache_serves_the_origin_when_the_store_fails_and_stale_if_error_when_the_origin_does() {
    let (ns, faults, clock) = faulty("HTTP_CACHE", 8).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let origin_down = Arc::new(AtomicBool::new(false));
    let layer = CacheLayer::new(ns).with_store_timeout(Duration::from_millis(200));
    let app = {
        let (calls, origin_down) = (calls.clone(), origin_down.clone());
        Router::new()
            .route(
                "/report",
                get(move || {
                    let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                    let down = origin_down.load(Ordering::SeqCst);
                    async move {
                        if down {
                            (
                                StatusCode::INTERNAL_SERVER_ERROR,
                                [(header::CACHE_CONTROL, "no-store")],
                                "down".to_owned(),
                            )
                        } else {
                            (
                                StatusCode::OK,
                                [(header::CACHE_CONTROL, "max-age=2, stale-if-error=300")],
                                format!("report {n}"),
                            )
                        }
                    }
                }),
            )
            .layer(layer.clone())
    };
    let get_report = || {
        Request::get("/report")
            .header(header::HOST, "x")
            .body(Body::empty())
            .unwrap()
    };

    // The store fails or hangs: every request still gets the origin's answer.
    for fault in [Fault::Error, Fault::Hang] {
        faults.clear().always(Ops::All, fault);
        let before = calls.load(Ordering::SeqCst);
        let (status, _, body) = send(&app, get_report()).await;
        assert_eq!(status, StatusCode::OK, "{fault:?}");
        assert_eq!(body, format!("report {}", before + 1));
    }
    assert!(layer.stats().store_errors >= 2);

    // Healthy again: cached, then the origin fails after max-age: the stale copy is served.
    faults.clear();
    let (_, _, cached) = send(&app, get_report()).await;
    let (_, headers, hit) = send(&app, get_report()).await;
    assert_eq!(hit, cached);
    assert!(headers["cache-status"].to_str().unwrap().contains("hit"));
    clock.advance(Duration::from_secs(10));
    origin_down.store(true, Ordering::SeqCst);
    let (status, headers, body) = send(&app, get_report()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, cached, "stale-if-error");
    assert!(headers["cache-status"]
        .to_str()
        .unwrap()
        .contains("detail=stale-if-error"));
}

// ---- flags and config ----

#[tokio::test(start_paused = true)]
async fn flags_keep_the_last_good_snapshot_then_answer_stale() {
    let (ns, faults, clock) = faulty("FLAGS", 9).await;
    let admin = FlagStore::builder(ns.clone()).with_manual_refresh().build();
    admin
        .set_flag(
            "new-ui",
            &FlagDefinition::boolean(false).with_rule(Rule::serve("on")),
        )
        .await
        .unwrap();
    let flags = FlagStore::builder(ns)
        .with_manual_refresh()
        .with_max_staleness(Duration::from_secs(60))
        .load()
        .await
        .unwrap();
    assert!(flags.flags(Default::default()).is_enabled("new-ui"));

    for fault in [Fault::Error, Fault::Hang] {
        faults.clear().always(Ops::All, fault);
        let error = flags.refresh().await.unwrap_err();
        assert!(error.to_string().contains("store"), "{error}");
        let handle = flags.flags(Default::default());
        assert!(handle.is_enabled("new-ui"), "the last good snapshot");
        assert_eq!(handle.details("new-ui").reason.as_str(), "TARGETING_MATCH");
    }
    // A write while the store is down fails with a typed error; nothing half-written.
    assert!(admin
        .set_flag("other", &FlagDefinition::boolean(true))
        .await
        .is_err());

    clock.advance(Duration::from_secs(61));
    let handle = flags.flags(Default::default());
    assert!(handle.is_enabled("new-ui"), "still served");
    assert_eq!(handle.details("new-ui").reason.as_str(), "STALE");
    assert!(flags.is_stale());

    faults.clear();
    flags.refresh().await.unwrap();
    assert!(!flags.is_stale());
    assert_eq!(flags.keys(), ["new-ui"], "the failed write left nothing");
}

#[tokio::test(start_paused = true)]
async fn config_keeps_the_last_good_value_and_refuses_writes_while_the_store_is_down() {
    let (ns, faults, _clock) = faulty("CONFIG", 10).await;
    let config: Config<serde_json::Value> = Config::builder(ns, "app")
        .with_default_value(serde_json::json!({"limit": 1}))
        .with_manual_refresh()
        .load()
        .await
        .unwrap();
    assert_eq!(
        config.set(&serde_json::json!({"limit": 2})).await.unwrap(),
        1
    );

    for fault in [Fault::Error, Fault::Hang] {
        faults.clear().always(Ops::All, fault);
        assert!(
            matches!(config.refresh().await, Err(ConfigError::Store(_))),
            "{fault:?}"
        );
        assert_eq!(*config.get(), serde_json::json!({"limit": 2}));
        assert!(matches!(
            config.set(&serde_json::json!({"limit": 3})).await,
            Err(ConfigError::Store(_))
        ));
    }
    // Writes fail half-way (the document lands, its version record does not): the version
    // history stays consistent once the store is back.
    faults.clear().next(Ops::Writes, 1, Fault::Error);
    assert!(config.set(&serde_json::json!({"limit": 4})).await.is_err());
    faults.clear();
    let version = config.set(&serde_json::json!({"limit": 5})).await.unwrap();
    assert_eq!(version, 2, "the failed writes took no version number");
    config.refresh().await.unwrap();
    assert_eq!(*config.get(), serde_json::json!({"limit": 5}));
    let kept: Vec<u64> = config
        .versions()
        .await
        .unwrap()
        .iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(kept, [1, 2]);
    assert_eq!(
        config.version_value(1).await.unwrap(),
        serde_json::json!({"limit": 2})
    );
}

// ---- replies lost after the write landed ----

/// The fault itself: the wrapped store runs the call, then the caller gets an error (or
/// nothing, until its timeout), exactly as when a connection drops after the server applied it.
#[tokio::test(start_paused = true)]
async fn a_lost_reply_lands_the_write_and_fails_the_call() {
    let (ns, faults, _clock) = faulty("LOST", 11).await;
    faults.next(Ops::Writes, 1, Fault::LostReply);
    assert!(
        ns.put_text("k", "1").await.is_err(),
        "the caller sees an error"
    );
    assert_eq!(
        ns.get_text("k").await.unwrap().as_deref(),
        Some("1"),
        "it landed"
    );

    let bounded = ns.with_timeout(Duration::from_secs(1));
    faults.next(Ops::Writes, 1, Fault::LostReplyHang);
    let started = tokio::time::Instant::now();
    assert!(
        bounded.put_text("k", "2").await.is_err(),
        "only the timeout ends it"
    );
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    assert_eq!(
        ns.get_text("k").await.unwrap().as_deref(),
        Some("2"),
        "it landed"
    );

    faults.next(Ops::Writes, 1, Fault::LostReply);
    assert!(ns.delete("k").await.is_err());
    assert_eq!(ns.get_text("k").await.unwrap(), None, "the delete landed");

    let counts = faults.counts();
    assert_eq!(
        (counts.lost_replies, counts.errors, counts.injected),
        (3, 2, 3)
    );
}

/// Sessions whose saves land but lose their reply: the request that was told "error" got a
/// 500, its change may be in the store (a later request sees it), and nothing acknowledged is
/// ever lost or applied twice. Each request's fate is read from the injector's counters: a
/// 500 whose save lost its reply landed its increment, any other 500 did not.
#[tokio::test(start_paused = true)]
async fn sessions_with_lost_replies_lose_nothing_acknowledged_and_apply_nothing_twice() {
    let (ns, faults, _clock) = faulty("SESSIONS", 12).await;
    let app = session_app(SessionLayer::new(ns).with_store_timeout(Some(Duration::from_secs(1))));
    let mut cookies = Vec::new();
    for _ in 0..10 {
        let (_, headers, _) = send(&app, with_cookie("POST", "/incr", None)).await;
        cookies.push(set_cookie(&headers).unwrap());
    }
    let mut stored: Vec<u64> = vec![1; cookies.len()];
    faults
        .with_probability(Ops::Writes, 0.15, Fault::LostReply)
        .with_probability(Ops::Writes, 0.05, Fault::LostReplyHang)
        .with_probability(Ops::All, 0.1, Fault::Error);
    let (mut ok, mut landed_500, mut clean_500) = (0, 0, 0);
    for round in 0..400 {
        let i = round % cookies.len();
        let lost_before = faults.counts().lost_replies;
        let (status, _, body) = send(&app, with_cookie("POST", "/incr", Some(&cookies[i]))).await;
        let lost = faults.counts().lost_replies - lost_before;
        match status {
            StatusCode::OK => {
                assert_eq!(lost, 0);
                assert_eq!(body, (stored[i] + 1).to_string(), "round {round}");
                stored[i] += 1;
                ok += 1;
            }
            StatusCode::INTERNAL_SERVER_ERROR if lost == 1 => {
                stored[i] += 1;
                landed_500 += 1;
            }
            StatusCode::INTERNAL_SERVER_ERROR => {
                assert_eq!(lost, 0);
                clean_500 += 1;
            }
            other => panic!("status {other} is not in the session policy"),
        }
    }
    assert!(
        ok > 100 && landed_500 > 20 && clean_500 > 20,
        "{ok} {landed_500} {clean_500}"
    );
    faults.clear();
    for (i, cookie) in cookies.iter().enumerate() {
        let (status, _, body) = send(&app, with_cookie("GET", "/read", Some(cookie))).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body,
            stored[i].to_string(),
            "session {i}: exactly the landed writes"
        );
    }
}

/// A rate-limit write that landed but whose reply was lost counts against the quota although
/// the request was refused (fail closed) or let through unchecked (fail open); it never lets
/// more than the quota through: every slot is either an admission or a lost reply.
#[tokio::test(start_paused = true)]
async fn rate_limit_lost_replies_use_up_quota_but_never_admit_more_than_it() {
    for policy in [StoreErrorPolicy::FailClosed, StoreErrorPolicy::FailOpen] {
        let (limiter, faults) = limiter("50/h", 13).await;
        let app = limited_app(RateLimitLayer::new(limiter).with_store_error_policy(policy));
        faults
            .with_probability(Ops::Writes, 0.2, Fault::LostReply)
            .with_probability(Ops::Writes, 0.1, Fault::LostReplyHang);
        let mut counts: HashMap<u16, usize> = HashMap::new();
        for _ in 0..200 {
            let (status, _, _) = send(&app, from_peer()).await;
            *counts.entry(status.as_u16()).or_default() += 1;
        }
        let lost = faults.counts().lost_replies as usize;
        assert!(lost > 5, "{policy:?}: {counts:?}");
        let get = |s: u16| counts.get(&s).copied().unwrap_or(0);
        match policy {
            StoreErrorPolicy::FailClosed => {
                // The lost replies were refused and still took their slots.
                assert_eq!(get(503), lost, "{policy:?}: {counts:?}");
                assert_eq!(get(200) + lost, 50, "{policy:?}: {counts:?}");
            }
            _ => {
                // Let through unchecked, and counted all the same: exactly the quota passed.
                assert_eq!(get(200), 50, "{policy:?}: {counts:?}");
            }
        }
        assert_eq!(
            get(429),
            200 - get(200) - get(503),
            "{policy:?}: {counts:?}"
        );
    }
}

/// A config write whose reply was lost: the caller got an error, the document changed once
/// (a refresh shows it), its version has no history record, and a conditional retry cannot
/// apply it twice: it answers `Conflict` with the version the lost write took.
#[tokio::test(start_paused = true)]
async fn config_lost_replies_apply_once_and_a_conditional_retry_sees_them() {
    let (ns, faults, _clock) = faulty("CONFIG", 14).await;
    let config: Config<serde_json::Value> = Config::builder(ns, "app")
        .with_default_value(serde_json::json!({"n": 0}))
        .with_manual_refresh()
        .load()
        .await
        .unwrap();
    assert_eq!(config.set(&serde_json::json!({"n": 1})).await.unwrap(), 1);

    // update = read, modify, compare-and-swap: the swap lands, its reply is lost.
    faults.next(Ops::Writes, 1, Fault::LostReply);
    let bump = |v: &mut serde_json::Value| v["n"] = (v["n"].as_u64().unwrap() + 1).into();
    assert!(matches!(
        config.update(bump).await,
        Err(ConfigError::Store(_))
    ));
    assert_eq!(
        *config.get(),
        serde_json::json!({"n": 1}),
        "not yet seen here"
    );
    config.refresh().await.unwrap();
    assert_eq!(*config.get(), serde_json::json!({"n": 2}), "applied once");
    assert_eq!(config.version(), Some(2));

    // The caller retries the way that cannot apply twice: conditionally on the version it saw.
    faults.next(Ops::Writes, 1, Fault::LostReplyHang);
    assert!(config
        .set_if_version(&serde_json::json!({"n": 3}), 2)
        .await
        .is_err());
    match config.set_if_version(&serde_json::json!({"n": 3}), 2).await {
        Err(ConfigError::Conflict { current, .. }) => assert_eq!(current, Some(3)),
        other => panic!("a retry after a landed write must conflict, got {other:?}"),
    }
    config.refresh().await.unwrap();
    assert_eq!(*config.get(), serde_json::json!({"n": 3}));

    // The versions whose replies were lost have no history record; the others do.
    let kept: Vec<u64> = config
        .versions()
        .await
        .unwrap()
        .iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(kept, [1]);
    assert_eq!(config.set(&serde_json::json!({"n": 4})).await.unwrap(), 4);
    let kept: Vec<u64> = config
        .versions()
        .await
        .unwrap()
        .iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(kept, [1, 4]);
}
