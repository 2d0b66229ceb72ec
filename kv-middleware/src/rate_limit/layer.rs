//! [`RateLimitLayer`]: the configuration, as a tower layer.

use std::fmt;
use std::sync::Arc;

use http::{HeaderValue, Response};
use kv_core::{Bytes, Namespace};
use tower_layer::Layer;

use super::headers::{policy_value, HeaderStyle};
use super::key::{AllowList, KeyExtractor, PeerIp, RequestHead};
use super::limiter::{RateLimitConfigError, RateLimitStats, RateLimiter};
use super::quota::Quota;
use super::response::Rejection;
use super::service::RateLimitService;

/// What the layer does when a check fails (store error, timeout).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum StoreErrorPolicy {
    /// Let the request through, without rate-limit headers (the default): an outage of the
    /// store does not take the service down with it.
    #[default]
    FailOpen,
    /// Answer `503 Service Unavailable`: nothing passes unchecked. Choose it for limits that
    /// guard against abuse, such as login attempts.
    FailClosed,
}

/// What the layer does with a request its key extractor finds no key in.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum MissingKey {
    /// Answer `400 Bad Request` (the default).
    #[default]
    Reject,
    /// Let it through unchecked.
    Allow,
    /// Count it against this one shared key (all keyless requests together).
    Shared(String),
}

