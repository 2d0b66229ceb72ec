//! [`CacheLayer`]: the HTTP cache's configuration, as a tower layer, and its purge methods.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, Method, Request};
use kv_core::{KvError, ListOptions, Namespace};
use tokio::sync::broadcast;
use tower_layer::Layer;

use super::engine::{Engine, Settings};
use super::host::{HostPolicy, OtherHosts};
use super::key::{self, KeyConfig};
use super::policy::Defaults;
use super::query::QueryKey;
use super::service::CacheService;
use super::service::Outcome;
use super::stats::{CacheEvent, CacheStats, Counters};
use super::trim::{Bound, Trimmer};

/// Caches HTTP responses in a namespace, serving stale while revalidating in the background.
///
/// Cheap to clone (two `Arc`s); the builder methods copy the configuration only while it is
/// shared. Clones share statistics, events and the in-flight state; build each route's layer
/// with [`CacheLayer::new`] for separate statistics. Works with `ServiceBuilder`, axum's
/// `layer` and `route_layer`, or any tower service. See the [module docs](super) for the
/// behaviour.
///
/// ```
/// # async fn example(store: kv_core::Store) -> kv_core::Result<()> {
/// use std::time::Duration;
/// use kv_middleware::cache::{CacheLayer, QueryKey};
///
/// let layer = CacheLayer::new(store.namespace("HTTP_CACHE").await?)
///     .with_max_heuristic_freshness(Duration::from_secs(3_600))
///     .with_targeted_cache_control("Kv-Cache-Control")
///     .with_stale_while_revalidate(Duration::from_secs(300))
///     .with_stale_if_error(Duration::from_secs(86_400))
///     .with_max_body_size(256 * 1024)
///     .with_max_url_size(1024)
///     .with_allowed_hosts(["example.com", "www.example.com"])
///     .with_query(QueryKey::only(["page", "q"]).sorted())
///     .with_max_entries(5_000)
///     .with_x_cache(true);
/// # let _ = layer;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct CacheLayer {
    pub(crate) config: Arc<Config>,
    pub(crate) state: Arc<State>,
}

/// The layer's settings.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// The engine's settings: the namespace, the store timeout and the failure backoff.
    pub store: Settings,
    pub key: KeyConfig,
    pub methods: Vec<Method>,
    pub defaults: Defaults,
    pub authorized: bool,
    pub max_body: usize,
    pub coalesce_timeout: Duration,
    pub refresh_timeout: Duration,
    pub revalidation_grace: Duration,
    pub x_cache: bool,
    pub status_name: String,
    pub invalidate_unsafe: bool,
    /// What unlisted hosts get once an allow-list is set (kept for a later allow-list).
    pub other_hosts: OtherHosts,
    pub bound: Bound,
}

/// What the services of one layer share at run time.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// Flights (origin calls, refreshes and the trim), backoff, counters and events.
    pub engine: Engine<Outcome>,
    pub trimmer: Trimmer,
}

/// The default body size cap: 1 MiB.
pub const DEFAULT_MAX_BODY_SIZE: usize = 1024 * 1024;

impl CacheLayer {
    /// A cache stored in `namespace`, with the defaults:
    ///
    /// - `GET` and `HEAD` cached, keyed by method, host, path and query (no key prefix), any
    ///   host, the query as sent; requests whose keyed URL is over 2 KiB bypass the cache;
    /// - at most 10 000 entries and 256 MiB in the namespace, the oldest evicted first;
    /// - freshness as RFC 9111 says for a shared cache: `CDN-Cache-Control`, else
    ///   `Cache-Control` (`s-maxage`, `max-age`) and `Expires`, for any status; a response
    ///   that states none is stored only with a `Last-Modified`, fresh for a tenth of its age
    ///   up to a day (heuristic freshness, for the status codes that allow it); no stale
    ///   windows unless the response grants them;
    /// - responses up to 1 MiB are stored; larger ones stream through;
    /// - `Set-Cookie` responses and `Authorization` requests are not cached;
    /// - waiting on another request's origin call: at most 10 s; a background refresh: at most
    ///   30 s; a store operation: at most 2 s; failure backoff from 1 s doubling up to 60 s;
    /// - `Cache-Status` named `kv`, no `X-Cache`; successful unsafe requests invalidate.
    pub fn new(namespace: Namespace) -> Self {
        CacheLayer {
            config: Arc::new(Config {
                store: Settings::new(namespace),
                key: KeyConfig::default(),
                methods: vec![Method::GET, Method::HEAD],
                defaults: Defaults::default(),
                authorized: false,
                max_body: DEFAULT_MAX_BODY_SIZE,
                coalesce_timeout: Duration::from_secs(10),
                refresh_timeout: Duration::from_secs(30),
                revalidation_grace: Duration::ZERO,
                x_cache: false,
                status_name: "kv".to_owned(),
                invalidate_unsafe: true,
                other_hosts: OtherHosts::Bypass,
                bound: Bound::default(),
            }),
            state: Arc::new(State::default()),
        }
    }

