//! [`SessionLayer`]: the configuration, as a tower layer.

use std::sync::Arc;

use cookie::{Key, SameSite};
use kv_core::Namespace;
use tower_layer::Layer;

use super::config::{Config, LoadErrorPolicy, SessionStats, DEFAULT_REFRESH_FRACTION};
use super::expiry::Expiry;
use super::manager::SessionManager;
use super::service::SessionService;

/// Adds a [`Session`](super::Session) to every request, stored in a namespace.
///
/// Cheap to clone (one `Arc`); the builder methods copy the configuration only while it is
/// shared. Use it with `ServiceBuilder`, axum's `layer` or `route_layer` (each route may have
/// its own settings), or any tower service. See the [module docs](super) for the behaviour.
///
/// ```
/// # async fn example(store: kv_core::Store) -> kv_core::Result<()> {
/// use std::time::Duration;
/// use kv_middleware::session::{Expiry, SameSite, SessionLayer};
///
/// let layer = SessionLayer::new(store.namespace("SESSIONS").await?)
///     .with_cookie_name("sid")
///     .with_same_site(SameSite::Lax)
///     .with_expiry(Expiry::OnInactivity(Duration::from_secs(7 * 24 * 3600)))
///     .with_refresh_fraction(0.25);
/// # let _ = layer;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SessionLayer {
    config: Arc<Config>,
}

impl SessionLayer {
    /// Sessions stored in `namespace`, with the defaults: cookie `session`, `Path=/`,
    /// `Secure`, `HttpOnly`, `SameSite=Strict`, unsigned; rolling expiry after 24 hours of
    /// inactivity, refreshed when half or less remains; loading failures fail closed; each store
    /// call bounded by 5 seconds.
    pub fn new(namespace: Namespace) -> Self {
        SessionLayer {
            config: Arc::new(Config::new(namespace)),
        }
    }

    fn config_mut(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// The cookie's name (default `session`).
    ///
    /// # Panics
    ///
    /// When `name` is not an RFC 6265 token (empty, or holding spaces, `;`, `=` and the like).
    pub fn with_cookie_name(mut self, name: impl Into<String>) -> Self {
        self.config_mut().cookie.set_name(name.into());
        self
    }

    /// The cookie's `Path` (default `/`).
    ///
    /// # Panics
    ///
    /// When `path` does not start with `/` or holds `;` or control characters.
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        self.config_mut().cookie.set_path(path.into());
        self
    }

    /// The cookie's `Domain` (default none: the cookie goes to this host only).
    ///
    /// # Panics
    ///
    /// When `domain` is not a host name (letters, digits, `.` and `-`).
    pub fn with_domain(mut self, domain: impl Into<String>) -> Self {
        self.config_mut().cookie.set_domain(Some(domain.into()));
        self
    }

    /// Whether the cookie is `Secure` (default true: sent over HTTPS only; browsers treat
    /// `localhost` as secure).
    pub fn with_secure(mut self, secure: bool) -> Self {
        self.config_mut().cookie.set_secure(secure);
        self
    }

    /// Whether the cookie is `HttpOnly` (default true: invisible to scripts).
    pub fn with_http_only(mut self, http_only: bool) -> Self {
        self.config_mut().cookie.set_http_only(http_only);
        self
    }

    /// The cookie's `SameSite` (default `Strict`; `Lax` keeps users logged in when they follow
    /// a link from another site).
    pub fn with_same_site(mut self, same_site: SameSite) -> Self {
        self.config_mut().cookie.set_same_site(same_site);
        self
    }

    /// Names the cookie `__Host-<name>` (default off). Browsers then accept it only when it is
    /// `Secure`, has `Path=/` and no `Domain`, so the cookie is sent that way whatever the
    /// path, domain and secure settings say; no other host or path can overwrite it.
    ///
    /// Recommended: it is what stops a sibling subdomain from planting a session cookie in
    /// your users' browsers (cookie tossing; see the [module docs](super)).
    pub fn with_host_prefix(mut self, host_prefix: bool) -> Self {
        self.config_mut().cookie.set_host_prefix(host_prefix);
        self
    }

    /// Signs the cookie with this key (HMAC-SHA256, the `cookie` crate's signed jar). Cookies
    /// without a valid signature are treated as absent. Replaces the current signing key;
    /// keys added with [`with_old_signing_key`](Self::with_old_signing_key) still verify.
    ///
    /// Session IDs are already unguessable (256 random bits), so signing is defence in depth
    /// (a tampered cookie is rejected without a store read).
    pub fn with_signing_key(mut self, key: Key) -> Self {
        self.config_mut().cookie.set_signing_key(key);
        self
    }

    /// Also accepts cookies signed with this older key (key rotation; repeat for several).
    /// New cookies are always signed with the key from
    /// [`with_signing_key`](Self::with_signing_key); without one, cookies are not signed and
    /// old keys are not used.
    pub fn with_old_signing_key(mut self, key: Key) -> Self {
        self.config_mut().cookie.add_old_signing_key(key);
        self
    }

    /// When sessions end (default: rolling, after 24 hours of inactivity). A session's handler
    /// may choose another with [`Session::set_expiry`](super::Session::set_expiry).
    pub fn with_expiry(mut self, expiry: Expiry) -> Self {
        self.config_mut().expiry = expiry;
        self
    }

    /// A rolling session is re-saved by a request that does not change it only when no more
    /// than this fraction of its period remains (default 0.5, clamped to `0.0..=1.0`).
    ///
    /// `1.0` refreshes on every request (one write each, like tower-sessions' `always_save`);
    /// `0.0` never refreshes, so sessions end one period after their last change.
    pub fn with_refresh_fraction(mut self, fraction: f64) -> Self {
        self.config_mut().refresh_fraction = if fraction.is_nan() {
            DEFAULT_REFRESH_FRACTION
        } else {
            fraction.clamp(0.0, 1.0)
        };
        self
    }

    /// What a request does when loading its session fails (default
    /// [`LoadErrorPolicy::Fail`]).
    pub fn with_load_error_policy(mut self, policy: LoadErrorPolicy) -> Self {
        self.config_mut().load_error_policy = policy;
        self
    }

    /// Bounds every store call of a session by `timeout` (default 5 seconds; `None` leaves
    /// calls unbounded). A store that stops answering then fails the call like any store
    /// error (see [`LoadErrorPolicy`] and the module's "Store failures") instead of hanging
    /// the request.
    pub fn with_store_timeout(mut self, timeout: impl Into<Option<std::time::Duration>>) -> Self {
        self.config_mut().set_store_timeout(timeout.into());
        self
    }

    /// How many writes one save may attempt when concurrent requests keep changing the same
    /// session (default 8, at least 1). A save that runs out answers 500.
    pub fn with_max_save_attempts(mut self, attempts: u32) -> Self {
        self.config_mut().max_save_attempts = attempts.max(1);
        self
    }

    /// A manager sharing this layer's namespace, settings and counters, for code outside
    /// requests.
    pub fn manager(&self) -> SessionManager {
        SessionManager::from_config(self.config.clone())
    }

    /// The counters of this layer and everything made from it.
    pub fn stats(&self) -> SessionStats {
        self.config.counters.snapshot()
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService::new(inner, self.config.clone())
    }
}