type CostFn = dyn Fn(&RequestHead<'_>) -> u32 + Send + Sync;
type AllowFn = dyn Fn(&RequestHead<'_>) -> bool + Send + Sync;
type RejectFn = dyn Fn(&Rejection<'_>) -> Response<Bytes> + Send + Sync;

#[derive(Clone)]
pub(crate) enum Cost {
    Fixed(u32),
    Dynamic(Arc<CostFn>),
}

#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) limiter: RateLimiter,
    pub(crate) policy: HeaderValue,
    pub(crate) key: Arc<dyn KeyExtractor>,
    pub(crate) allow: AllowList,
    pub(crate) allow_if: Option<Arc<AllowFn>>,
    pub(crate) cost: Cost,
    pub(crate) on_store_error: StoreErrorPolicy,
    pub(crate) on_missing_key: MissingKey,
    pub(crate) headers: HeaderStyle,
    pub(crate) rejection: Option<Arc<RejectFn>>,
}

impl Config {
    pub(crate) fn cost(&self, head: &RequestHead<'_>) -> u32 {
        match &self.cost {
            Cost::Fixed(cost) => *cost,
            Cost::Dynamic(f) => f(head),
        }
    }

    pub(crate) fn reject(&self, rejection: &Rejection<'_>) -> Response<Bytes> {
        match &self.rejection {
            Some(f) => f(rejection),
            None => rejection.default_response(),
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("limiter", &self.limiter)
            .field("key", &self.key)
            .field("allow", &self.allow)
            .field("on_store_error", &self.on_store_error)
            .field("on_missing_key", &self.on_missing_key)
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

/// Rate limits requests with a [`RateLimiter`]: see the [module docs](super) for the
/// behaviour.
///
/// Cheap to clone (one `Arc`). Use it with `ServiceBuilder`, axum's `layer` or `route_layer`
/// (each route may have its own limits), or around any tower service.
///
/// ```
/// # async fn example(store: kv_core::Store) -> Result<(), Box<dyn std::error::Error>> {
/// use kv_middleware::rate_limit::{
///     ClientIp, HeaderStyle, RateLimitLayer, RateLimiter, StoreErrorPolicy,
/// };
///
/// let limiter = RateLimiter::builder(store.namespace("RATE_LIMITS").await?)
///     .with_quota("burst", "10/s".parse()?)
///     .with_quota("hourly", "1000/h".parse()?)
///     .build()?;
/// let layer = RateLimitLayer::new(limiter)
///     .with_key(ClientIp::trusting(["10.0.0.0/8"])?)
///     .with_headers(HeaderStyle::Both)
///     .with_store_error_policy(StoreErrorPolicy::FailClosed);
/// # let _ = layer;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RateLimitLayer {
    config: Arc<Config>,
}

impl fmt::Debug for RateLimitLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.config.fmt(f)
    }
}

impl RateLimitLayer {
    /// Limits requests with `limiter`, with the defaults: keyed by peer IP (IPv6 by /64),
    /// cost 1, draft headers, fail-open on store errors, 400 for a request without a key.
    pub fn new(limiter: RateLimiter) -> Self {
        let policy = policy_value(limiter.quotas());
        RateLimitLayer {
            config: Arc::new(Config {
                limiter,
                policy,
                key: Arc::new(PeerIp::new()),
                allow: AllowList::new(),
                allow_if: None,
                cost: Cost::Fixed(1),
                on_store_error: StoreErrorPolicy::default(),
                on_missing_key: MissingKey::default(),
                headers: HeaderStyle::default(),
                rejection: None,
            }),
        }
    }

    /// The common case in one call: limits each client IP (the peer address, IPv6 by /64) to
    /// `quota`, a quota named `name` whose state lives in `namespace`.
    ///
    /// The same as [`RateLimitLayer::new`] over
    /// `RateLimiter::builder(namespace).with_quota(name, quota).build()?`, with every default of
    /// both; use that form for several quotas, other keys (behind a proxy, [`ClientIp`]) or the
    /// limiter's settings. Layers (and processes) that use the same `name` in the same
    /// namespace share one limit. Fails as [`RateLimiterBuilder::build`] does: a name that is
    /// not 1 to 64 ASCII letters, digits, `_`, `-` or `.`, or a store that cannot
    /// compare-and-swap ([`RateLimitConfigError::NotAtomic`]).
    ///
    /// [`ClientIp`]: super::ClientIp
    /// [`RateLimiterBuilder::build`]: super::RateLimiterBuilder::build
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::net::SocketAddr;
    /// use axum::{body::Body, routing::get, Router};
    /// use http::Request;
    /// use kv_middleware::rate_limit::RateLimitLayer;
    /// use tower::ServiceExt;
    ///
    /// let store = kv_backends::open("memory:").await?;
    /// let limit = RateLimitLayer::per_ip(store.namespace("RATE_LIMITS").await?, "api", "2/min".parse()?)?;
    /// let app = Router::new().route("/", get(|| async { "hi" })).layer(limit);
    ///
    /// // axum inserts the peer address when served with
    /// // `into_make_service_with_connect_info::<SocketAddr>()`; here it is set by hand.
    /// let request = || {
    ///     let mut request = Request::get("/").body(Body::empty()).unwrap();
    ///     request.extensions_mut().insert(SocketAddr::from(([203, 0, 113, 7], 50000)));
    ///     request
    /// };
    /// assert_eq!(app.clone().oneshot(request()).await?.headers()["ratelimit"], r#""api";r=1;t=30"#);
    /// assert_eq!(app.clone().oneshot(request()).await?.status(), 200);
    /// let denied = app.oneshot(request()).await?;
    /// assert_eq!(denied.status(), 429);
    /// assert_eq!(denied.headers()["retry-after"], "30");
    /// # Ok(()) }
    /// ```
    pub fn per_ip(
        namespace: Namespace,
        name: impl Into<String>,
        quota: Quota,
    ) -> Result<Self, RateLimitConfigError> {
        let limiter = RateLimiter::builder(namespace)
            .with_quota(name, quota)
            .build()?;
        Ok(RateLimitLayer::new(limiter))
    }

    fn config_mut(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// Keys requests with this extractor instead of the peer IP.
    pub fn with_key<K: KeyExtractor>(mut self, key: K) -> Self {
        self.config_mut().key = Arc::new(key);
        self
    }

    /// Lets requests whose key is on this list through unchecked (and without headers).
    pub fn with_allow_list(mut self, allow: AllowList) -> Self {
        self.config_mut().allow = allow;
        self
    }

    /// Lets requests for which `f` is true through unchecked, before their key is looked for
    /// (health checks, internal paths).
    pub fn with_allow_if<F>(mut self, f: F) -> Self
    where
        F: Fn(&RequestHead<'_>) -> bool + Send + Sync + 'static,
    {
        self.config_mut().allow_if = Some(Arc::new(f));
        self
    }

    /// Every request costs this many units (default 1; 0 checks without spending).
    ///
    /// A cost larger than a quota's burst can never be admitted: such requests get a 429
    /// without `Retry-After`.
    pub fn with_cost(mut self, cost: u32) -> Self {
        self.config_mut().cost = Cost::Fixed(cost);
        self
    }

    /// Each request costs what `f` says (a weight by method or path, say).
    pub fn with_cost_fn<F>(mut self, f: F) -> Self
    where
        F: Fn(&RequestHead<'_>) -> u32 + Send + Sync + 'static,
    {
        self.config_mut().cost = Cost::Dynamic(Arc::new(f));
        self
    }

    /// What to do when a check fails (default [`StoreErrorPolicy::FailOpen`]).
    pub fn with_store_error_policy(mut self, policy: StoreErrorPolicy) -> Self {
        self.config_mut().on_store_error = policy;
        self
    }

    /// What to do with a request without a key (default [`MissingKey::Reject`], 400).
    pub fn with_missing_key(mut self, policy: MissingKey) -> Self {
        self.config_mut().on_missing_key = policy;
        self
    }

    /// Renamed [`with_store_error_policy`](Self::with_store_error_policy).
    #[deprecated(note = "renamed `with_store_error_policy`")]
    #[doc(hidden)]
    pub fn on_store_error(self, policy: StoreErrorPolicy) -> Self {
        self.with_store_error_policy(policy)
    }

    /// Renamed [`with_missing_key`](Self::with_missing_key).
    #[deprecated(note = "renamed `with_missing_key`")]
    #[doc(hidden)]
    pub fn on_missing_key(self, policy: MissingKey) -> Self {
        self.with_missing_key(policy)
    }

    /// Which rate-limit headers to send (default [`HeaderStyle::Draft`]).
    pub fn with_headers(mut self, style: HeaderStyle) -> Self {
        self.config_mut().headers = style;
        self
    }

    /// Answers rejections with `f` instead of the default problem documents. For
    /// [`Rejection::QuotaExceeded`] the layer then adds `Retry-After` (unless `f` set one) and
    /// the rate-limit headers.
    ///
    /// ```
    /// # fn example(layer: kv_middleware::rate_limit::RateLimitLayer) {
    /// use http::{Response, StatusCode};
    /// use kv_middleware::rate_limit::Rejection;
    ///
    /// let layer = layer.with_rejection(|rejection: &Rejection<'_>| {
    ///     let mut response = rejection.default_response();
    ///     if matches!(rejection, Rejection::QuotaExceeded(_)) {
    ///         *response.body_mut() = "slow down".into();
    ///         response.headers_mut().remove(http::header::CONTENT_TYPE);
    ///     }
    ///     response
    /// });
    /// # let _ = layer; }
    /// ```
    pub fn with_rejection<F>(mut self, f: F) -> Self
    where
        F: Fn(&Rejection<'_>) -> Response<Bytes> + Send + Sync + 'static,
    {
        self.config_mut().rejection = Some(Arc::new(f));
        self
    }

    /// The limiter.
    pub fn limiter(&self) -> &RateLimiter {
        &self.config.limiter
    }

    /// The counters of the limiter and of the layers using it.
    pub fn stats(&self) -> RateLimitStats {
        self.config.limiter.stats()
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimitService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService::new(inner, self.config.clone())
    }
}
