//! Tower layers over the [`kv_core`] store contract, one module and one cargo feature each, in
//! the manner of tower-http:
//!
//! | feature | module | what it gives |
//! | --- | --- | --- |
//! | `session` | [`session`] | cookie sessions stored in a namespace: a layer, a lazy `Session` handle, a programmatic manager |
//! | `rate_limit` | [`rate_limit`] | exact GCRA rate limits shared through the store: a layer with named quotas, key extractors and draft RateLimit headers, a programmatic limiter |
//! | `cache` | [`cache`] | stale-while-revalidate caching: an HTTP response cache layer (RFC 9111, `Vary`, `Age`, `Cache-Status`, coalescing, background refresh) and a programmatic get-or-fetch cache |
//! | `flags` | [`flags`] | feature flags evaluated from an in-memory snapshot: flagd's format and bucketing, rules and segments, a layer giving each request a `Flags` handle, `RequireFlagLayer` |
//! | `config` | [`config`] | a typed, versioned config document with validation, compare-and-swap updates and rollback; `ConfigLayer`, `ApiKeyLayer` |
//! | `origin` | [`origin`] | cross-site request forgery protection without tokens or a store: `OriginCheckLayer` refuses state-changing requests a browser makes for another origin (`Sec-Fetch-Site`, `Origin`) |
//! | `tower-sessions` | [`session`] | `TowerSessionsStore`: tower-sessions' `SessionStore` over a namespace, for keeping tower-sessions' layer and handlers on our backends |
//!
//! The `axum` feature adds axum extractors for the handles of the enabled middleware, and `full`
//! enables everything. Nothing requires axum: every layer works with any tower or hyper service,
//! and handlers find the handles in the request extensions.
//!
//! Every layer works on every backend (memory, file, Redis, HTTP), with one process or many
//! sharing one store, and documents which guarantees need compare-and-swap.
//!
//! # Observability
//!
//! Each layer reports its decisions as `tracing` events (target `kv_middleware::LAYER`) and
//! counts them in its `stats()`; with the `metrics` feature every counter is also given to the
//! [`metrics`](https://docs.rs/metrics) facade, so an installed exporter (Prometheus, StatsD,
//! ...) sees the same numbers. Metric names are `kv_{layer}_{stats field}_total`, counters
//! without labels summed over every instance of the layer in the process (the HTTP cache layer
//! and the programmatic `Cache` share the `kv_cache_` counters).
//!
//! | layer | `tracing` events (level) | metrics (the fields of its `stats()`) |
//! | --- | --- | --- |
//! | rate limit | `rate limit: admitted` / `denied` with `key` (client addresses as they are, other keys by length), `allowed`, `remaining` (debug); failed checks (warn) | `kv_rate_limit_{allowed, denied, store_errors, timeouts, contention, conflicts, reads, writes, refunds, bypassed, missing_keys, failed_open, failed_closed}_total` |
//! | sessions | `session: loaded` with `found`, `session: saved` with `created`, `attempts`, `session: deleted` (debug); load and save failures (error) | `kv_session_{loads, load_errors, writes, deletes, conflicts, save_errors, conflicting_cookies}_total` |
//! | cache | `cache: HIT` / `MISS` / `STALE` / `REVALIDATED` / `BYPASS` with `state` and the whole `cache_status` (debug) | `kv_cache_{hits, stale_hits, stale_if_error, misses, revalidated, coalesced, bypassed, not_modified, stored, not_stored, store_errors, refreshes, refresh_failures, invalidations, trims, evictions}_total` |
//! | flags | `flags: evaluated` with `flag`, `variant`, `reason`, `error` (trace); snapshot updates (debug) | `kv_flags_{refreshes, updates, store_errors, rejected}_total` |
//! | config | refresh failures (warn) | `kv_config_{refreshes, updates, store_errors, rejected}_total` |
//! | origin check | — | `kv_origin_check_{checked, refused}_total` |
#![warn(missing_docs)]

#[cfg(feature = "cache")]
pub mod cache;
#[cfg(feature = "config")]
pub mod config;
#[cfg(feature = "flags")]
pub mod flags;
#[cfg(feature = "openfeature")]
pub mod openfeature;
#[cfg(feature = "origin")]
pub mod origin;
#[cfg(feature = "rate_limit")]
pub mod rate_limit;
#[cfg(feature = "session")]
pub mod session;
#[cfg(any(
    feature = "session",
    feature = "rate_limit",
    feature = "cache",
    feature = "flags",
    feature = "config",
    feature = "origin"
))]
mod shared;

#[cfg(any(feature = "origin", feature = "config", feature = "flags"))]
pub use shared::response_future::EarlyResponseFuture;

/// How long a layer waits on the store by default: one store call (sessions, flags, config,
/// cache) or one rate-limit check's calls together. Every layer and builder sets it with
/// `with_store_timeout(impl Into<Option<Duration>>)` (`None`: as long as the store takes).
pub const DEFAULT_STORE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
