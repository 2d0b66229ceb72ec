//! Exact rate limits whose state lives in the store (feature `rate_limit`).
//!
//! [`RateLimitLayer`] checks every request against one or more named [`Quota`]s before the
//! inner service sees it. The state is one small entry per key and quota in a namespace,
//! updated by compare-and-swap, so two, ten or a hundred processes pointed at one shared store
//! enforce one limit between them. [`RateLimiter`] is the same check for code outside HTTP.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::net::SocketAddr;
//! use axum::{body::Body, routing::{get, post}, Router};
//! use http::Request;
//! use kv_middleware::rate_limit::{RateLimitLayer, RateLimiter, StoreErrorPolicy};
//! use tower::ServiceExt;
//!
//! // Any store URL: "memory:", "file:./kv-data", "redis://...", "http://...".
//! let store = kv_backends::open("memory:").await?;
//! let limits = store.namespace("RATE_LIMITS").await?;
//!
//! // A strict limit on logins (failing closed), a lenient one on the API.
//! let login = RateLimiter::builder(limits.clone()).with_quota("login", "5/15min".parse()?).build()?;
//! let api = RateLimiter::builder(limits).with_quota("api", "100/min".parse()?).build()?;
//! let app = Router::new()
//!     .route("/login", post(|| async { "welcome" }))
//!     .route_layer(RateLimitLayer::new(login).with_store_error_policy(StoreErrorPolicy::FailClosed))
//!     .merge(
//!         Router::new()
//!             .route("/api/items", get(|| async { "[]" }))
//!             .route_layer(RateLimitLayer::new(api)),
//!     );
//!
//! // Requests are keyed by peer IP: axum provides it (`ConnectInfo`) when served with
//! // `into_make_service_with_connect_info::<SocketAddr>()`; here it is set by hand.
//! let peer = SocketAddr::from(([203, 0, 113, 7], 50000));
//! let login_request = || {
//!     let mut request = Request::post("/login").body(Body::empty()).unwrap();
//!     request.extensions_mut().insert(peer);
//!     request
//! };
//! for _ in 0..5 {
//!     assert_eq!(app.clone().oneshot(login_request()).await?.status(), 200);
//! }
//! let response = app.clone().oneshot(login_request()).await?;
//! assert_eq!(response.status(), 429);
//! assert_eq!(response.headers()["retry-after"], "180");
//! assert_eq!(response.headers()["ratelimit-policy"], r#""login";q=5;w=900"#);
//! assert_eq!(response.headers()["ratelimit"], r#""login";r=0;t=900"#);
//!
//! // The API has its own quota.
//! let mut request = Request::get("/api/items").body(Body::empty())?;
//! request.extensions_mut().insert(peer);
//! let response = app.oneshot(request).await?;
//! assert_eq!(response.status(), 200);
//! assert_eq!(response.headers()["ratelimit"], r#""api";r=99;t=1"#);
//! # Ok(()) }
//! ```
//!
//! # Quotas
//!
//! A [`Quota`] is a count per period: `"100/min"`, `"10/s"`, `"1000/h"`, `"100 per minute"`,
//! `"5/15min"` parse (a bad string is a typed [`QuotaError`]), as do [`Quota::per_minute`] and
//! friends. `100 per minute` admits **100 requests at once** from an idle key and then refills
//! at 100 per minute, one every 600 ms: no fixed windows, so no double burst at a window's
//! edge. [`Quota::with_burst`] sets how many may come at once independently of the rate
//! (`Quota::per_second(10)?.with_burst(1)` spaces requests 100 ms apart).
//!
//! A limiter has one or more **named** quotas ([`RateLimiterBuilder::quota`]); a request is
//! admitted only when every one of them admits it (`10/s` and `1000/h` together). Each request
//! costs 1 unit, or what [`RateLimitLayer::with_cost`] / [`with_cost_fn`](RateLimitLayer::with_cost_fn)
//! say. A request costing more than a quota's burst can never pass: it gets a 429 without
//! `Retry-After`.
//!
//! The algorithm is GCRA (see [`gcra`]): a key's state is one instant, its *theoretical
//! arrival time*; a request of cost `c` is admitted when pushing that instant `c` emission
//! intervals further keeps it within `burst` intervals of now. The decision is the pure
//! function [`gcra::decide`]; all time comes from the namespace's clock
//! ([`Namespace::clock`](kv_core::Namespace::clock)), so tests use a `ManualClock`.
//!
//! # Keys
//!
//! By default requests are keyed by **peer IP** ([`PeerIp`]), with IPv6 addresses grouped by
//! their /64 (a single client usually holds a whole /64). Behind reverse proxies use
//! [`ClientIp`], which walks `X-Forwarded-For` (or `Forwarded`) **right to left**, skipping
//! the configured trusted proxy networks: the leftmost entries are whatever the client sent
//! and are never believed. Other keys: a header such as an API key ([`HeaderKey`]), a request
//! extension set by an authentication layer ([`ExtensionKey`]), the session's user
//! (`SessionKey`, with the `session` feature), one global key ([`GlobalKey`]), or any function
//! ([`KeyFn`]); [`KeyExtractor::or`] chains a fallback. An [`AllowList`] of networks and keys,
//! and [`RateLimitLayer::with_allow_if`], let requests through unchecked.
//!
//! A request in which no key is found is answered **`400 Bad Request`** (a problem document
//! saying why) by default, never a 500; [`MissingKey::Allow`] lets it through and
//! [`MissingKey::Shared`] counts all such requests against one key.
//!
//! # Responses
//!
//! An admitted request goes on to the inner service, and its response gets the
//! draft-ietf-httpapi-ratelimit-headers-10 fields:
//!
//! ```text
//! RateLimit-Policy: "burst";q=10;w=1, "hourly";q=1000;w=3600
//! RateLimit: "burst";r=9;t=1, "hourly";r=999;t=4
//! ```
//!
//! `q` is the quota's count and `w` its period in seconds; `r` the units left and `t` the
//! seconds until the quota is full again (rounded up). A denied request is answered
//! **429 Too Many Requests** with the same fields, `Retry-After` in whole seconds rounded up
//! (never 0), and an `application/problem+json` body of type
//! `https://iana.org/assignments/http-problem-types#quota-exceeded` naming the
//! `violated-policies`; [`RateLimitLayer::with_rejection`] replaces it. The legacy
//! `X-RateLimit-Limit` / `-Remaining` / `-Reset` (epoch seconds) are available through
//! [`HeaderStyle`]. Layers applied twice add up: each appends its policies to the lists.
//!
//! # Store errors
//!
//! A check that fails (the store errs, or takes longer than the limiter's timeout, 1 s by
//! default) never panics and never hangs the request: it is logged with `tracing`, counted
//! ([`RateLimitLayer::stats`]), and the layer's [`StoreErrorPolicy`] decides. The default is
//! **fail-open**: the request goes through without rate-limit headers, so an outage of the
//! store does not become an outage of the service. [`StoreErrorPolicy::FailClosed`] answers
//! 503 instead; choose it for limits that guard against abuse, such as logins.
//!
//! # Exactness and compare-and-swap
//!
//! Each key's state under each quota is the entry `{quota}:{key}` holding the theoretical
//! arrival time in nanoseconds since the Unix epoch, as decimal text, with a TTL of as long as
//! the state matters (and at least the store's 60 s minimum). A check reads the state,
//! decides, and writes the new state **only if the entry's version is still the one it read**
//! (or, for a new key, only if it is still absent). A check that loses the race to another
//! writer re-reads and decides again, up to [`RateLimiterBuilder::max_attempts`] times; each
//! lost race means another request was admitted, so the retries end quickly, and a check that
//! still loses answers 429 rather than admit blindly. **A denied request writes nothing.**
//! So the limit is exact: however many requests arrive at once, in however many processes
//! sharing the store, no more are admitted than the quota allows.
//!
//! Within one process, checks of the same key wait for each other (a striped lock), and the
//! limiter remembers the last state and version it saw of each key (bounded,
//! [`RateLimiterBuilder::cache_capacity`]). An admitted request whose key this process saw
//! last therefore costs **one conditional write** and no read; a remembered state that
//! another process has changed since costs a failed write and a read, never a wrong decision.
//! A denial on a remembered state is confirmed by a read before it is answered.
//!
//! | request | store round trips |
//! | --- | --- |
//! | admitted, key last seen by this process | 1 (a conditional write) |
//! | admitted, key new to this process | 2 (a read, a conditional write) |
//! | denied | 1 (a read; nothing is written) |
//! | each race lost to another process | 2 more (the failed write, a read) |
//!
//! With several quotas the reads are one bulk read and each quota is one write.
//!
//! With several quotas, a request admitted by all is written to each in turn; if a later
//! quota's write loses a race and the re-read state denies, the quotas already written are
//! given their units back, so a denied request still spends nothing (a concurrent request may
//! meanwhile have been denied by those units: the error is on the strict side).
//!
//! **What needs compare-and-swap:** exactness across processes. Building a limiter over a
//! store whose [`Capabilities`](kv_core::Capabilities) lack atomic conditional writes fails
//! with [`RateLimitConfigError::NotAtomic`], unless [`RateLimiterBuilder::with_approximate`] is asked for:
//! checks then read and overwrite, which stays exact within one process but lets concurrent
//! requests in different processes be admitted from the same state. Clocks of processes
//! sharing a store should agree (NTP): a process whose clock runs ahead refills early.
//!
//! # Per route, with or without axum
//!
//! The layer is a plain tower [`Layer`](tower_layer::Layer): use it with `ServiceBuilder`,
//! axum's `layer`, or `route_layer` to give each route its own limits (the example above).
//! Responses keep the inner service's body type; the layer's own answers are made from
//! bytes, so the body type must implement `From<Bytes>`, as axum's `Body` and
//! `http_body_util::Full<Bytes>` do. The peer address comes from axum's
//! `ConnectInfo<SocketAddr>` (with the `axum` feature) or a plain
//! [`SocketAddr`](std::net::SocketAddr) request extension, which any hyper server can insert.