    fn config_mut(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// Prepends `prefix` to every store key (none by default), so the cache can share a
    /// namespace with other data.
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.config_mut().key.prefix = prefix.into();
        self
    }

    /// Whether the key holds the request's host (the URI's authority, else the `Host` header);
    /// on by default. Turn it off when one origin answers for every host name.
    pub fn with_host_in_key(mut self, host: bool) -> Self {
        self.config_mut().key.host = host;
        self
    }

    /// Whether the key holds the scheme (the request URI's, else `http`) in front of the host;
    /// off by default (HTTP/1 requests do not carry one). Only with the host in the key.
    pub fn with_scheme_in_key(mut self, scheme: bool) -> Self {
        self.config_mut().key.scheme = scheme;
        self
    }

    /// The longest URL the cache keys, in bytes (2 KiB by default): the path, the query as
    /// keyed ([`CacheLayer::with_query`]) and, when keyed, the host. A longer request goes to
    /// the origin and its response is not stored (`Cache-Status: kv; fwd=bypass; ...;
    /// detail=url-too-long`), so no client can make the cache keep a long key. The whole
    /// stored key is this plus the key prefix, the scheme and the method.
    pub fn with_max_url_size(mut self, bytes: usize) -> Self {
        self.config_mut().key.max_url = bytes;
        self
    }

    /// Only these hosts (`host` or `host:port`, compared without regard to ASCII case) may be
    /// part of the key; requests for any other host get [`CacheLayer::with_other_hosts`]
    /// ([`OtherHosts::Bypass`] by default). The port is part of the name: `example.com`
    /// matches requests without a port, list `example.com:8080` for that port. The host is
    /// the request URI's authority (absolute-form and HTTP/2 requests), else `Host`. Without
    /// a list (the default) every host is keyed, within the URL size.
    pub fn with_allowed_hosts<I, H>(mut self, hosts: I) -> Self
    where
        I: IntoIterator<Item = H>,
        H: Into<String>,
    {
        let config = self.config_mut();
        let others = config.other_hosts.clone();
        config.key.hosts = Some(HostPolicy::new(hosts.into_iter().map(Into::into), others));
        self
    }

    /// What requests for hosts missing from [`CacheLayer::with_allowed_hosts`] get: bypass the
    /// cache (the default) or share one host's entries. Without an allow-list it has no effect.
    pub fn with_other_hosts(mut self, others: OtherHosts) -> Self {
        let config = self.config_mut();
        config.other_hosts = others.clone();
        if let Some(policy) = config.key.hosts.take() {
            config.key.hosts = Some(policy.with_others(others));
        }
        self
    }

    /// Which part of the query string is keyed ([`QueryKey::keep`], the whole query as sent,
    /// by default): [`QueryKey::ignore`], or [`QueryKey::only`] some parameters, optionally
    /// [`sorted`](QueryKey::sorted). Purges reduce their target's query the same way.
    pub fn with_query(mut self, query: QueryKey) -> Self {
        self.config_mut().key.query = query;
        self
    }

    /// The most entries the cache keeps in its namespace under its key prefix (10 000 by
    /// default; `u64::MAX` for no bound). Past it, a background trim deletes the oldest
    /// entries; see the [module docs](super#bounded-storage) for how the bound holds across
    /// processes. A Vary marker counts as an entry.
    pub fn with_max_entries(mut self, entries: u64) -> Self {
        self.config_mut().bound.max_entries = entries;
        self
    }

