//! The demo's state and router: which layer wraps which route.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::http::{header, HeaderName, HeaderValue};
use axum::middleware;
use axum::routing::{delete, get, post, put};
use axum::Router;
use kv_core::Store;
use kv_middleware::cache::{CacheLayer, QueryKey};
use kv_middleware::config::{Config, ConfigLayer};
use kv_middleware::flags::{FlagStore, FlagsLayer};
use kv_middleware::origin::OriginCheckLayer;
use kv_middleware::rate_limit::{PeerIp, Quota, RateLimitLayer, RateLimiter, StoreErrorPolicy};
use kv_middleware::session::SessionLayer;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::config::{validate, DemoConfig};
use crate::{admin, api, page, Args};

/// The namespaces the demo keeps its data in.
pub mod namespaces {
    /// Session records, under the hash of the session ID.
    pub const SESSIONS: &str = "SESSIONS";
    /// Rate-limit state: one timestamp per client IP and quota.
    pub const RATE_LIMITS: &str = "RATE_LIMITS";
    /// Cached `/api/slow` responses.
    pub const HTTP_CACHE: &str = "HTTP_CACHE";
    /// One key per feature flag.
    pub const FLAGS: &str = "FLAGS";
    /// The config document and its kept versions.
    pub const CONFIG: &str = "CONFIG";
}

/// The key of the config document in the `CONFIG` namespace.
pub const CONFIG_KEY: &str = "demo";

/// The key in the session that holds the signed-in user's name.
pub const SESSION_USER: &str = "user";

/// Everything the handlers share. Cheap to clone.
#[derive(Clone)]
pub struct Demo {
    pub sessions: SessionLayer,
    pub flags: FlagStore,
    pub config: Config<DemoConfig>,
    pub cache: CacheLayer,
    pub login_limit: RateLimitLayer,
    pub api_limit: RateLimitLayer,
    /// How many times the `/api/slow` origin ran in this process.
    pub origin_calls: Arc<AtomicU64>,
}

impl Demo {
    /// Opens every namespace and loads flags and config from `store`.
    pub async fn start(store: &Store, args: &Args, refresh: Duration) -> anyhow::Result<Demo> {
        let sessions = SessionLayer::new(store.namespace(namespaces::SESSIONS).await?)
            .with_secure(!args.insecure_cookie)
            .with_host_prefix(served_over_https(args));
        let flags = FlagStore::builder(store.namespace(namespaces::FLAGS).await?)
            .with_refresh_interval(refresh)
            .load()
            .await
            .context("loading the flags")?;
        let config = Config::builder(store.namespace(namespaces::CONFIG).await?, CONFIG_KEY)
            .with_default_value(DemoConfig::default())
            .with_validator(validate)
            .with_refresh_interval(refresh)
            .load()
            .await
            .context("loading the config")?;
        // `/api/slow` answers the same whatever the host or the query, so neither is in the key:
        // no client can make it store a second copy, let alone fill the store (and the
        // namespace bound caps whatever routes are cached here later).
        let cache = CacheLayer::new(store.namespace(namespaces::HTTP_CACHE).await?)
            .with_host_in_key(false)
            .with_query(QueryKey::ignore())
            .with_max_entries(1_000)
            .with_max_bytes(16 * 1024 * 1024);
        let limits = store.namespace(namespaces::RATE_LIMITS).await?;
        // Login attempts are an abuse target: while the store cannot count them, refuse (503)
        // rather than let guesses through unchecked. The API limit fails open (the default),
        // so a store outage does not take the API down with it.
        let login_limit = limit_per_ip(limits.clone(), "login", args.login_quota)?
            .with_store_error_policy(StoreErrorPolicy::FailClosed);
        let api_limit = limit_per_ip(limits, "api", args.api_quota)?;
        Ok(Demo {
            sessions,
            flags,
            config,
            cache,
            login_limit,
            api_limit,
            origin_calls: Arc::new(AtomicU64::new(0)),
        })
    }
}

/// Whether users reach the demo over HTTPS (through a proxy: the demo itself speaks HTTP).
fn served_over_https(args: &Args) -> bool {
    args.public_origin
        .as_deref()
        .is_some_and(|origin| origin.to_ascii_lowercase().starts_with("https://"))
}