mod future;
pub mod gcra;
mod headers;
mod key;
mod layer;
mod limiter;
mod quota;
mod response;
mod service;
mod stripe;

pub use self::future::ResponseFuture;
pub use self::headers::{
    HeaderStyle, RATELIMIT, RATELIMIT_POLICY, X_RATELIMIT_LIMIT, X_RATELIMIT_REMAINING,
    X_RATELIMIT_RESET,
};
// Header-value builders the layer uses; public for the parser tests only.
#[doc(hidden)]
pub use self::headers::{policy_value, ratelimit_value, retry_after_value};
#[cfg(feature = "session")]
pub use self::key::SessionKey;
// Forwarded-header parsers the extractors use; public for the parser fuzz tests only.
#[doc(hidden)]
pub use self::key::{forwarded_for, x_forwarded_for};
pub use self::key::{
    AllowList, Cidr, CidrError, ClientIp, ExtensionKey, Extraction, ForwardedHeader, GlobalKey,
    HeaderKey, IpGrouping, KeyExtractor, KeyFn, KeyFuture, Or, PeerIp, RateKey, RequestHead,
    MAX_KEY_BYTES,
};
pub use self::layer::{MissingKey, RateLimitLayer, StoreErrorPolicy};
pub use self::limiter::{
    NamedQuota, Outcome, QuotaOutcome, RateLimitConfigError, RateLimitError, RateLimitStats,
    RateLimiter, RateLimiterBuilder, DEFAULT_CACHE_CAPACITY, DEFAULT_MAX_ATTEMPTS, MAX_QUOTAS,
    MAX_QUOTA_NAME_BYTES,
};

#[allow(deprecated)]
#[doc(hidden)]
pub use self::limiter::DEFAULT_TIMEOUT;

/// Renamed [`RateLimitConfigError`] (`config::ConfigError` is another type).
#[deprecated(note = "renamed `RateLimitConfigError`")]
#[doc(hidden)]
pub type ConfigError = RateLimitConfigError;
pub use self::quota::{Quota, QuotaError};
pub use self::response::{Rejection, PROBLEM_JSON, QUOTA_EXCEEDED_TYPE};
