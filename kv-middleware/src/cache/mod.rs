//! Stale-while-revalidate caching in a key-value namespace (feature `cache`).
//!
//! Two front doors over one model:
//!
//! - [`CacheLayer`]: an HTTP response cache for any tower service (RFC 9111 semantics for a
//!   shared cache, with RFC 5861's `stale-while-revalidate` and `stale-if-error`), keyed with
//!   `Vary`, answering with `Age` and `Cache-Status` (RFC 9211), coalescing concurrent misses
//!   and refreshing stale entries in the background.
//! - [`Cache`]: a programmatic get-or-fetch cache for values (bytes or JSON) with the same
//!   windows, single-flight, background refresh, failure backoff, invalidation and warming.
//!
//! Both run on one stale-while-revalidate engine (store reads and writes under the store
//! timeout, the judging of an entry's age, coalescing, background refresh and failure backoff),
//! so the states below mean the same in each.
//!
//! Both keep their entries in a [`Namespace`](kv_core::Namespace), so the same code caches in
//! memory, in the embedded file store, in Redis or behind a kv-server, and every process that
//! shares the store shares the cache.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use axum::{body::Body, routing::get, Router};
//! use http::Request;
//! use kv_middleware::cache::CacheLayer;
//! use tower::ServiceExt;
//!
//! async fn report() -> ([(http::HeaderName, &'static str); 1], &'static str) {
//!     // The origin decides: fresh for 60 s, then served stale for up to 10 minutes while
//!     // one background request refreshes it.
//!     ([(http::header::CACHE_CONTROL, "max-age=60, stale-while-revalidate=600")], "expensive report")
//! }
//!
//! // Any store URL: "memory:", "file:./kv-data", "redis://...", "http://...".
//! let store = kv_backends::open("memory:").await?;
//! let cache = CacheLayer::new(store.namespace("HTTP_CACHE").await?).with_x_cache(true);
//! let app = Router::new().route("/report", get(report).route_layer(cache.clone()));
//!
//! let request = || Request::get("/report").header("host", "example.com").body(Body::empty());
//! let first = app.clone().oneshot(request()?).await?;
//! assert_eq!(first.headers()["x-cache"], "MISS");
//! assert_eq!(first.headers()["cache-status"], "kv; fwd=uri-miss; fwd-status=200; stored; ttl=60");
//!
//! let second = app.oneshot(request()?).await?;
//! assert_eq!(second.headers()["x-cache"], "HIT");
//! assert_eq!(second.headers()["cache-status"], "kv; hit; ttl=60");
//! assert_eq!(second.headers()["age"], "0");
//! let body = axum::body::to_bytes(second.into_body(), 1024).await?;
//! assert_eq!(&body[..], b"expensive report");
//! assert_eq!(cache.stats().hits, 1);
//! # Ok(()) }
//! ```
//!
//! # States
//!
//! Every read judges the stored entry by its age (its `Age` on arrival plus the time since it
//! was stored, on the namespace's [`Clock`](kv_core::Clock)):
//!
//! | state | when | the request gets | the origin sees |
//! | --- | --- | --- | --- |
//! | fresh | age < freshness lifetime | the stored response | nothing |
//! | stale-while-revalidate | within the SWR window after it | the stored response, at once | one background refresh (per key and process) |
//! | stale-if-error | within the SIE window after it | the origin's response; the stored one if the origin fails (5xx or an error) | the request (one per key and process) |
//! | expired | past both windows | the origin's response | the request, conditional (`If-None-Match` / `If-Modified-Since`) when a validator is stored; a `304` refreshes the stored entry |
//! | missing | nothing stored | the origin's response | the request (one per key and process) |
//!
//! `must-revalidate`, `proxy-revalidate` and `no-cache` forbid serving stale: such entries go
//! from fresh straight to expired (`no-cache` ones are revalidated on every use).
//!
//! # What is cached
//!
//! The layer is a shared cache as RFC 9111 defines one, in front of an origin it does not
//! control; with its defaults it stores only what that origin allows.
//!
//! `GET` and `HEAD` ([`CacheLayer::with_methods`]); requests with `Authorization`
//! ([`CacheLayer::with_authorized_requests`]) bypass the cache; a `GET` with a `Range` is
//! answered from a stored response when one is servable ([Range requests](#range-requests)).
//! Request `Cache-Control` directives are not honoured (as CDNs do): the origin decides, by its
//! response's directives, read from
//!
//! 1. the first *targeted field* on the layer's target list (RFC 9213) that the response
//!    carries with a valid value — `CDN-Cache-Control` by default, or
//!    `[Kv-Cache-Control, CDN-Cache-Control]` with
//!    [`CacheLayer::with_targeted_cache_control`]`("Kv-Cache-Control")`, none with
//!    [`CacheLayer::without_targeted_cache_control`]. Its `max-age`, `s-maxage`, `no-store`,
//!    `no-cache`, `private`, `must-revalidate`, `proxy-revalidate` and `stale-*` then replace
//!    `Cache-Control` *and* `Expires`, even when it states no freshness of its own. A field
//!    that is not a valid Structured Fields Dictionary, or is empty, is ignored. Targeted
//!    fields are stored and passed on downstream unchanged, as RFC 9213 §3 describes for
//!    `CDN-Cache-Control`;
//! 2. else `Cache-Control`, with `Expires`.
//!
//! A response is stored when its directives have neither `no-store` nor `private`, it has no
//! `Vary: *` and no `Set-Cookie` ([`CacheLayer::with_set_cookie_responses`]), is final and
//! not a `206` or `304`, and has a freshness lifetime:
//!
//! - **explicit**, for any status, server errors included: `s-maxage`, else `max-age`, else
//!   `Expires` − `Date` (from `Cache-Control` only when no targeted field applies). A `500`
//!   with `max-age=10` is served from storage for 10 s — unless a stored response may stand in
//!   for it (stale-if-error), which is preferred;
//! - else **heuristic** (RFC 9111 §4.2.2), for the status codes RFC 9110 calls heuristically
//!   cacheable (200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501) and for other
//!   non-error responses marked `public`: a tenth of the time between its `Last-Modified` and
//!   its `Date`, at most [`CacheLayer::with_max_heuristic_freshness`] (one day). A response
//!   without `Last-Modified` is not stored (`detail=no-freshness`), so a page that varies by
//!   cookie but says nothing never reaches another user;
//! - or, instead of the heuristic, a fixed [`CacheLayer::with_default_ttl`]: an explicit
//!   opt-in for application routes whose handlers say nothing but may be cached.
//!
//! Its SWR and SIE windows come from its directives, else from the layer's defaults
//! ([`CacheLayer::with_stale_while_revalidate`], [`CacheLayer::with_stale_if_error`], both 0),
//! which do not apply to a response with `s-maxage` (it implies `proxy-revalidate`, RFC 9111
//! §5.2.2.10; windows the response grants itself still do).
//!
//! Header values are read as RFC 9110 and 9111 ask of a cache:
//!
//! - `Expires`, `Date` and `Last-Modified` in any of the three HTTP-date forms (IMF-fixdate,
//!   RFC 850, asctime), in any letter case; a zone other than `GMT`, `0` or anything else
//!   invalid in `Expires` means already expired, and so do two `Expires` lines that disagree;
//! - `Age`: the first member of a list; a value that is not a non-negative integer (`5s`,
//!   `-1`, `+5`) is ignored, never read as a prefix;
//! - a directive repeated with different values (`max-age=60, max-age=120`, on one line or
//!   several) or with an invalid value (`max-age=soon`) makes the response stale (RFC 9111
//!   §4.2.1); conflicting directives resolve to the most restrictive (`no-store` over all,
//!   `private` over `public`, `no-cache` over `max-age`);
//! - qualified `private="Set-Cookie, X-User"` and `no-cache="X-Debug"`: the named fields are
//!   not stored, the rest is (RFC 9111 §5.2.2.4 and §5.2.2.7). The client whose request
//!   brought the response gets it whole; later clients get it without those fields, so a
//!   `private="set-cookie"` response is cached without its cookie.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use axum::{body::Body, routing::get, Router};
//! use http::{header::CACHE_CONTROL, HeaderName, Request};
//! use kv_middleware::cache::CacheLayer;
//! use tower::ServiceExt;
//!
//! let store = kv_backends::open("memory:").await?;
//! let cache = CacheLayer::new(store.namespace("HTTP_CACHE").await?);
//! let cdn = HeaderName::from_static("cdn-cache-control");
//! let app = Router::new()
//!     // Browsers must not keep it; this cache may, for 10 minutes.
//!     .route("/news", get(|| async { ([(CACHE_CONTROL, "no-store"), (cdn, "max-age=600")], "news") }))
//!     // Says nothing, has no Last-Modified: not stored.
//!     .route("/me", get(|| async { "hello, you" }))
//!     .route_layer(cache);
//!
//! let get = |uri: &str| Request::get(uri).header("host", "example.com").body(Body::empty());
//! let news = app.clone().oneshot(get("/news")?).await?;
//! assert_eq!(news.headers()["cache-status"], "kv; fwd=uri-miss; fwd-status=200; stored; ttl=600");
//! assert_eq!(news.headers()["cdn-cache-control"], "max-age=600");
//! let me = app.oneshot(get("/me")?).await?;
//! assert_eq!(me.headers()["cache-status"], "kv; fwd=uri-miss; fwd-status=200; detail=no-freshness");
//! # Ok(()) }
//! ```
//!
//! Bodies are buffered up to [`CacheLayer::with_max_body_size`] (1 MiB); a larger body, or one
//! with trailers, streams through uncached and the layer never holds more than the cap.
//!
//! ## Interim responses
//!
//! A tower service answers a request with one final response, so `1xx` responses cannot pass
//! through this layer (or any tower layer). hyper 1's server sends `100 Continue` by itself when
//! a request body sent with `Expect: 100-continue` is first read; the layer hands the body to
//! the origin service untouched, so such uploads work when the origin reads it. A request
//! answered from storage never has its body read, and the client gets the final response
//! without a `100`, as RFC 9110 §10.1.1 allows. A `103 Early Hints` from the origin is seen only by a hyper client's
//! `hyper::ext::on_informational` callback and cannot be relayed through a service's response:
//! it is dropped (RFC 8297 allows an intermediary to drop it), and the final response's `Link`
//! fields carry the same hints.
//!
//! # Keys
//!
//! ```text
//! {prefix}{path}[?{query}]#{METHOD}[@{host}]                   the response, or the URL's Vary marker
//! {prefix}{path}[?{query}]#{METHOD}[@{host}]~{gen}.{hash}      one variant of a response with Vary
//! ```
//!
//! The host (URI authority, else `Host`, lowercased) is in the key by default
//! ([`CacheLayer::with_host_in_key`]), the scheme only on request
//! ([`CacheLayer::with_scheme_in_key`]); the prefix is empty by default
//! ([`CacheLayer::with_key_prefix`]). What a client can put into a key is limited, see
//! [Limits](#limits). For a response with `Vary`, the URL's key holds a small
//! marker (a generation and the field names) and each variant lives under a key with a hash of
//! the request's values of those fields; deleting the marker makes every variant unreachable
//! at once. A key longer than the store's key limit keeps its first bytes and ends in a
//! SHA-256 of the whole key; every entry records its whole key and is checked on read.
//! [`CacheLayer::cache_key`] tells a request's key.
//!
//! A variant is chosen by the request's values of the `Vary` fields after normalising them
//! as each field's definition allows (RFC 9111 §4.1), so equivalent requests share a variant:
//!
//! | fields | whitespace | letter case | member order |
//! | --- | --- | --- | --- |
//! | `Accept-Encoding`, `Accept-Charset`, `Accept-Language` | removed | ignored | ignored (sorted; duplicate and empty members dropped) |
//! | `Accept` | removed | ignored, but for parameter values | ignored, as above |
//! | `Cookie` | lines trimmed, runs made one space | kept | kept (lines joined with `; `) |
//! | any other (`Authorization`, `User-Agent`, ...) | lines trimmed, runs made one space | kept | kept (lines joined with `, `) |
//!
//! A value with a quoted string is compared as sent (lines trimmed and joined); weights are
//! compared as written (`q=1` is not the same as no weight); an absent field matches only an
//! absent one.
//!
//! # What is stored
//!
//! One entry per response (plus one marker per URL with `Vary`), with its stored time and size
//! as list metadata (see [Bounded storage](#bounded-storage)), in a compact binary form:
//! the status, the headers (less hop-by-hop fields, `Age`, `Cache-Status` and `X-Cache`), the
//! body, when it was stored, its `Age` on arrival, its windows and flags, its whole key and
//! the request's `Vary` values. The store's TTL is the useful life — freshness + the longer of
//! the SWR and SIE windows, less the age on arrival — plus
//! [`CacheLayer::with_revalidation_grace`] for responses with a validator, and never below the
//! store's minimum TTL (60 s on Workers KV): the store forgets entries on its own, and since
//! freshness is judged on every read, a longer store TTL never makes stale data look fresh.
//!
//! # Limits
//!
//! Anyone who can send requests decides which URLs and hosts the cache sees, so what they can
//! make it store is bounded, as a CDN bounds it. Every setting and its default:
//!
//! | setting | default | what it bounds |
//! | --- | --- | --- |
//! | [`CacheLayer::with_max_url_size`] | 2 KiB ([`DEFAULT_MAX_URL_SIZE`]) | the keyed URL: path, the query as keyed and the host when keyed. A longer request bypasses the cache (`fwd=bypass; detail=url-too-long`): nothing read, nothing stored, and so no entry ever records a long key |
//! | [`CacheLayer::with_allowed_hosts`] | any host | the hosts that may be part of the key (`host` or `host:port`, ASCII case ignored; the port is part of the name) |
//! | [`CacheLayer::with_other_hosts`] | [`OtherHosts::Bypass`] | what a host missing from the allow-list gets: bypass (`detail=host-not-allowed`), or [`OtherHosts::KeyAs`] one host's entries |
//! | [`CacheLayer::with_query`] | [`QueryKey::keep`] | the query as keyed: whole, [`QueryKey::ignore`]d, [`QueryKey::only`] some parameters, optionally [`QueryKey::sorted`] so `?a=1&b=2` and `?b=2&a=1` share an entry |
//! | [`CacheLayer::with_max_body_size`] | 1 MiB ([`DEFAULT_MAX_BODY_SIZE`]) | one response's body; a larger one streams through uncached |
//! | `Vary` values | 8 KiB | the request's values of a response's `Vary` fields, which its entry records; more is not stored (`detail=vary-too-large`) |
//! | [`CacheLayer::with_max_entries`] | 10 000 ([`DEFAULT_MAX_ENTRIES`]) | entries in the namespace under the key prefix |
//! | [`CacheLayer::with_max_bytes`] | 256 MiB ([`DEFAULT_MAX_BYTES`]) | keys plus values in the namespace under the key prefix; a larger response is not stored |
//!
//! The origin always receives the request as sent; the query and host settings only decide
//! which requests share an entry, so parameters or hosts left out of the key must not change
//! the response.
//!
//! ## Bounded storage
//!
//! Every entry's list metadata records when it was stored and its size
//! (`{"stored_at": ms, "bytes": n}`), and a stored response's also the moments (Unix ms) until
//! which it is fresh, usable while revalidating and usable on origin errors (`fresh_until`,
//! `revalidate_until`, `error_until`), so a listing tells each entry's state without reading
//! it. Each process counts what it writes; after its first
//! write, and after each *step* of writes since (a twentieth of either bound), it runs one
//! background trim (single-flight per layer): the trim lists the key prefix a page at a time
//! with metadata and, when more than the *low-water mark* (the bound less two steps) is
//! stored, deletes the oldest entries (by stored time, then key) until no more than that is
//! left. Its store operations have the store timeout; a failed trim is logged, counted in
//! [`CacheStats::store_errors`] and tried again after the next step. Trims and the entries
//! they delete are counted in [`CacheStats::trims`] and [`CacheStats::evictions`].
//!
//! One or two processes writing to the namespace keep it within the bounds, except for what is
//! written while a trim's listing runs (the bound is enforced within one trim's lag); N > 2
//! processes can exceed it by up to N − 2 steps until their next trims. Entries without the
//! metadata (another program's, or written before it existed) are neither counted nor
//! evicted; the store also forgets entries at their TTL. A bound of `u64::MAX` on both turns
//! trimming off. A store that does not give space back on delete (the file store's file
//! keeps its size until compacted) still holds the bounded data only.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use axum::{body::Body, routing::get, Router};
//! use http::Request;
//! use kv_middleware::cache::{CacheLayer, OtherHosts, QueryKey};
//! use tower::ServiceExt;
//!
//! let store = kv_backends::open("memory:").await?;
//! // The handler says nothing about caching: this route opts in to 60 s.
//! let cache = CacheLayer::new(store.namespace("HTTP_CACHE").await?)
//!     .with_default_ttl(std::time::Duration::from_secs(60))
//!     .with_max_url_size(1024)
//!     .with_allowed_hosts(["shop.example", "www.shop.example"])
//!     .with_other_hosts(OtherHosts::KeyAs("shop.example".into()))
//!     .with_query(QueryKey::only(["page", "sort"]).sorted())
//!     .with_max_entries(1_000)
//!     .with_max_bytes(64 * 1024 * 1024);
//! let app = Router::new().route("/products", get(|| async { "products" }).route_layer(cache.clone()));
//!
//! let get = |uri: &str, host: &str| Request::get(uri).header("host", host).body(Body::empty());
//! app.clone().oneshot(get("/products?sort=price&page=2&utm_source=ad", "SHOP.example")?).await?;
//! // Another host, another tracking parameter, another order: the same entry.
//! let second = app.clone().oneshot(get("/products?page=2&sort=price", "evil.test")?).await?;
//! assert_eq!(second.headers()["cache-status"], "kv; hit; ttl=60");
//! assert_eq!(
//!     cache.cache_key(&get("/products?page=2&sort=price", "evil.test")?).as_deref(),
//!     Some("/products?page=2&sort=price#GET@shop.example")
//! );
//!
//! // A URL over the cap is served, but never stored.
//! let long = format!("/products?page={}", "9".repeat(2000));
//! let third = app.oneshot(get(&long, "shop.example")?).await?;
//! assert_eq!(third.headers()["cache-status"], "kv; fwd=bypass; fwd-status=200; detail=url-too-long");
//! # Ok(()) }
//! ```
//!
//! # Response headers
//!
//! Every response carries one `Cache-Status` entry (appended after any from caches nearer the
//! origin), named `kv` by default ([`CacheLayer::with_cache_status_name`]), and — with
//! [`CacheLayer::with_x_cache`] — an `X-Cache`. Responses served from storage carry `Age`
//! (a miss passes the origin's on). Exactly:
//!
//! | what happened | `Cache-Status` | `X-Cache` |
//! | --- | --- | --- |
//! | fresh hit | `kv; hit; ttl=42` | `HIT` |
//! | stale, refreshing in the background | `kv; hit; ttl=-5; detail=stale-while-revalidate` | `STALE` |
//! | stale in the SIE window while the key backs off | `kv; hit; ttl=-5; detail=stale-if-error` | `STALE` |
//! | origin failed, stale served | `kv; fwd=stale; fwd-status=503; ttl=-5; detail=stale-if-error` (no `fwd-status` for an error) | `STALE` |
//! | expired, origin said `304` | `kv; fwd=stale; fwd-status=304; stored; ttl=60` | `REVALIDATED` |
//! | expired, origin sent a new response | `kv; fwd=stale; fwd-status=200; stored; ttl=60` | `MISS` |
//! | nothing stored | `kv; fwd=uri-miss; fwd-status=200; stored; ttl=60` | `MISS` |
//! | other variants stored, not this one | `kv; fwd=vary-miss; fwd-status=200; stored; ttl=60` | `MISS` |
//! | answered by another request's origin call | `kv; fwd=uri-miss; fwd-status=200; collapsed; stored; ttl=60` | `MISS` |
//! | not stored | `kv; fwd=uri-miss; fwd-status=200; detail=no-store` (or `private`, `set-cookie`, `vary-star`, `status`, `no-freshness`, `too-large`, `vary-too-large`) | `MISS` |
//! | the store failed | `kv; fwd=miss; fwd-status=200; detail=store-error` | `MISS` |
//! | method not cached | `kv; fwd=method; fwd-status=201` (`; detail=invalidated` after an unsafe request invalidated the URL) | `BYPASS` |
//! | `Authorization`, or a `Range` not answered from storage | `kv; fwd=bypass; fwd-status=200; detail=authorization` (or `range`) | `BYPASS` |
//! | keyed URL over the size cap, or a host not allowed | `kv; fwd=bypass; fwd-status=200; detail=url-too-long` (or `host-not-allowed`) | `BYPASS` |
//!
//! `ttl` is the freshness left in seconds (negative once stale).
//!
//! # Conditional requests and invalidation
//!
//! A client's `If-None-Match` (or, without it, `If-Modified-Since`) is answered `304` from
//! the cache when it matches the stored response; on a miss the client's conditions are
//! removed before the origin is asked, so a full response can be stored. A request with any
//! method not known to be safe (all but `GET`, `HEAD`, `OPTIONS` and `TRACE`: `POST`, `PUT`,
//! `PATCH`, `DELETE`, and extension methods such as `PURGE` or `M-SEARCH`) that the origin
//! answers `2xx` or `3xx` invalidates the URL's cached entries, and those of its `Location` and
//! `Content-Location` on the same host (RFC 9111 §4.4). From code,
//! [`CacheLayer::purge`] deletes one URL target and [`CacheLayer::purge_prefix`] every target
//! under a prefix.
//!
//! # Range requests
//!
//! A `GET` with a `bytes` `Range` is answered from the stored complete response when it is
//! fresh or may be served stale (RFC 9110 §14): one range (`0-99`, `100-`, `-100`), or several
//! that overlap or touch, is a `206` with `Content-Range`; several disjoint ones get the whole
//! `200` (no `multipart/byteranges`); none that overlaps the body is a `416` with
//! `Content-Range: bytes */LEN`. `If-Range` is honoured (a strong entity-tag, or the stored
//! strong `Last-Modified`; otherwise the whole `200`), a matching `If-None-Match` is a `304`
//! first, and a stored response that is not a `200` is served whole. With nothing servable
//! stored, or a Range that is not a valid `bytes` range, the request goes to the origin
//! unchanged and its answer is not stored (`fwd=bypass; detail=range`). `HEAD` ignores
//! `Range`, and the cache always asks the origin for complete responses.
//!
//! # Coalescing and background refresh
//!
//! Concurrent requests that must go to the origin for one key (missing, expired, or a
//! different variant) make one origin request in the process: the first leads, the others wait
//! for its response and are answered from it (`collapsed`) — up to
//! [`CacheLayer::with_coalesce_timeout`], after which a waiting request goes to the origin
//! itself; so does a waiter whose leader's response may not be shared (uncacheable, or too
//! large), whose leader's origin call failed with an error (rather than a response), or whose
//! leader was dropped. A server error response is shared with the waiters (and stored only
//! when it has explicit freshness).
//!
//! A stale entry in its SWR window is served at once while one background refresh per key
//! runs a clone of the inner service (request head copied, body `Default`), bounded by
//! [`CacheLayer::with_refresh_timeout`]. A refresh or an origin call that fails puts the key
//! in backoff ([`CacheLayer::with_backoff`]): no further refresh or stale-if-error origin call
//! for it until the pause ends, while stale keeps being served.
//! [`CacheLayer::subscribe`] announces finished and failed refreshes.
//!
//! # Store errors
//!
//! A store that fails or takes longer than [`CacheLayer::with_store_timeout`] never fails a
//! request: a failed read is a miss (`detail=store-error`), a failed write leaves the response
//! unstored, both are logged through `tracing` (warn) and counted in
//! [`CacheStats::store_errors`]. The origin's own errors are passed on unless a stale response
//! may replace them.
//!
//! # Several processes
//!
//! Processes that share the store share the entries: what one stores, all serve, and a purge
//! or an unsafe-method invalidation in one is seen by all. Coalescing, the one-refresh-per-key
//! rule, backoff and statistics are per process, so N processes make at most N origin calls
//! for one cold or stale key at once. No compare-and-swap is needed: every write is a whole
//! response, and when two processes store the same key the later write wins.
//!
//! # Without axum
//!
//! [`CacheLayer`] is a plain tower layer over any `Service<Request<B>>` with
//! `B: Default` (for background refreshes) whose responses have an [`http_body::Body`]; its
//! responses have a [`CacheBody`]. It needs a tokio runtime with time enabled.
//!
//! # The programmatic cache
//!
//! [`Cache::get_or_fetch`] (bytes) and [`Cache::get_or_fetch_json`] take a key, a [`Ttl`]
//! (fresh, stale-while-revalidate, stale-if-error) and a fetcher, and follow the same states.
//! The fetcher runs in a task of its own, bounded by [`Cache::with_fetch_timeout`], so it
//! completes and stores its value even when its caller is gone; concurrent callers of one key
//! share one run. [`Cache::invalidate`], [`Cache::invalidate_prefix`] and [`Cache::warm`] (one
//! bulk get to find what is missing, one loader call, one bulk put) complete it. Entries keep
//! a store TTL of fresh + max(SWR, SIE), at least the store's minimum.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use kv_middleware::cache::{Cache, Source, Ttl};
//!
//! let store = kv_backends::open("memory:").await?;
//! let cache = Cache::new(store.namespace("CACHE").await?);
//! let ttl = Ttl::fresh(Duration::from_secs(60)).stale_if_error(Duration::from_secs(3600));
//!
//! let rates = cache
//!     .get_or_fetch_with_source("rates", ttl, || async {
//!         Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"{\"eur\":1.08}"))
//!     })
//!     .await?;
//! assert_eq!(rates.source, Source::Fetched);
//!
//! // Fill many keys at once: one bulk get, one loader call, one bulk put.
//! let report = cache
//!     .warm(&["a", "b", "rates"], ttl, |missing: Vec<String>| async move {
//!         Ok::<_, std::io::Error>(missing.into_iter().map(|k| (k, bytes::Bytes::from_static(b"1"))))
//!     })
//!     .await?;
//! assert_eq!((report.fresh, report.loaded), (1, 2));
//! # Ok(()) }
//! ```

mod backoff;
mod body;
mod directives;
mod engine;
mod entry;
mod future;
mod host;
mod http_date;
mod key;
mod layer;
mod policy;
mod programmatic;
mod query;
mod range;
mod service;
mod stats;
mod trim;
mod vary;

pub use self::body::CacheBody;
pub use self::future::ResponseFuture;
pub use self::host::OtherHosts;
pub use self::key::DEFAULT_MAX_URL_SIZE;
pub use self::layer::{CacheLayer, DEFAULT_MAX_BODY_SIZE};
pub use self::programmatic::{Cache, CacheError, Cached, Source, Ttl, WarmReport};
pub use self::query::QueryKey;
pub use self::service::CacheService;
pub use self::stats::{CacheEvent, CacheStats};
pub use self::trim::{DEFAULT_MAX_BYTES, DEFAULT_MAX_ENTRIES};
