//! The KV console: a web page in `kv serve`, at `/console`, to see and change what is stored.
//!
//! The page is one HTML document with its script and style sheet, all built into the binary
//! ([`assets`]) and served under a strict `Content-Security-Policy` (no inline script or style,
//! nothing from another origin). The script is a thin client of a small JSON API under
//! `/console/api`, whose handlers call the same [`Store`](kv_core::Store) and
//! [`Namespace`](kv_core::Namespace) methods as the REST API; pattern views read the namespaces
//! the layers use through the layers' own handles.
//!
//! | route | what it does |
//! | --- | --- |
//! | `GET /console`, `GET /console/assets/*` | the page and its assets (no sign-in needed: they hold no data) |
//! | `GET /console/api/session` | `{signed_in, token_required, csrf}`; sets the pre-sign-in cookie |
//! | `POST /console/api/login` `{token}`, `POST /console/api/logout` | sign in and out |
//! | `GET/POST /console/api/namespaces`, `PUT/DELETE /console/api/namespaces/{id}` | the catalog; delete needs `{confirm: TITLE}` |
//! | `GET /console/api/namespaces/{id}/count` | keys in the namespace, counted up to one listing page |
//! | `GET /console/api/namespaces/{id}/keys?prefix=&cursor=&limit=` | a page of keys |
//! | `GET/PUT/DELETE /console/api/namespaces/{id}/entry?key=` | one entry; writes with compare-and-swap |
//! | `GET /console/api/namespaces/{id}/download?key=` | the raw value as a download |
//! | `POST /console/api/namespaces/{id}/bulk` | a chunk of a bulk JSON upload |
//! | `GET /console/api/flags`, `PUT /console/api/flags/{key}` | flags; state and default variant with CAS |
//! | `POST /console/api/flags/{key}/evaluate` `{targetingKey, attributes}` | value, variant and reason |
//! | `GET /console/api/config`, `GET /console/api/config/{key}` | config documents; live version and history |
//! | `GET /console/api/config/{key}/versions/{n}`, `POST /console/api/config/{key}/rollback` | a kept version; rollback |
//! | `GET /console/api/sessions`, `POST /console/api/sessions/lookup` `{id}` | session count; one session by ID |
//! | `GET /console/api/rate-limits?quota=&rate=&limited=` | keys under a quota with their remaining allowance |
//! | `GET /console/api/cache?prefix=`, `POST /console/api/cache/purge` `{prefix}` | cached entries of a URL prefix; purge |
//!
//! # Security
//!
//! See [`auth`]: the bearer token is typed into a sign-in form once and never stored in the
//! browser; the sign-in is a signed, expiring `HttpOnly; SameSite=Strict` cookie (`Secure` when
//! the request came over TLS, or through a trusted proxy that says `https`), and every request
//! that changes anything must carry the session's CSRF token in `X-CSRF-Token`, or it changes
//! nothing (403). API answers are `Cache-Control: no-store`.

pub mod assets;
pub mod auth;
mod config;
mod flags;
mod keys;
mod namespaces;
mod patterns;

use std::sync::Arc;
use std::time::Duration;

use axum::middleware::from_fn_with_state;
use axum::response::Redirect;
use axum::routing::{get, post, put};
use axum::Router;

use crate::state::AppState;

/// The console's URL path.
pub const CONSOLE_PATH: &str = "/console";

/// The namespaces (by title) in which the console looks for the patterns' data; the defaults
/// are the names the layers' documentation and the demo use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternNamespaces {
    /// Feature flags (`FlagStore`), default `FLAGS`.
    pub flags: String,
    /// Runtime config documents (`Config<T>`), default `CONFIG`.
    pub config: String,
    /// Sessions (`SessionLayer`), default `SESSIONS`.
    pub sessions: String,
    /// Rate-limit state (`RateLimitLayer`), default `RATE_LIMITS`.
    pub rate_limits: String,
    /// Cached HTTP responses (`CacheLayer`), default `HTTP_CACHE`.
    pub cache: String,
}