    /// The most bytes (keys plus values) the cache keeps in its namespace under its key
    /// prefix (256 MiB by default; `u64::MAX` for no bound), enforced like
    /// [`CacheLayer::with_max_entries`]. A response larger than this is not stored.
    pub fn with_max_bytes(mut self, bytes: u64) -> Self {
        self.config_mut().bound.max_bytes = bytes;
        self
    }

    /// The methods whose responses are cached (`GET` and `HEAD` by default). Each method has
    /// its own entries. Requests with other methods go straight to the origin.
    pub fn with_methods(mut self, methods: impl IntoIterator<Item = Method>) -> Self {
        self.config_mut().methods = methods.into_iter().collect();
        self
    }

    /// A fixed freshness for responses that state none (no `max-age`, `s-maxage` or
    /// `Expires`), in place of the heuristic: an opt-in for application routes whose handlers
    /// say nothing about caching but may be cached for `ttl`. Off by default, since a shared
    /// cache in front of an origin must not store such responses beyond what RFC 9111 §4.2.2
    /// allows ([`CacheLayer::with_max_heuristic_freshness`]). Applies to the status codes RFC
    /// 9110 calls heuristically cacheable (200, 203, 204, 300, 301, 308, 404, 405, 410, 414,
    /// 501) and to other non-error responses marked `public`.
    ///
    /// ```
    /// # async fn example(store: kv_core::Store) -> kv_core::Result<()> {
    /// use std::time::Duration;
    /// use axum::{routing::get, Router};
    /// use kv_middleware::cache::CacheLayer;
    ///
    /// // These handlers set no Cache-Control; their answers may be 30 s old.
    /// let cache = CacheLayer::new(store.namespace("HTTP_CACHE").await?)
    ///     .with_default_ttl(Duration::from_secs(30));
    /// let app: Router = Router::new()
    ///     .route("/products", get(|| async { "products" }))
    ///     .route_layer(cache);
    /// # let _ = app;
    /// # Ok(()) }
    /// ```
    pub fn with_default_ttl(mut self, ttl: Duration) -> Self {
        self.config_mut().defaults.ttl = Some(ttl);
        self
    }

