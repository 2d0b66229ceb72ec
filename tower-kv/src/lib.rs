//! Key-value patterns as tower layers over one pluggable store: sessions, rate limiting,
//! stale-while-revalidate caching, feature flags and runtime config, on an in-memory store, a
//! durable file, Redis or a Workers-KV-style HTTP service. Switching stores is a change of one
//! URL.
//!
//! This crate is the one dependency: it re-exports the store contract ([`kv_core`]), the
//! backends ([`kv_backends`]) and the layers ([`kv_middleware`]) under one path.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::net::SocketAddr;
//! use axum::{body::Body, http::{header, Request}, routing::{get, post}, Router};
//! use tower::ServiceExt;
//! use tower_kv::{rate_limit::RateLimitLayer, session::{Session, SessionError, SessionLayer}};
//!
//! async fn count(session: Session) -> Result<String, SessionError> {
//!     let count: u64 = session.get("count").await?.unwrap_or(0) + 1;
//!     session.insert("count", count).await?;
//!     Ok(count.to_string())
//! }
//!
//! // "memory:", "file:./kv-data" (the default), "redis://...", "http://..." (a `kv serve`).
//! let store = tower_kv::open("memory:").await?;
//! let app = Router::new()
//!     .route("/count", post(count))
//!     .route("/ping", get(|| async { "pong" }))
//!     .layer(SessionLayer::new(store.namespace("SESSIONS").await?))
//!     .layer(RateLimitLayer::per_ip(store.namespace("RATE_LIMITS").await?, "api", "3/min".parse()?)?);
//! // A server gives the peer address with `into_make_service_with_connect_info::<SocketAddr>()`
//! // (the crate's `counter` example); here each request carries it by hand.
//! let request = |method: &str, path: &str, cookie: &str| {
//!     let mut request = Request::builder().method(method).uri(path);
//!     if !cookie.is_empty() {
//!         request = request.header(header::COOKIE, cookie);
//!     }
//!     let mut request = request.body(Body::empty()).unwrap();
//!     request.extensions_mut().insert(SocketAddr::from(([192, 0, 2, 1], 4000)));
//!     request
//! };
//!
//! let first = app.clone().oneshot(request("POST", "/count", "")).await?;
//! let cookie = first.headers()[header::SET_COOKIE].to_str()?.split(';').next().unwrap().to_owned();
//! let second = app.clone().oneshot(request("POST", "/count", &cookie)).await?;
//! assert_eq!(&axum::body::to_bytes(second.into_body(), 64).await?[..], b"2");
//!
//! // Three requests a minute per client IP: the fourth is refused.
//! let third = app.clone().oneshot(request("GET", "/ping", "")).await?;
//! assert_eq!(third.headers()["ratelimit"], r#""api";r=0;t=60"#);
//! assert_eq!(app.oneshot(request("GET", "/ping", "")).await?.status(), 429);
//! # Ok(()) }
//! ```
//!
//! # What is where
//!
//! | path | what it is |
//! | --- | --- |
//! | [`open`], [`open_url`], [`OpenOptions`] | a store from a URL: `memory:`, `file:PATH`, `redis://HOST:PORT/DB`, `http(s)://HOST:PORT`, Cloudflare |
//! | [`Store`], [`Namespace`], [`PutOptions`], [`WriteMode`], [`KvError`], ... | the store contract, re-exported from [`kv_core`] as it is (its [`lock`] and [`event_log`] too) |
//! | [`backends`] | the backends one module each (`memory`, `file`, `redis`, `http`, `read_cache`) for building one by hand |
//! | [`session`] | `SessionLayer`, the `Session` handle (an axum extractor), `SessionManager` |
//! | [`rate_limit`] | `RateLimitLayer` (one call: [`RateLimitLayer::per_ip`](rate_limit::RateLimitLayer::per_ip)), `RateLimiter`, quotas and keys |
//! | [`cache`] | `CacheLayer` (HTTP responses, stale-while-revalidate), the programmatic `Cache` |
//! | [`flags`] | `FlagStore`, `FlagsLayer`, the `Flags` handle, `RequireFlagLayer` |
//! | [`config`] | the typed `Config<T>` handle, `ConfigLayer`, `ApiKeyLayer` |
//! | [`origin`] | `OriginCheckLayer`, cross-site request forgery protection without a store |
//!
//! # Features
//!
//! | feature | default | gives |
//! | --- | --- | --- |
//! | `memory`, `file` | yes | the in-memory and the durable file (redb) backends |
//! | `read-cache` | yes | [`ReadCache`], a read-through cache in front of any backend |
//! | `session`, `rate_limit`, `cache`, `flags`, `config`, `origin` | yes | one layer module each |
//! | `axum` | yes | the axum extractors (`Session`, `Flags`, `Config<T>`) |
//! | `redis` | no | the Redis backend |
//! | `http` | no | the HTTP backend: a client of `kv serve`, Cloudflare Workers KV and Miniflare |
//! | `openfeature` | no | `openfeature::FlagStoreProvider`, an OpenFeature provider over the flag store |
//! | `tower-sessions` | no | `session::TowerSessionsStore`, tower-sessions' `SessionStore` over a namespace |
//! | `full` | no | all of the above |
//!
//! `cargo add tower-kv` gives the defaults; `cargo add tower-kv --features redis` reaches Redis.
//! A store URL whose backend is not compiled in is a typed error from [`open`], not a panic.
//!
//! The examples in `tower-kv/examples/` are one short file each:
//! `cargo run -p tower-kv --example counter` (sessions), `rate_limited`, `cached`, `flagged`.
#![warn(missing_docs)]