impl Default for PatternNamespaces {
    fn default() -> Self {
        PatternNamespaces {
            flags: "FLAGS".to_owned(),
            config: "CONFIG".to_owned(),
            sessions: "SESSIONS".to_owned(),
            rate_limits: "RATE_LIMITS".to_owned(),
            cache: "HTTP_CACHE".to_owned(),
        }
    }
}

/// How the console behaves; set [`ServerConfig::console`](crate::ServerConfig::console) to
/// serve it.
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    /// Trust `X-Forwarded-Proto` / `Forwarded: proto=` from the peer when deciding whether the
    /// sign-in cookie is `Secure`. Set it only behind a proxy that overwrites these headers.
    pub trust_forwarded_proto: bool,
    /// How long a sign-in lasts (default 12 hours).
    pub session_lifetime: Duration,
    /// Where the pattern views look.
    pub namespaces: PatternNamespaces,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            trust_forwarded_proto: false,
            session_lifetime: Duration::from_secs(12 * 3600),
            namespaces: PatternNamespaces::default(),
        }
    }
}

/// What the console's handlers share.
#[derive(Clone)]
pub(crate) struct ConsoleState {
    pub app: AppState,
    pub config: Arc<ConsoleConfig>,
    pub auth: Arc<auth::Signer>,
}

/// The console's routes, to be nested at [`CONSOLE_PATH`], outside the bearer-token check
/// (the console has its own sign-in).
pub(crate) fn router(app: AppState, config: ConsoleConfig) -> Router {
    let state = ConsoleState {
        auth: Arc::new(auth::Signer::new(app.config.token.as_deref())),
        app,
        config: Arc::new(config),
    };
    let bulk_limit = state.app.config.max_bulk_body_bytes;
    let value_limit =
        state.app.store.limits().max_value_bytes * 2 + state.app.config.multipart_overhead_bytes;
    let api = Router::new()
        .route(
            "/namespaces",
            get(namespaces::list).post(namespaces::create),
        )
        .route(
            "/namespaces/{id}",
            put(namespaces::rename).delete(namespaces::delete),
        )
        .route("/namespaces/{id}/count", get(namespaces::count))
        .route("/namespaces/{id}/keys", get(keys::list))
        .route(
            "/namespaces/{id}/entry",
            crate::extract::limit_body(
                get(keys::get).put(keys::put).delete(keys::delete),
                value_limit,
            ),
        )
        .route("/namespaces/{id}/download", get(keys::download))
        .route(
            "/namespaces/{id}/bulk",
            crate::extract::limit_body(post(keys::bulk), bulk_limit),
        )
        .route("/flags", get(flags::list))
        .route("/flags/{key}", put(flags::update))
        .route("/flags/{key}/evaluate", post(flags::evaluate))
        .route("/config", get(config::list))
        .route("/config/{key}", get(config::document))
        .route("/config/{key}/versions/{version}", get(config::version))
        .route("/config/{key}/rollback", post(config::rollback))
        .route("/sessions", get(patterns::sessions))
        .route("/sessions/lookup", post(patterns::session))
        .route("/rate-limits", get(patterns::rate_limits))
        .route("/cache", get(patterns::cache))
        .route("/cache/purge", post(patterns::purge))
        .route_layer(from_fn_with_state(state.clone(), auth::require_session))
        .route("/session", get(auth::session))
        .route("/login", post(auth::login))
        .route("/logout", post(auth::logout))
        .fallback(crate::routes::not_found)
        .layer(axum::middleware::map_response(auth::no_store));
    Router::new()
        .route("/", get(assets::index))
        .route("/assets/{file}", get(assets::asset))
        .nest("/api", api)
        .with_state(state)
}

/// `GET /`: the console's front door.
pub(crate) async fn redirect_to_console() -> Redirect {
    Redirect::to(CONSOLE_PATH)
}

/// A store error the layers hand out shared: the REST API's answer for it when this is the
/// only copy, else a 503 with its message.
pub(crate) fn store_error(error: Arc<kv_core::KvError>) -> crate::error::ApiError {
    match Arc::try_unwrap(error) {
        Ok(error) => error.into(),
        Err(shared) => crate::error::ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            crate::error::codes::UNAVAILABLE,
            shared.to_string(),
        ),
    }
}