    /// Goes back to heuristic freshness for responses that state none (the default).
    #[deprecated(
        note = "the default now: responses without explicit freshness get heuristic \
                         freshness (see `with_max_heuristic_freshness`); drop the call"
    )]
    pub fn without_default_ttl(mut self) -> Self {
        self.config_mut().defaults.ttl = None;
        self
    }

    /// The longest heuristic freshness (1 day by default; zero stores no response without
    /// explicit freshness). A response with no `max-age`, `s-maxage` or `Expires` (and no
    /// [`CacheLayer::with_default_ttl`]) but with a `Last-Modified` is fresh for a tenth of
    /// the time between its `Last-Modified` and its `Date`, up to this (RFC 9111 §4.2.2); one
    /// without `Last-Modified` is not stored (`Cache-Status: ...; detail=no-freshness`).
    pub fn with_max_heuristic_freshness(mut self, max: Duration) -> Self {
        self.config_mut().defaults.heuristic_max = max;
        self
    }

    /// Obeys the targeted field `name` (RFC 9213), such as `Kv-Cache-Control`, ahead of
    /// `CDN-Cache-Control`: the target list becomes `[name, CDN-Cache-Control]`. The first
    /// of them that a response carries with a valid value (a Structured Fields Dictionary)
    /// decides its caching, and `Cache-Control` and `Expires` are then ignored. Targeted
    /// fields are stored and passed on downstream unchanged, as `CDN-Cache-Control` is meant
    /// to be, so a chain of caches can share them. A name that is not a valid field name is
    /// ignored with a warning.
    pub fn with_targeted_cache_control(mut self, name: impl AsRef<str>) -> Self {
        let text = name.as_ref();
        match HeaderName::from_bytes(text.as_bytes()) {
            Ok(name) => {
                let mut targets = vec![name];
                let cdn = HeaderName::from_static("cdn-cache-control");
                if targets[0] != cdn {
                    targets.push(cdn);
                }
                self.config_mut().defaults.targets = targets;
            }
            Err(_) => {
                tracing::warn!(name = %text, "ignoring a targeted cache control name that is not a field name");
            }
        }
        self
    }

    /// Obeys no targeted field, not even `CDN-Cache-Control`: only `Cache-Control` and
    /// `Expires` decide (for a cache that is not a CDN's, such as one inside an application).
    pub fn without_targeted_cache_control(mut self) -> Self {
        self.config_mut().defaults.targets.clear();
        self
    }

    /// The stale-while-revalidate window of responses whose directives have none (0 by
    /// default); not for responses with `s-maxage`, which implies `proxy-revalidate`.
    pub fn with_stale_while_revalidate(mut self, window: Duration) -> Self {
        self.config_mut().defaults.stale_while_revalidate = window;
        self
    }

    /// The stale-if-error window of responses whose directives have none (0 by default); not
    /// for responses with `s-maxage`, which implies `proxy-revalidate`.
    pub fn with_stale_if_error(mut self, window: Duration) -> Self {
        self.config_mut().defaults.stale_if_error = window;
        self
    }

    /// The largest body stored, in bytes (1 MiB by default). A larger response streams
    /// through uncached, and the layer never holds more than this (plus one chunk) of it.
    /// Values are also bounded by the store's own value limit.
    pub fn with_max_body_size(mut self, bytes: usize) -> Self {
        self.config_mut().max_body = bytes;
        self
    }

    /// Cache requests that carry `Authorization` (off by default: they bypass the cache). Turn
    /// it on only when the responses do not depend on who asks.
    pub fn with_authorized_requests(mut self, cache: bool) -> Self {
        self.config_mut().authorized = cache;
        self
    }

    /// Store responses that set cookies, cookies included (off by default).
    pub fn with_set_cookie_responses(mut self, store: bool) -> Self {
        self.config_mut().defaults.store_set_cookie = store;
        self
    }

    /// How long a request waits for another request's origin call for the same key before
    /// going to the origin itself (10 s by default).
    pub fn with_coalesce_timeout(mut self, timeout: Duration) -> Self {
        self.config_mut().coalesce_timeout = timeout;
        self
    }

    /// The longest a background refresh may take (30 s by default); past it the refresh
    /// counts as failed.
    pub fn with_refresh_timeout(mut self, timeout: Duration) -> Self {
        self.config_mut().refresh_timeout = timeout;
        self
    }

    /// The longest one store operation may take (default
    /// [`DEFAULT_STORE_TIMEOUT`](crate::DEFAULT_STORE_TIMEOUT), 5 s; `None`: as long as the store
    /// takes); past it the request goes on as if the store had failed.
    pub fn with_store_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.config_mut().store.store_timeout = timeout.into();
        self
    }

    /// Failure backoff per key: after the origin fails for a key, no refresh or stale-if-error
    /// origin call is made for `initial`, doubling with every further failure up to `max`,
    /// while stale responses keep being served (1 s and 60 s by default; a zero `initial`
    /// turns it off).
    pub fn with_backoff(mut self, initial: Duration, max: Duration) -> Self {
        let store = &mut self.config_mut().store;
        store.backoff_initial = initial;
        store.backoff_max = max;
        self
    }

    /// Keeps responses that carry a validator (`ETag`, `Last-Modified`) in the store this much
    /// longer than their windows, so an expired one can be revalidated with a `304` instead of
    /// fetched again (0 by default; the store's 60 s minimum TTL applies either way).
    pub fn with_revalidation_grace(mut self, grace: Duration) -> Self {
        self.config_mut().revalidation_grace = grace;
        self
    }

    /// Adds `X-Cache: HIT | MISS | STALE | REVALIDATED | BYPASS` to every response (off by
    /// default; `Cache-Status` is always there).
    pub fn with_x_cache(mut self, enabled: bool) -> Self {
        self.config_mut().x_cache = enabled;
        self
    }

    /// The cache's name in `Cache-Status` (`kv` by default). A name that is not a structured
    /// field token (letters, digits and `!#$%&'*+-.^_`|~:/`, starting with a letter) is
    /// ignored with a warning.
    pub fn with_cache_status_name(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        if is_sf_token(&name) {
            self.config_mut().status_name = name;
        } else {
            tracing::warn!(name = %name, "ignoring a Cache-Status name that is not a token");
        }
        self
    }

    /// Whether a successful (2xx or 3xx) `POST`, `PUT`, `PATCH` or `DELETE` invalidates the
    /// cached responses of its URL, and of its `Location` and `Content-Location` on the same
    /// host (on by default). Only requests that pass through this layer can do so.
    pub fn with_unsafe_invalidation(mut self, enabled: bool) -> Self {
        self.config_mut().invalidate_unsafe = enabled;
        self
    }

    /// The namespace the cache is stored in.
    pub fn namespace(&self) -> &Namespace {
        &self.config.store.namespace
    }

    /// The store key of a request's response (for a response with `Vary`, the key of its
    /// marker), as shortened to the store's key limit; `None` when the request bypasses the
    /// cache for its URL size or its host.
    pub fn cache_key<B>(&self, request: &Request<B>) -> Option<String> {
        let full = key::base_key(
            &self.config.key,
            request.method(),
            request.uri(),
            request.headers(),
        )
        .ok()?;
        Some(key::fit(&full, self.config.store.namespace.limits().max_key_bytes).into_owned())
    }

    /// Deletes every cached response of one URL target (`/path` or `/path?query`): all
    /// methods, hosts and variants. Returns how many store entries were deleted.
    ///
    /// # Errors
    ///
    /// The store's error when listing or deleting fails.
    pub async fn purge(&self, target: &str) -> Result<usize, KvError> {
        let prefix = key::target_prefix(&self.config.key, target);
        let deleted = self.delete_prefix(&prefix).await?;
        if deleted > 0 {
            Counters::bump(&self.state.engine.counters.invalidations);
        }
        Ok(deleted)
    }

    /// Deletes every cached response whose URL target starts with `prefix` (`/api/` purges
    /// `/api/users?page=2`, ...), with the key prefix in front. `""` purges the whole cache.
    /// Returns how many store entries were deleted.
    ///
    /// # Errors
    ///
    /// The store's error when listing or deleting fails.
    pub async fn purge_prefix(&self, prefix: &str) -> Result<usize, KvError> {
        let full = format!("{}{}", self.config.key.prefix, prefix);
        let deleted = self.delete_prefix(&full).await?;
        Counters::add(&self.state.engine.counters.invalidations, deleted as u64);
        Ok(deleted)
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<usize, KvError> {
        let ns = &self.config.store.namespace;
        let prefix = key::fit_prefix(prefix, ns.limits().max_key_bytes);
        delete_by_prefix(ns, &prefix).await
    }

    /// This layer's counters (shared by its clones and services).
    pub fn stats(&self) -> CacheStats {
        self.state.engine.counters.snapshot()
    }

    /// Background events (refreshes finished or failed) from now on. A receiver that falls
    /// more than 256 events behind skips the oldest.
    pub fn subscribe(&self) -> broadcast::Receiver<CacheEvent> {
        self.state.engine.events.subscribe()
    }
}