/// Refuses state-changing requests that a browser sends for another site (login CSRF and the
/// like); the public origin, when given, is accepted too.
fn origin_check(args: &Args) -> anyhow::Result<OriginCheckLayer> {
    let layer = OriginCheckLayer::new();
    Ok(match &args.public_origin {
        Some(origin) => layer
            .try_with_allowed_origins([origin.as_str()])
            .with_context(|| format!("--public-origin {origin}"))?,
        None => layer,
    })
}

/// A limiter with one named quota, keyed by the connection's peer IP.
fn limit_per_ip(
    namespace: kv_core::Namespace,
    name: &str,
    quota: Quota,
) -> anyhow::Result<RateLimitLayer> {
    let limiter = RateLimiter::builder(namespace)
        .with_quota(name, quota)
        .build()
        .with_context(|| format!("building the {name} limiter"))?;
    Ok(RateLimitLayer::new(limiter).with_key(PeerIp::new()))
}

/// Every route, each behind the layers it shows.
///
/// Outermost first: sessions (so the flags layer can read the signed-in user), config; then per
/// route the flags (the page and `/api/flags`), the login limit, the API limit or the cache.
pub fn router(demo: Demo, args: &Args) -> anyhow::Result<Router> {
    let login = Router::new()
        .route("/login", post(api::login))
        .route_layer(demo.login_limit.clone());
    let ping = Router::new()
        .route("/api/ping", get(api::ping))
        .route_layer(demo.api_limit.clone());
    let slow = Router::new()
        .route("/api/slow", get(api::slow))
        .route_layer(demo.cache.clone());
    // Only the routes that evaluate flags get them: reading the signed-in user costs a session
    // load, which the cached and rate-limited routes should not pay.
    let flagged = Router::new()
        .route("/", get(page::home))
        .route("/api/flags", get(api::flags))
        .route_layer(
            FlagsLayer::new(demo.flags.clone())
                // Signed out, the demo lets a client name itself with `X-User-ID` to try
                // rollouts: an explicit opt-in (a client picks its own bucket), never used
                // for access; signed in, the session's user wins.
                .with_user_header(HeaderName::from_static(
                    kv_middleware::flags::DEFAULT_USER_HEADER,
                ))
                .with_session_user(SESSION_USER),
        );
    let mut app = Router::new()
        .route(page::STYLE_PATH, get(page::style))
        .route(page::SCRIPT_PATH, get(page::script))
        .route("/logout", post(api::logout))
        .route("/me", get(api::me))
        .route("/counter", post(api::counter))
        .route("/api/config", get(api::config))
        .merge(flagged)
        .merge(login)
        .merge(ping)
        .merge(slow);
    if let Some(token) = &args.admin_token {
        anyhow::ensure!(!token.is_empty(), "--admin-token must not be empty");
        let admin = Router::new()
            .route("/admin/flags/{name}", put(admin::put_flag))
            .route("/admin/flags/{name}", delete(admin::delete_flag))
            .route("/admin/config", put(admin::put_config))
            .route("/admin/config", get(admin::get_config))
            .route("/admin/config/versions", get(admin::config_versions))
            .route(
                "/admin/config/rollback/{version}",
                post(admin::rollback_config),
            )
            .route_layer(middleware::from_fn_with_state(
                admin::BearerAuth::new(token),
                admin::require_token,
            ));
        app = app.merge(admin);
    }
    let config_layer = ConfigLayer::new(demo.config.clone());
    let sessions = demo.sessions.clone();
    let app = app
        .fallback(api::not_found)
        .with_state(demo)
        .layer(config_layer)
        .layer(sessions)
        .layer(origin_check(args)?);
    Ok(with_security_headers(app))
}

/// `app` with the headers every answer carries, so a browser runs only the demo's own code,
/// never shows the demo in another site's frame, and never guesses a content type.
fn with_security_headers(app: Router) -> Router {
    let header = |name: HeaderName, value: &'static str| {
        SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
    };
    app.layer(header(
        header::CONTENT_SECURITY_POLICY,
        page::CONTENT_SECURITY_POLICY,
    ))
    .layer(header(header::X_FRAME_OPTIONS, "DENY"))
    .layer(header(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
    .layer(header(header::REFERRER_POLICY, "same-origin"))
}