// The store contract as kv-core defines it: one glob, so that every item kv-core makes public
// is here under the same name and nothing is listed twice.
#[doc(inline)]
pub use kv_core::*;

#[doc(inline)]
pub use kv_backends::{open, open_url, OpenOptions};
#[cfg(feature = "http")]
#[doc(inline)]
pub use kv_backends::{HttpBackend, HttpBackendBuilder};
#[cfg(feature = "read-cache")]
#[doc(inline)]
pub use kv_backends::{ReadCache, ReadCacheBuilder, ReadCacheStats};

/// The backends, one module each (as the enabled features select), for building a backend by
/// hand rather than from a URL with [`open`].
pub mod backends {
    #[cfg(feature = "file")]
    #[doc(inline)]
    pub use kv_backends::file;
    #[cfg(feature = "http")]
    #[doc(inline)]
    pub use kv_backends::http;
    #[cfg(feature = "memory")]
    #[doc(inline)]
    pub use kv_backends::memory;
    #[cfg(feature = "read-cache")]
    #[doc(inline)]
    pub use kv_backends::read_cache;
    #[cfg(feature = "redis")]
    #[doc(inline)]
    pub use kv_backends::redis;
}

#[cfg(feature = "cache")]
#[doc(inline)]
pub use kv_middleware::cache;
#[cfg(feature = "config")]
#[doc(inline)]
pub use kv_middleware::config;
#[cfg(feature = "flags")]
#[doc(inline)]
pub use kv_middleware::flags;
#[cfg(feature = "openfeature")]
#[doc(inline)]
pub use kv_middleware::openfeature;
#[cfg(feature = "origin")]
#[doc(inline)]
pub use kv_middleware::origin;
#[cfg(feature = "rate_limit")]
#[doc(inline)]
pub use kv_middleware::rate_limit;
#[cfg(feature = "session")]
#[doc(inline)]
pub use kv_middleware::session;
#[cfg(any(feature = "session", feature = "flags", feature = "config"))]
#[doc(inline)]
pub use kv_middleware::DEFAULT_STORE_TIMEOUT;

/// The README's "A short tour", compiled: `tests/readme_tour.rs` holds the README to this text.
#[cfg(doctest)]
#[doc = include_str!("tour.md")]
pub struct TourDoctests;