impl<S> Layer<S> for CacheLayer {
    type Service = CacheService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CacheService::new(inner, self.config.clone(), self.state.clone())
    }
}

/// Deletes every key starting with `prefix`, a page at a time; returns how many.
pub(crate) async fn delete_by_prefix(ns: &Namespace, prefix: &str) -> Result<usize, KvError> {
    let limit = ns.limits().max_list_limit.clamp(1, 1000);
    let mut deleted = 0;
    let mut options = ListOptions::new().prefix(prefix).limit(limit);
    loop {
        let page = ns.list(&options).await?;
        let names: Vec<String> = page.keys.into_iter().map(|k| k.name).collect();
        if !names.is_empty() {
            ns.delete_many(&names).await?;
            deleted += names.len();
        }
        match page.cursor {
            Some(cursor) if !page.list_complete => options.cursor = Some(cursor),
            _ => return Ok(deleted),
        }
    }
}

/// Whether `name` is a structured-field token (RFC 8941 §3.3.4).
fn is_sf_token(name: &str) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    (first.is_ascii_alphabetic() || first == '*')
        && chars.all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~:/".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        assert!(is_sf_token("kv"));
        assert!(is_sf_token("edge-cache/2"));
        assert!(!is_sf_token(""));
        assert!(!is_sf_token("1kv"));
        assert!(!is_sf_token("kv cache"));
        assert!(!is_sf_token("kv;hit"));
    }
}
