//! Cookie sessions stored in a key-value namespace (feature `session`).
//!
//! [`SessionLayer`] gives every request a [`Session`]: a cheap, lazy handle in the request
//! extensions (with the `axum` feature, an extractor). The handler reads and writes JSON values
//! by key; after the response the layer saves what changed and sets the cookie. Each session is
//! one entry in the namespace, so the same code runs on the memory, file, Redis and HTTP
//! backends, in one process or many.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use axum::{body::Body, routing::get, Router};
//! use http::{header, Request};
//! use kv_middleware::session::{Session, SessionError, SessionLayer};
//! use tower::ServiceExt;
//!
//! async fn counter(session: Session) -> Result<String, SessionError> {
//!     let visits: u64 = session.get("visits").await?.unwrap_or(0) + 1;
//!     session.insert("visits", visits).await?;
//!     Ok(format!("visit number {visits}"))
//! }
//!
//! // Any store URL: "memory:", "file:./kv-data", "redis://...", "http://...".
//! let store = kv_backends::open("memory:").await?;
//! let sessions = SessionLayer::new(store.namespace("SESSIONS").await?);
//! let app = Router::new().route("/", get(counter)).layer(sessions);
//!
//! // The first visit creates the session and sets the cookie ...
//! let response = app.clone().oneshot(Request::get("/").body(Body::empty())?).await?;
//! let set_cookie = response.headers()[header::SET_COOKIE].to_str()?.to_owned();
//! assert!(set_cookie.starts_with("session="));
//! assert!(set_cookie.contains("HttpOnly; SameSite=Strict; Max-Age=86400"));
//!
//! // ... which the next visit presents.
//! let cookie = set_cookie.split(';').next().unwrap_or_default();
//! let request = Request::get("/").header(header::COOKIE, cookie).body(Body::empty())?;
//! let response = app.oneshot(request).await?;
//! let body = axum::body::to_bytes(response.into_body(), 1024).await?;
//! assert_eq!(&body[..], b"visit number 2");
//! # Ok(()) }
//! ```
//!
//! # The handle
//!
//! [`Session`] has typed [`get`](Session::get) / [`insert`](Session::insert) /
//! [`remove`](Session::remove) (serde), their raw-JSON forms, [`clear`](Session::clear),
//! [`id`](Session::id), [`cycle_id`](Session::cycle_id) (new ID, same data, old record
//! deleted: call it at login against session fixation), [`destroy`](Session::destroy) (delete
//! the record, remove the cookie: logout), [`save`](Session::save), [`reload`](Session::reload),
//! [`expiry`](Session::expiry) / [`set_expiry`](Session::set_expiry) and
//! [`is_modified`](Session::is_modified). Clones share one state.
//!
//! It is lazy: nothing is read from the store until the handler first touches the session, so
//! a route behind the layer that never uses it costs no store access and sets no cookie. A new
//! session knows its [`SessionId`] at once (before any save).
//!
//! Outside requests, [`SessionManager`] creates, loads, updates and destroys sessions by ID.
//!
//! # Coming from tower-sessions
//!
//! The handle's names are tower-sessions' where the meaning is the same: `get`, `insert`,
//! `get_value`, `insert_value`, `remove`, `remove_value`, `clear`, `is_empty`, `cycle_id`,
//! `save`, `is_modified`, and [`flush`](Session::flush) (our [`destroy`](Session::destroy)).
//! They differ in that every method that may load returns `Result` and is `async` (the session
//! loads lazily), `id` returns the ID rather than an `Option`, [`Expiry`] is ours, and
//! tower-sessions' `load` / `delete` have no counterpart of the same meaning
//! ([`reload`](Session::reload) also drops a pending ID change; deleting keeps nothing in the
//! handle here). To keep tower-sessions' own layer and handlers instead and only move the data
//! onto one of our stores, the `tower-sessions` feature gives `TowerSessionsStore`, its
//! `SessionStore` over a namespace.
//!
//! # Cookies and IDs
//!
//! The cookie defaults to `session=<id>; Path=/; Secure; HttpOnly; SameSite=Strict`, with
//! `Max-Age` set from the expiry. Name, Path, Domain, Secure, HttpOnly and SameSite are
//! configurable, as are the `__Host-` prefix and signing with key rotation
//! ([`SessionLayer::with_signing_key`], [`SessionLayer::with_old_signing_key`]). The removal
//! cookie keeps Path, Domain, Secure, HttpOnly and SameSite.
//!
//! An ID is 256 bits from the operating system's CSPRNG, in URL-safe base64. The store key is
//! the SHA-256 of the ID, so a reader of the store cannot hijack sessions. A new session is
//! created with an only-if-absent write (a collision draws a new ID).
//!
//! A malformed, unknown, expired or badly signed cookie means "no session": the handler sees an
//! empty session, a fresh one (with a fresh ID: a client-chosen ID is never adopted) is issued
//! only if the handler writes, and the bad value is never echoed, nor logged.
//!
//! # Several cookies of the session's name (cookie tossing)
//!
//! A browser may send two cookies of the same name: one set by this host and one set by a
//! sibling subdomain for the parent domain (`Domain=example.com`), or by anyone who could
//! answer a plain-HTTP request for the site. Nothing in the `Cookie` header says which is
//! which, and the planted one can come first (a longer `Path` sorts first). Taking the first
//! would sign the user in as the planter, whose session then records what the user does.
//!
//! So when a request's cookies name **more than one session** (different valid IDs, or more
//! cookies of the name than the layer reads, 4), the layer uses none of them: the handler sees
//! an empty session, as with no cookie; a write saves a new session under a fresh ID and sets
//! its cookie; [`destroy`](Session::destroy) (logout) deletes every session the request named.
//! The event is logged at `debug` (without the values) and counted
//! ([`SessionStats::conflicting_cookies`]). Values that are not a valid ID (malformed, badly
//! signed) are ignored, and one ID sent twice (also signed by an old and by the current key)
//! is one session.
//!
//! This protects a signed-in user, but while the planted cookie lives the user's requests
//! keep naming two sessions and stay anonymous, and a browser that holds no cookie of its own
//! accepts the planted one as its session. What prevents both is the `__Host-` prefix
//! ([`SessionLayer::with_host_prefix`]): browsers accept a `__Host-` cookie only from this
//! very host, over HTTPS, with `Path=/` and no `Domain`, so no other subdomain can set one, and
//! the layer does not read the bare name. **Use it whenever the site shares its registrable
//! domain with hosts you do not fully control** (and it costs nothing otherwise). Against
//! cross-site requests that use the user's own cookie, see the origin check
//! (`OriginCheckLayer`, feature `origin`).
//!
//! # Expiry
//!
//! Three kinds ([`Expiry`]), set per layer ([`SessionLayer::with_expiry`]) and per session
//! ([`Session::set_expiry`], kept with the session):
//!
//! - [`Expiry::OnInactivity`] (the default, 24 hours): rolling; `Max-Age` is the remaining
//!   lifetime.
//! - [`Expiry::AtDateTime`]: ends at a fixed instant however active it is.
//! - [`Expiry::OnSessionEnd`]: a browser-session cookie (no `Max-Age`), with an explicit
//!   server-side inactivity period so that abandoned sessions do not pile up.
//!
//! The record's TTL in the store follows the session's end. Stores have a minimum TTL (60 s on
//! Workers KV): a session that ends sooner is stored with that minimum, and its own end, kept
//! in the record, is checked on load with the store's clock, so it is gone on time.
//!
//! # When the layer writes
//!
//! A request writes the session only when it changed (inserting an equal value, removing an
//! absent key and clearing an empty session are not changes), when its ID was cycled or its
//! expiry set, or when a rolling refresh is due. It writes nothing when the response is a
//! server error (5xx), and a new session that stays empty is neither stored nor given a cookie.
//! A session left empty is deleted and its cookie removed. Reads never write.
//!
//! Rolling expiry does not rewrite the session on every request: a request that does not
//! change it re-saves it only when no more than a fraction (default one half,
//! [`SessionLayer::with_refresh_fraction`]) of its period remains. So one active session costs
//! at most one write per `(1 − fraction) × period`: with the defaults, **at most two writes a
//! day per active user** (one for a user who comes once a day), plus one when a session is
//! created and one per change. A read-mostly site of 400 daily users stays well inside Workers
//! KV's free 1 000 writes a day; with `always_save` semantics (fraction 1.0) every request
//! would be a write. The price: a session then ends after between `fraction × period` and
//! `period` of inactivity, depending on when it was last written.
//!
//! # Concurrent requests
//!
//! A request loads its session once (on first touch) and works on that copy.
//!
//! - **With compare-and-swap** (memory, file, Redis; see
//!   [`Capabilities`](kv_core::Capabilities)): a save is conditional on the version it loaded.
//!   If another request saved in between, the save reloads the record, re-applies this
//!   request's changes key by key (set values, removed keys, an expiry it set) and retries, up
//!   to [`SessionLayer::with_max_save_attempts`] times (default 8; then 500). Two requests that
//!   change different keys both land; two that change the same key: the last to save wins.
//!   [`clear`](Session::clear) removes the keys it saw, so a key another request added
//!   concurrently survives. A save that finds the session gone (destroyed by a concurrent
//!   logout, or ended) drops its changes rather than resurrect it, and removes the cookie.
//!   [`cycle_id`](Session::cycle_id) deletes the old record unconditionally.
//! - **Without compare-and-swap**: a save overwrites the whole record; the last writer wins,
//!   and a concurrent request's changes to other keys can be lost.
//!
//! # Layers applied twice
//!
//! Each layer puts its own session into the request extensions, replacing the one an outer
//! layer put there: **the inner layer wins**. The handler sees the inner session; the outer one
//! is never touched, so it reads nothing, writes nothing and sets no cookie. A router-wide
//! layer plus a `route_layer` with other settings on one route thus works as expected.
//!
//! # Store failures
//!
//! Nothing panics and nothing hangs on the store's account; every failure is logged with
//! `tracing` and counted ([`SessionLayer::stats`]).
//!
//! - A store call that takes longer than the store timeout (default 5 s,
//!   [`SessionLayer::with_store_timeout`]) fails like any store error.
//! - Saving fails: the response becomes `500 Internal Server Error` (empty body).
//! - Loading fails: by default ([`LoadErrorPolicy::Fail`]) the session call returns
//!   [`SessionError::Store`], nothing is saved and the response becomes 500 whatever the
//!   handler returned. [`LoadErrorPolicy::Empty`] fails open instead: the request goes on with a
//!   new, empty session (saved under a new ID if written; the stored one is never overwritten).
//!
//! # Stored form
//!
//! One entry per session under the hex SHA-256 of its ID: a JSON document
//! `{"expires_at": <unix seconds>, "expiry": {...}, "data": {...}}` (`expiry` only when the
//! session chose its own), stored with a TTL equal to the remaining lifetime. A request keeps
//! the loaded data as the stored JSON text and decodes only the values it reads, so reading a
//! session builds no map; a save copies the unchanged values through as they were.

mod config;
mod cookie_config;
mod error;
mod expiry;
#[cfg(feature = "axum")]
mod extract;
mod future;
mod handle;
mod id;
mod layer;
mod manager;
mod record;
mod service;
#[cfg(feature = "tower-sessions")]
mod tower_sessions_store;

pub use self::config::{LoadErrorPolicy, SessionStats};
pub use self::error::SessionError;
pub use self::expiry::Expiry;
#[cfg(feature = "axum")]
pub use self::extract::MissingSessionLayer;
pub use self::future::ResponseFuture;
pub use self::handle::Session;
pub use self::id::{ParseSessionIdError, SessionId};
pub use self::layer::SessionLayer;
pub use self::manager::SessionManager;
pub use self::service::SessionService;
#[cfg(feature = "tower-sessions")]
pub use self::tower_sessions_store::TowerSessionsStore;
/// Re-exported from the `cookie` crate: a signing key (64 bytes; `Key::generate()`,
/// `Key::from(&bytes)`) and the `SameSite` attribute.
pub use ::cookie::{Key, SameSite};
