//! [`CacheService`]: the request path of the HTTP cache.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode, Uri};
use http_body::Body;
use kv_core::{BoxError, BulkPut, PutOptions};
use tower_service::Service;

use super::body::{buffer, Buffered, CacheBody};
use super::engine::{unix_ms, Settled, Verdict};
use super::entry::{Freshness, Marker, Stored, StoredResponse};
use super::future::ResponseFuture;
use super::key;
use super::layer::{Config, State};
use super::policy::{self, NotStored, Windows};
use super::range::{self, Plan};
use super::stats::{CacheStats, Counters};
use super::trim;
use super::vary;
use crate::shared::singleflight::Join;

/// The service [`CacheLayer`](super::CacheLayer) wraps around an inner service.
///
/// Its responses have a [`CacheBody`]. The inner service is cloned for background refreshes,
/// which send it a copy of the request head with an empty (`Default`) body.
pub struct CacheService<S> {
    inner: S,
    shared: Shared,
}

impl<S: Clone> Clone for CacheService<S> {
    fn clone(&self) -> Self {
        CacheService {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for CacheService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheService")
            .field("inner", &self.inner)
            .field("namespace", &self.shared.config.store.namespace)
            .finish()
    }
}

impl<S> CacheService<S> {
    pub(crate) fn new(inner: S, config: Arc<Config>, state: Arc<State>) -> Self {
        CacheService {
            inner,
            shared: Shared { config, state },
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, consuming the cache.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// The counters of the layer this service came from.
    pub fn stats(&self) -> CacheStats {
        self.shared.state.engine.counters.snapshot()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for CacheService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Default + Send + 'static,
    ResBody: Body + Send + 'static,
    ResBody::Data: Send,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<CacheBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // The ready service handles this request; a fresh clone waits for the next one.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::new(Box::pin(self.shared.clone().handle(inner, request)))
    }
}

/// What a flight's leader tells the requests waiting on it.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    /// A response they may use (stored, or a shareable error when `stored` is false).
    Response {
        response: Arc<StoredResponse>,
        fwd_status: StatusCode,
        stored: bool,
    },
    /// The origin failed (an error, a timeout or a server error).
    Failed,
    /// A response that must not be shared (uncacheable or streamed): ask the origin yourself.
    NotShared,
}

/// Which `X-Cache` value a response gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum XCache {
    Hit,
    Miss,
    Stale,
    Revalidated,
    Bypass,
}

impl XCache {
    fn as_str(self) -> &'static str {
        match self {
            XCache::Hit => "HIT",
            XCache::Miss => "MISS",
            XCache::Stale => "STALE",
            XCache::Revalidated => "REVALIDATED",
            XCache::Bypass => "BYPASS",
        }
    }

    fn header(self) -> HeaderValue {
        HeaderValue::from_static(self.as_str())
    }
}

/// One `Cache-Status` entry (RFC 9211) and the matching `X-Cache`.
#[derive(Debug, Clone, Copy)]
struct Status {
    x: XCache,
    hit: bool,
    fwd: Option<&'static str>,
    fwd_status: Option<u16>,
    collapsed: bool,
    stored: bool,
    ttl: Option<i64>,
    detail: Option<&'static str>,
}

impl Status {
    fn new(x: XCache) -> Self {
        Status {
            x,
            hit: false,
            fwd: None,
            fwd_status: None,
            collapsed: false,
            stored: false,
            ttl: None,
            detail: None,
        }
    }

    fn hit(x: XCache, ttl: i64, detail: Option<&'static str>) -> Self {
        Status {
            hit: true,
            ttl: Some(ttl),
            detail,
            ..Status::new(x)
        }
    }

    fn forwarded(x: XCache, fwd: &'static str, fwd_status: Option<StatusCode>) -> Self {
        Status {
            fwd: Some(fwd),
            fwd_status: fwd_status.map(|s| s.as_u16()),
            ..Status::new(x)
        }
    }
}

/// The request, as needed after its head went to the origin.
struct Target {
    /// The whole base key.
    base: String,
    /// The URL's Vary marker, if one was read.
    marker: Option<Marker>,
    method: Method,
    headers: HeaderMap,
}

/// What a lookup found.
#[derive(Default)]
struct Lookup {
    found: Option<StoredResponse>,
    marker: Option<Marker>,
    /// The whole variant key, when a marker was found.
    variant: Option<String>,
    vary_miss: bool,
    store_error: bool,
}

/// What one exchange with the origin gave.
enum Exchange<B, E> {
    /// The inner service failed.
    Failed(E),
    /// A `304` confirmed the candidate: the merged response.
    Revalidated {
        response: Arc<StoredResponse>,
        stored: bool,
    },
    /// A storable response, buffered (`stored` is false when the store write failed).
    Fresh {
        response: Arc<StoredResponse>,
        stored: bool,
        /// Fields not stored (qualified `private` / `no-cache`): for this request's client only.
        withheld: HeaderMap,
    },
    /// A server error, for the caller to replace with stale or pass on.
    ServerError(Response<B>),
    /// A response that is not stored, streamed through.
    Uncached {
        response: Response<CacheBody<B>>,
        reason: NotStored,
    },
}

/// The configuration and state every request of one layer shares.
#[derive(Clone)]
pub(crate) struct Shared {
    config: Arc<Config>,
    state: Arc<State>,
}

/// Headers a cache never stores: hop-by-hop fields and those describing this hop's handling.
const NOT_STORED: [&str; 12] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "age",
    "cache-status",
    "x-cache",
];

/// `Cache-Status` (RFC 9211) and `X-Cache`, made once at compile time.
const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");
const X_CACHE: HeaderName = HeaderName::from_static("x-cache");

/// Headers a `304` to a client carries over from the stored response (RFC 9110 §15.4.5).
const NOT_MODIFIED_KEEPS: [HeaderName; 7] = [
    header::CACHE_CONTROL,
    header::CONTENT_LOCATION,
    header::DATE,
    header::ETAG,
    header::EXPIRES,
    header::LAST_MODIFIED,
    header::VARY,
];

impl Shared {
    async fn handle<S, ReqBody, ResBody>(
        self,
        inner: S,
        request: Request<ReqBody>,
    ) -> Result<Response<CacheBody<ResBody>>, S::Error>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Send + 'static,
        ReqBody: Default + Send + 'static,
        ResBody: Body + Send + 'static,
        ResBody::Data: Send,
        ResBody::Error: Into<BoxError>,
    {
        // The slow paths are boxed futures of their own, so this one (allocated for every
        // request) stays small.
        let config = self.config.clone();
        if !config.methods.contains(request.method()) {
            return Box::pin(self.not_cached_method(inner, request)).await;
        }
        if !config.authorized && request.headers().contains_key(header::AUTHORIZATION) {
            return Box::pin(self.bypass(inner, request, "bypass", "authorization")).await;
        }
        // Range is defined for GET only (RFC 9110 §14.2): other methods ignore it. A byte
        // range is answered from a stored response; any other goes to the origin unchanged.
        let ranged =
            *request.method() == Method::GET && request.headers().contains_key(header::RANGE);
        if ranged && range::parse(request.headers()).is_none() {
            return Box::pin(self.bypass(inner, request, "bypass", "range")).await;
        }

        // On the stack: a hit needs the key only to read and check the entry.
        let mut base = key::KeyText::new();
        if let Err(unkeyed) = key::write_base_key(
            &mut base,
            &config.key,
            request.method(),
            request.uri(),
            request.headers(),
        ) {
            return Box::pin(self.bypass(inner, request, "bypass", unkeyed.as_str())).await;
        }
        let (parts, body) = request.into_parts();
        let mut lookup = self.lookup(base.as_str(), &parts.headers).await;
        let now_ms = self.now_ms();

        if let Some(found) = lookup.found.take() {
            match self.state.engine.judge(&found, &found.key, now_ms) {
                Verdict::Fresh => {
                    let status = Status::hit(XCache::Hit, found.ttl_secs(now_ms), None);
                    let age = found.age_secs(now_ms);
                    return Ok(self.respond_owned(found, &parts, status, Some(age)));
                }
                Verdict::StaleWhileRevalidate => {
                    let found = Arc::new(found);
                    let status = Status::hit(
                        XCache::Stale,
                        found.ttl_secs(now_ms),
                        Some("stale-while-revalidate"),
                    );
                    let response =
                        self.respond(&found, &parts, status, Some(found.age_secs(now_ms)));
                    let target = Target {
                        base: base.as_str().to_owned(),
                        marker: lookup.marker,
                        method: parts.method.clone(),
                        headers: parts.headers.clone(),
                    };
                    self.spawn_refresh(inner, parts, found, target, now_ms);
                    return Ok(response);
                }
                Verdict::StaleIfErrorBackingOff => {
                    let status = Status::hit(
                        XCache::Stale,
                        found.ttl_secs(now_ms),
                        Some("stale-if-error"),
                    );
                    let age = found.age_secs(now_ms);
                    return Ok(self.respond_owned(found, &parts, status, Some(age)));
                }
                Verdict::Fetch => lookup.found = Some(found),
            }
        }
        if ranged {
            // Nothing servable stored: the origin answers the range itself, and its partial
            // answer is not stored (the cache stores complete responses only).
            let request = Request::from_parts(parts, body);
            return Box::pin(self.bypass(inner, request, "bypass", "range")).await;
        }
        let base = base.as_str().to_owned();
        Box::pin(self.fetch(inner, parts, body, base, lookup)).await
    }

    /// To the origin, one request per key in this process.
    async fn fetch<S, ReqBody, ResBody>(
        self,
        mut inner: S,
        parts: Parts,
        body: ReqBody,
        base: String,
        mut lookup: Lookup,
    ) -> Result<Response<CacheBody<ResBody>>, S::Error>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>>,
        ResBody: Body,
        ResBody::Error: Into<BoxError>,
    {
        let config = self.config.clone();
        let fwd = if lookup.found.is_some() {
            "stale"
        } else if lookup.vary_miss {
            "vary-miss"
        } else if lookup.store_error {
            "miss"
        } else {
            "uri-miss"
        };
        let flight_key = match (&lookup.found, &lookup.variant) {
            (Some(found), _) => found.key.clone(),
            (None, Some(variant)) => variant.clone(),
            (None, None) => base.clone(),
        };
        let mut target = Target {
            base,
            marker: lookup.marker.take(),
            method: parts.method.clone(),
            headers: parts.headers.clone(),
        };
        let mut candidate = lookup.found.take();

        match self.state.engine.flights.join(&flight_key) {
            Join::Leader(leader) => {
                // Someone may have stored the key between our read and our lead: read again.
                if !lookup.store_error {
                    let again = self.lookup(&target.base, &target.headers).await;
                    let now_ms = self.now_ms();
                    if let Some(found) = again.found {
                        if found.freshness(now_ms) == Freshness::Fresh {
                            let found = Arc::new(found);
                            leader.publish(Outcome::Response {
                                response: found.clone(),
                                fwd_status: found.status,
                                stored: true,
                            });
                            Counters::bump(&self.state.engine.counters.hits);
                            let status = Status::hit(XCache::Hit, found.ttl_secs(now_ms), None);
                            let age = found.age_secs(now_ms);
                            return Ok(self.respond(&found, &parts, status, Some(age)));
                        }
                        candidate = Some(found);
                    }
                    if again.marker.is_some() {
                        target.marker = again.marker;
                    }
                }
                Counters::bump(&self.state.engine.counters.misses);
                let (result, outcome) = self
                    .forward(
                        &mut inner,
                        parts,
                        body,
                        &target,
                        candidate.as_ref(),
                        fwd,
                        detail(&lookup),
                    )
                    .await;
                leader.publish(outcome);
                result
            }
            Join::Follower(follower) => {
                let waited = follower.wait(Some(config.coalesce_timeout)).await;
                let now_ms = self.now_ms();
                let stale = candidate.as_ref().filter(|c| c.usable_on_error(now_ms));
                match (waited, stale) {
                    (
                        Ok(Outcome::Response {
                            response,
                            fwd_status,
                            stored,
                        }),
                        stale,
                    ) if vary_matches(&response, &target.headers) => {
                        if let (true, Some(stale)) = (response.status.is_server_error(), stale) {
                            return Ok(self.serve_stale_on_error(
                                stale,
                                &parts,
                                Some(response.status),
                                true,
                            ));
                        }
                        Counters::bump(&self.state.engine.counters.coalesced);
                        let x = if fwd_status == StatusCode::NOT_MODIFIED {
                            XCache::Revalidated
                        } else {
                            XCache::Miss
                        };
                        let status = Status {
                            collapsed: true,
                            stored,
                            ttl: stored.then(|| response.ttl_secs(now_ms)),
                            ..Status::forwarded(x, fwd, Some(fwd_status))
                        };
                        let age = response.age_secs(now_ms);
                        Ok(self.respond(&response, &parts, status, (age > 0).then_some(age)))
                    }
                    (Ok(Outcome::Failed), Some(stale)) => {
                        Ok(self.serve_stale_on_error(stale, &parts, None, true))
                    }
                    _ => {
                        // The leader's answer is not ours to use (or never came): ask ourselves.
                        Counters::bump(&self.state.engine.counters.misses);
                        self.forward(
                            &mut inner,
                            parts,
                            body,
                            &target,
                            candidate.as_ref(),
                            fwd,
                            detail(&lookup),
                        )
                        .await
                        .0
                    }
                }
            }
        }
    }

    /// A method the cache does not store: a successful unsafe one invalidates the URL.
    ///
    /// Unsafe is every method not known to be safe (RFC 9110 §9.2.1: `GET`, `HEAD`, `OPTIONS`
    /// and `TRACE` are), extension methods such as `PURGE` or `M-SEARCH` included: RFC 9111
    /// §4.4 has a cache invalidate the target URI after any unsafe request that did not fail.
    async fn not_cached_method<S, ReqBody, ResBody>(
        &self,
        mut inner: S,
        request: Request<ReqBody>,
    ) -> Result<Response<CacheBody<ResBody>>, S::Error>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    {
        let is_unsafe = !matches!(
            *request.method(),
            Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
        );
        if !(is_unsafe && self.config.invalidate_unsafe) {
            return self.bypass(inner, request, "method", "").await;
        }
        let uri = request.uri().clone();
        let mut host = HeaderMap::new();
        if let Some(value) = request.headers().get(header::HOST) {
            host.insert(header::HOST, value.clone());
        }
        let response = inner.call(request).await?;
        Counters::bump(&self.state.engine.counters.bypassed);
        let status = response.status();
        let mut detail = None;
        if status.is_success() || status.is_redirection() {
            self.invalidate_after_unsafe(&uri, &host, response.headers())
                .await;
            detail = Some("invalidated");
        }
        let mut response = response.map(CacheBody::stream);
        let cache_status = Status {
            detail,
            ..Status::forwarded(XCache::Bypass, "method", Some(status))
        };
        self.annotate(response.headers_mut(), &cache_status);
        Ok(response)
    }

    /// Sends the request on untouched, marking the response.
    async fn bypass<S, ReqBody, ResBody>(
        &self,
        mut inner: S,
        request: Request<ReqBody>,
        fwd: &'static str,
        detail: &'static str,
    ) -> Result<Response<CacheBody<ResBody>>, S::Error>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    {
        Counters::bump(&self.state.engine.counters.bypassed);
        let response = inner.call(request).await?;
        let status = Status {
            detail: (!detail.is_empty()).then_some(detail),
            ..Status::forwarded(XCache::Bypass, fwd, Some(response.status()))
        };
        let mut response = response.map(CacheBody::stream);
        self.annotate(response.headers_mut(), &status);
        Ok(response)
    }

    /// Deletes the GET/HEAD entries of the URL (and of `Location` / `Content-Location` on the
    /// same host); their Vary variants become unreachable with their marker.
    async fn invalidate_after_unsafe(&self, uri: &Uri, host: &HeaderMap, response: &HeaderMap) {
        let max = self.config.store.namespace.limits().max_key_bytes;
        let mut uris = vec![uri.clone()];
        for name in [header::LOCATION, header::CONTENT_LOCATION] {
            let Some(other) = response
                .get(&name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<Uri>().ok())
            else {
                continue;
            };
            let same_host = match other.authority() {
                None => other.path().starts_with('/'),
                Some(authority) => {
                    let ours = uri
                        .authority()
                        .map(|a| a.as_str())
                        .or_else(|| host.get(header::HOST).and_then(|h| h.to_str().ok()));
                    ours.is_some_and(|ours| ours.eq_ignore_ascii_case(authority.as_str()))
                }
            };
            if same_host {
                uris.push(other);
            }
        }
        let mut keys = Vec::new();
        for uri in &uris {
            for method in &self.config.methods {
                // A URL the cache does not key has nothing stored to invalidate.
                if let Ok(full) = key::base_key(&self.config.key, method, uri, host) {
                    keys.push(key::fit(&full, max).into_owned());
                }
            }
        }
        keys.sort();
        keys.dedup();
        let Some(first) = keys.first().cloned() else {
            return; // no cached methods
        };
        let ns = &self.config.store.namespace;
        if self
            .guarded("delete", &first, ns.delete_many(&keys))
            .await
            .is_some()
        {
            Counters::bump(&self.state.engine.counters.invalidations);
            tracing::debug!(uri = %uri, "invalidated after an unsafe request");
        }
    }

    /// Reads the response stored for a request, through its Vary marker if it has one.
    async fn lookup(&self, base: &str, headers: &HeaderMap) -> Lookup {
        let ns = &self.config.store.namespace;
        let max = ns.limits().max_key_bytes;
        let key = key::fit(base, max);
        let Some(entry) = self.guarded("get", &key, ns.get_entry(&key)).await else {
            return Lookup {
                store_error: true,
                ..Lookup::default()
            };
        };
        let Some(entry) = entry else {
            return Lookup::default();
        };
        match Stored::decode(&entry.value, entry.expiration) {
            Some(Stored::Response(found)) if found.key == base && found.vary.is_empty() => Lookup {
                found: Some(found),
                ..Lookup::default()
            },
            Some(Stored::Marker(marker)) => {
                Box::pin(self.lookup_variant(base, marker, headers)).await
            }
            Some(Stored::Response(_)) => {
                // Another URL's response under a shortened key, or a stale layout: a miss.
                tracing::debug!(key = %key, "stored response belongs to another key");
                Lookup::default()
            }
            None => {
                tracing::debug!(key = %key, "stored value is not a cached response");
                Lookup::default()
            }
        }
    }

    /// The second read of a lookup: the variant of a Vary marker that matches the request.
    async fn lookup_variant(&self, base: &str, marker: Marker, headers: &HeaderMap) -> Lookup {
        let ns = &self.config.store.namespace;
        let values = vary::vary_values(&marker.names, headers);
        let variant = key::variant_key(base, marker.generation, &marker.names, &values);
        let variant_key = key::fit(&variant, ns.limits().max_key_bytes);
        let read = self
            .guarded("get", &variant_key, ns.get_entry(&variant_key))
            .await;
        let mut lookup = Lookup {
            marker: Some(marker),
            ..Lookup::default()
        };
        match read {
            None => lookup.store_error = true,
            Some(None) => lookup.vary_miss = true,
            Some(Some(entry)) => match Stored::decode(&entry.value, entry.expiration) {
                Some(Stored::Response(found))
                    if found.key == variant && vary_matches(&found, headers) =>
                {
                    lookup.found = Some(found);
                }
                _ => lookup.vary_miss = true,
            },
        }
        lookup.variant = Some(variant);
        lookup
    }

    /// Sends the request to the origin (conditionally when the candidate has validators),
    /// stores what may be stored, and answers; the outcome is for the requests waiting on it.
    #[allow(clippy::too_many_arguments)]
    async fn forward<S, ReqBody, ResBody>(
        &self,
        inner: &mut S,
        parts: Parts,
        body: ReqBody,
        target: &Target,
        candidate: Option<&StoredResponse>,
        fwd: &'static str,
        lookup_detail: Option<&'static str>,
    ) -> (Result<Response<CacheBody<ResBody>>, S::Error>, Outcome)
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>>,
        ResBody: Body,
        ResBody::Error: Into<BoxError>,
    {
        let client = ClientHead {
            method: parts.method.clone(),
            headers: target.headers.clone(),
        };
        let exchange = self.exchange(inner, parts, body, target, candidate).await;
        let now_ms = self.now_ms();
        let stale = candidate.filter(|c| c.usable_on_error(now_ms));
        match exchange {
            Exchange::Failed(error) => match stale {
                Some(stale) => {
                    self.backoff_failed(&stale.key, now_ms);
                    (
                        Ok(self.serve_stale_on_error(stale, &client, None, false)),
                        Outcome::Failed,
                    )
                }
                None => (Err(error), Outcome::Failed),
            },
            Exchange::ServerError(response) => {
                let status = response.status();
                if let Some(stale) = stale {
                    self.backoff_failed(&stale.key, now_ms);
                    return (
                        Ok(self.serve_stale_on_error(stale, &client, Some(status), false)),
                        Outcome::Failed,
                    );
                }
                Counters::bump(&self.state.engine.counters.not_stored);
                let cache_status = Status {
                    detail: Some(NotStored::Status.as_str()),
                    ..Status::forwarded(XCache::Miss, fwd, Some(status))
                };
                // Shared with the waiting requests (when small enough), never stored.
                let (head, body) = response.into_parts();
                match buffer(body, self.config.max_body).await {
                    Buffered::Complete(bytes) => {
                        let shared = Arc::new(self.new_stored(
                            status,
                            &head.headers,
                            bytes,
                            now_ms,
                            Windows::default(),
                            target,
                        ));
                        let response = self.respond(&shared, &client, cache_status, None);
                        let outcome = Outcome::Response {
                            response: shared,
                            fwd_status: status,
                            stored: false,
                        };
                        (Ok(response), outcome)
                    }
                    Buffered::Stream(body) => {
                        let mut response = Response::from_parts(head, body);
                        self.annotate(response.headers_mut(), &cache_status);
                        (Ok(response), Outcome::NotShared)
                    }
                }
            }
            Exchange::Revalidated { response, stored } => {
                Counters::bump(&self.state.engine.counters.revalidated);
                self.state.engine.backoff.succeeded(&response.key);
                let status = Status {
                    stored,
                    ttl: Some(response.ttl_secs(now_ms)),
                    ..Status::forwarded(XCache::Revalidated, fwd, Some(StatusCode::NOT_MODIFIED))
                };
                let age = response.age_secs(now_ms);
                let answer = self.respond(&response, &client, status, Some(age));
                let outcome = Outcome::Response {
                    response,
                    fwd_status: StatusCode::NOT_MODIFIED,
                    stored,
                };
                (Ok(answer), outcome)
            }
            Exchange::Fresh {
                response,
                stored,
                withheld,
            } => {
                self.state.engine.backoff.succeeded(&response.key);
                let status = Status {
                    stored,
                    ttl: stored.then(|| response.ttl_secs(now_ms)),
                    detail: if stored {
                        lookup_detail
                    } else {
                        Some("store-error")
                    },
                    ..Status::forwarded(XCache::Miss, fwd, Some(response.status))
                };
                let age = response.age_secs(now_ms);
                let mut answer = self.respond(&response, &client, status, (age > 0).then_some(age));
                answer.headers_mut().extend(withheld);
                let outcome = Outcome::Response {
                    fwd_status: response.status,
                    response,
                    stored,
                };
                (Ok(answer), outcome)
            }
            Exchange::Uncached {
                mut response,
                reason,
            } => {
                Counters::bump(&self.state.engine.counters.not_stored);
                let status = Status {
                    detail: Some(lookup_detail.unwrap_or(reason.as_str())),
                    ..Status::forwarded(XCache::Miss, fwd, Some(response.status()))
                };
                self.annotate(response.headers_mut(), &status);
                (Ok(response), Outcome::NotShared)
            }
        }
    }

    /// One request to the origin and the storing of its answer.
    async fn exchange<S, ReqBody, ResBody>(
        &self,
        inner: &mut S,
        mut parts: Parts,
        body: ReqBody,
        target: &Target,
        candidate: Option<&StoredResponse>,
    ) -> Exchange<ResBody, S::Error>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>>,
        ResBody: Body,
        ResBody::Error: Into<BoxError>,
    {
        // The client's own conditions (and a range, for a HEAD or a background refresh) are
        // answered by the cache; the origin gets ours and sends the complete response.
        for name in [
            header::IF_NONE_MATCH,
            header::IF_MODIFIED_SINCE,
            header::IF_RANGE,
            header::RANGE,
        ] {
            parts.headers.remove(name);
        }
        let mut validated = false;
        if let Some(candidate) = candidate {
            if let Some(etag) = candidate.headers.get(header::ETAG) {
                parts.headers.insert(header::IF_NONE_MATCH, etag.clone());
                validated = true;
            }
            if let Some(modified) = candidate.headers.get(header::LAST_MODIFIED) {
                parts
                    .headers
                    .insert(header::IF_MODIFIED_SINCE, modified.clone());
                validated = true;
            }
        }
        let response = match inner.call(Request::from_parts(parts, body)).await {
            Ok(response) => response,
            Err(error) => return Exchange::Failed(error),
        };
        let now = self.config.store.namespace.clock().now();
        let now_ms = unix_ms(now);
        let status = response.status();

        if status == StatusCode::NOT_MODIFIED {
            if let (true, Some(candidate)) = (validated, candidate) {
                let headers = merge_headers(&candidate.headers, response.headers());
                let decided =
                    policy::decide(candidate.status, &headers, &self.config.defaults, now);
                let windows = decided.unwrap_or_default();
                let merged = self.new_stored(
                    candidate.status,
                    &headers,
                    candidate.body.clone(),
                    now_ms,
                    windows,
                    target,
                );
                let (response, stored) = match decided {
                    Ok(_) => self.store(merged, target).await,
                    Err(_) => (Arc::new(merged), false),
                };
                return Exchange::Revalidated { response, stored };
            }
            return Exchange::Uncached {
                response: response.map(CacheBody::stream),
                reason: NotStored::Status,
            };
        }
        // A server error replaces nothing stale it may stand in for, and is stored only with
        // explicit freshness (RFC 9111 §3: any final status may be).
        if status.is_server_error()
            && (candidate.is_some_and(|c| c.usable_on_error(now_ms))
                || policy::decide(status, response.headers(), &self.config.defaults, now).is_err())
        {
            return Exchange::ServerError(response);
        }
        let windows = match policy::decide(status, response.headers(), &self.config.defaults, now) {
            Ok(windows) => windows,
            Err(reason) => {
                return Exchange::Uncached {
                    response: response.map(CacheBody::stream),
                    reason,
                }
            }
        };
        // The entry records the request's values of the Vary fields: bounded like its key.
        let vary = policy::vary_names(response.headers()).unwrap_or_default();
        if key::vary_too_large(&vary, &target.headers) {
            return Exchange::Uncached {
                response: response.map(CacheBody::stream),
                reason: NotStored::VaryTooLarge,
            };
        }
        let (head, body) = response.into_parts();
        // A body the namespace bound could not hold is not buffered either.
        let cap = usize::try_from(self.config.bound.max_bytes).unwrap_or(usize::MAX);
        match buffer(body, self.config.max_body.min(cap)).await {
            Buffered::Stream(body) => Exchange::Uncached {
                response: Response::from_parts(head, body),
                reason: NotStored::TooLarge,
            },
            Buffered::Complete(bytes) => {
                let bytes = if target.method == Method::HEAD {
                    Bytes::new()
                } else {
                    bytes
                };
                let fresh = self.new_stored(status, &head.headers, bytes, now_ms, windows, target);
                let withheld = policy::withheld_headers(&head.headers, &self.config.defaults);
                let (response, stored) = self.store(fresh, target).await;
                Exchange::Fresh {
                    response,
                    stored,
                    withheld,
                }
            }
        }
    }

    /// A response to store, with its storable headers and the request's Vary values.
    fn new_stored(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        body: Bytes,
        now_ms: u64,
        windows: Windows,
        target: &Target,
    ) -> StoredResponse {
        let mut kept = headers.clone();
        let mut named: Vec<HeaderName> = Vec::new();
        for value in headers.get_all(header::CONNECTION) {
            if let Ok(text) = value.to_str() {
                named.extend(
                    text.split(',')
                        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok()),
                );
            }
        }
        for name in NOT_STORED {
            kept.remove(name);
        }
        for name in policy::withheld_fields(headers, &self.config.defaults) {
            kept.remove(name);
        }
        for name in named {
            kept.remove(name);
        }
        let names = policy::vary_names(headers).unwrap_or_default();
        let values = vary::vary_values(&names, &target.headers);
        StoredResponse {
            status,
            headers: kept,
            body,
            stored_at_ms: now_ms,
            windows,
            key: target.base.clone(),
            vary: names.into_iter().zip(values).collect(),
        }
    }

    /// Writes a response under its key (and its URL's Vary marker); `false` when the store
    /// failed or the value is too large for it.
    async fn store(
        &self,
        mut response: StoredResponse,
        target: &Target,
    ) -> (Arc<StoredResponse>, bool) {
        let ns = &self.config.store.namespace;
        let limits = ns.limits();
        let ttl = self.store_ttl(&response);
        let mut marker = None;
        if response.vary.is_empty() {
            response.key = target.base.clone();
        } else {
            let names: Vec<String> = response.vary.iter().map(|(n, _)| n.clone()).collect();
            let values: Vec<Option<Vec<u8>>> =
                response.vary.iter().map(|(_, v)| v.clone()).collect();
            let now_secs = unix_ms(ns.clock().now()) / 1000;
            let (generation, marker_ttl) = match &target.marker {
                Some(old) if old.names == names => {
                    let left = old.expiration.map_or(0, |at| at.saturating_sub(now_secs));
                    (old.generation, ttl.max(Duration::from_secs(left)))
                }
                _ => (new_generation(), ttl),
            };
            response.key = key::variant_key(&target.base, generation, &names, &values);
            marker = Some((
                Marker {
                    generation,
                    names,
                    expiration: None,
                },
                marker_ttl,
            ));
        }
        let encoded = response.encode();
        let response = Arc::new(response);
        let max = limits.max_key_bytes;
        let key = key::fit(&response.key, max);
        // Each entry's list metadata records its size and age, for the namespace bound.
        let size = key.len() + encoded.len();
        if encoded.len() > limits.max_value_bytes || size as u64 > self.config.bound.max_bytes {
            return (response, false);
        }
        let stored_at = response.stored_at_ms;
        let (written, entries, bytes) = match marker {
            None => {
                let options = PutOptions::new()
                    .ttl(ttl)
                    .metadata(trim::response_metadata(&response, size));
                let written = self
                    .guarded("put", &key, ns.put_with(&key, encoded, options))
                    .await
                    .is_some();
                (written, 1, size)
            }
            Some((marker, marker_ttl)) => {
                let marker_key = key::fit(&target.base, max).into_owned();
                let marker = marker.encode();
                let marker_size = marker_key.len() + marker.len();
                let items = vec![
                    BulkPut::new(marker_key, marker).with_options(
                        PutOptions::new()
                            .ttl(marker_ttl)
                            .metadata(trim::metadata(stored_at, marker_size)),
                    ),
                    BulkPut::new(key.clone().into_owned(), encoded).with_options(
                        PutOptions::new()
                            .ttl(ttl)
                            .metadata(trim::response_metadata(&response, size)),
                    ),
                ];
                let written = self
                    .guarded("put", &key, ns.put_many(items))
                    .await
                    .is_some();
                (written, 2, size + marker_size)
            }
        };
        if written {
            Counters::bump(&self.state.engine.counters.stored);
            tracing::debug!(key = %key, ttl_secs = ttl.as_secs(), "stored response");
            trim::after_write(&self.config, &self.state, entries, bytes as u64);
        }
        (response, written)
    }

    /// The store TTL: the response's useful life (fresh + the longer stale window, less its
    /// age), plus the revalidation grace when it has a validator, at least the store's minimum.
    fn store_ttl(&self, response: &StoredResponse) -> Duration {
        let w = &response.windows;
        let useful = w
            .fresh
            .saturating_add(w.stale_span())
            .saturating_sub(w.initial_age);
        let mut secs = useful;
        if policy::has_validator(&response.headers) {
            secs = secs.saturating_add(self.config.revalidation_grace.as_secs());
        }
        Duration::from_secs(secs.max(self.config.store.namespace.limits().min_ttl_secs))
    }

    /// Starts one background refresh of a stale entry, unless one runs or the key backs off.
    fn spawn_refresh<S, ReqBody, ResBody>(
        &self,
        inner: S,
        parts: Parts,
        candidate: Arc<StoredResponse>,
        target: Target,
        now_ms: u64,
    ) where
        S: Service<Request<ReqBody>, Response = Response<ResBody>> + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Send + 'static,
        ReqBody: Default + Send + 'static,
        ResBody: Body + Send + 'static,
        ResBody::Data: Send,
        ResBody::Error: Into<BoxError>,
    {
        let flight = candidate.key.clone();
        self.state.engine.spawn_refresh(&flight, now_ms, |leader| {
            let shared = self.clone();
            async move {
                let key = candidate.key.clone();
                let timeout = shared.config.refresh_timeout;
                let refresh = shared.refresh(inner, parts, candidate, target);
                let (outcome, settled) = match tokio::time::timeout(timeout, refresh).await {
                    Ok(result) => result,
                    Err(_) => (Outcome::Failed, Settled::Failed("timed out".to_owned())),
                };
                let engine = &shared.state.engine;
                let event = engine.settle(&shared.config.store, &key, settled);
                engine.finish_refresh(leader, outcome, event);
            }
        });
    }

    /// The body of a background refresh: its outcome, and why it failed if it did.
    async fn refresh<S, ReqBody, ResBody>(
        &self,
        mut inner: S,
        parts: Parts,
        candidate: Arc<StoredResponse>,
        target: Target,
    ) -> (Outcome, Settled)
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>>,
        ReqBody: Default,
        ResBody: Body,
        ResBody::Error: Into<BoxError>,
    {
        // Another process (or a request here) may have refreshed it already.
        let again = self.lookup(&target.base, &target.headers).await;
        let mut candidate = candidate;
        if let Some(found) = again.found {
            if found.key == candidate.key {
                if found.freshness(self.now_ms()) == Freshness::Fresh {
                    let response = Arc::new(found);
                    let fwd_status = response.status;
                    return (
                        Outcome::Response {
                            response,
                            fwd_status,
                            stored: true,
                        },
                        Settled::Done,
                    );
                }
                candidate = Arc::new(found);
            }
        }
        if std::future::poll_fn(|cx| inner.poll_ready(cx))
            .await
            .is_err()
        {
            return (
                Outcome::Failed,
                Settled::Failed("the origin service failed".to_owned()),
            );
        }
        match self
            .exchange(
                &mut inner,
                parts,
                ReqBody::default(),
                &target,
                Some(&candidate),
            )
            .await
        {
            Exchange::Failed(_) => (
                Outcome::Failed,
                Settled::Failed("the origin service failed".to_owned()),
            ),
            Exchange::ServerError(response) => (
                Outcome::Failed,
                Settled::Failed(format!("the origin answered {}", response.status())),
            ),
            Exchange::Revalidated { response, stored }
            | Exchange::Fresh {
                response, stored, ..
            } => {
                // Unlike a value nobody could store, a response the store refused backs off.
                let settled = match stored {
                    true => Settled::Done,
                    false => Settled::Failed("the store did not take the response".to_owned()),
                };
                let fwd_status = response.status;
                (
                    Outcome::Response {
                        response,
                        fwd_status,
                        stored,
                    },
                    settled,
                )
            }
            Exchange::Uncached { reason, .. } => {
                // The origin no longer allows caching this: forget the stale copy.
                let ns = &self.config.store.namespace;
                let key = key::fit(&candidate.key, ns.limits().max_key_bytes);
                let _ = self.guarded("delete", &key, ns.delete(&key)).await;
                (
                    Outcome::NotShared,
                    Settled::Failed(format!(
                        "the new response is not storable ({})",
                        reason.as_str()
                    )),
                )
            }
        }
    }

    fn backoff_failed(&self, key: &str, now_ms: u64) -> Duration {
        self.state
            .engine
            .backoff_failed(&self.config.store, key, now_ms)
    }

    /// A stale response served because the origin failed (an error, or `status`).
    fn serve_stale_on_error<B>(
        &self,
        stale: &StoredResponse,
        client: &impl Head,
        origin_status: Option<StatusCode>,
        collapsed: bool,
    ) -> Response<CacheBody<B>> {
        Counters::bump(&self.state.engine.counters.stale_if_error);
        let now_ms = self.now_ms();
        let status = Status {
            collapsed,
            ttl: Some(stale.ttl_secs(now_ms)),
            detail: Some("stale-if-error"),
            ..Status::forwarded(XCache::Stale, "stale", origin_status)
        };
        self.respond(stale, client, status, Some(stale.age_secs(now_ms)))
    }

    /// Answers from a stored response: a `304` when the client's validators match, else the
    /// part a `Range` selects (a `206` or `416`), else the whole response.
    fn respond<B>(
        &self,
        stored: &StoredResponse,
        client: &impl Head,
        status: Status,
        age: Option<u64>,
    ) -> Response<CacheBody<B>> {
        if let Some(response) = self.conditional(stored, client, status, age) {
            return response;
        }
        let body = if *client.method() == Method::HEAD || stored.body.is_empty() {
            CacheBody::empty()
        } else {
            CacheBody::full(stored.body.clone())
        };
        let mut response = Response::new(body);
        *response.status_mut() = stored.status;
        *response.headers_mut() = stored.headers.clone();
        self.finish(response, status, age)
    }

    /// [`Shared::respond`] for a response we own: its headers and body move, not copy.
    fn respond_owned<B>(
        &self,
        stored: StoredResponse,
        client: &impl Head,
        status: Status,
        age: Option<u64>,
    ) -> Response<CacheBody<B>> {
        if let Some(response) = self.conditional(&stored, client, status, age) {
            return response;
        }
        let body = if *client.method() == Method::HEAD {
            CacheBody::empty()
        } else {
            CacheBody::full(stored.body)
        };
        let mut response = Response::new(body);
        *response.status_mut() = stored.status;
        *response.headers_mut() = stored.headers;
        self.finish(response, status, age)
    }

    /// The answer to a request whose conditions or range make it other than the whole stored
    /// response: preconditions first, then the range (RFC 9110 §13.2.2).
    fn conditional<B>(
        &self,
        stored: &StoredResponse,
        client: &impl Head,
        status: Status,
        age: Option<u64>,
    ) -> Option<Response<CacheBody<B>>> {
        if not_modified(stored, client.headers()) {
            return Some(self.not_modified_response(stored, status, age));
        }
        let response = match range::plan(client.method(), client.headers(), stored) {
            Plan::Whole => return None,
            Plan::Partial { first, last } => range::partial(stored, first, last),
            Plan::Unsatisfiable => range::unsatisfiable(stored),
        };
        Some(self.finish(response, status, age))
    }

    fn not_modified_response<B>(
        &self,
        stored: &StoredResponse,
        status: Status,
        age: Option<u64>,
    ) -> Response<CacheBody<B>> {
        Counters::bump(&self.state.engine.counters.not_modified);
        let mut response = Response::new(CacheBody::empty());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        let headers = response.headers_mut();
        for name in &NOT_MODIFIED_KEEPS {
            for value in stored.headers.get_all(name) {
                headers.append(name.clone(), value.clone());
            }
        }
        self.finish(response, status, age)
    }

    fn finish<B>(
        &self,
        mut response: Response<CacheBody<B>>,
        status: Status,
        age: Option<u64>,
    ) -> Response<CacheBody<B>> {
        if let Some(age) = age {
            let value = match age {
                0 => HeaderValue::from_static("0"),
                _ => HeaderValue::from(age),
            };
            response.headers_mut().insert(header::AGE, value);
        }
        self.annotate(response.headers_mut(), &status);
        response
    }

    /// Adds `Cache-Status` (appended to any from caches nearer the origin) and `X-Cache`.
    fn annotate(&self, headers: &mut HeaderMap, status: &Status) {
        // Written on the stack, copied once into the header value.
        let mut value = StackText::<160>::new();
        value.push_str(&self.config.status_name);
        if status.hit {
            value.push_str("; hit");
        }
        if let Some(fwd) = status.fwd {
            value.push_str("; fwd=");
            value.push_str(fwd);
        }
        if let Some(code) = status.fwd_status {
            value.push_str("; fwd-status=");
            value.push_u64(code.into());
        }
        if status.collapsed {
            value.push_str("; collapsed");
        }
        if status.stored {
            value.push_str("; stored");
        }
        if let Some(ttl) = status.ttl {
            value.push_str("; ttl=");
            value.push_str(itoa::Buffer::new().format(ttl));
        }
        if let Some(detail) = status.detail {
            value.push_str("; detail=");
            value.push_str(detail);
        }
        // The cache's decision for this request, as `Cache-Status` states it.
        tracing::debug!(
            target: "kv_middleware::cache",
            state = status.x.as_str(),
            cache_status = value.as_str(),
            "cache: {}",
            status.x.as_str()
        );
        if let Ok(value) = HeaderValue::from_bytes(value.as_bytes()) {
            headers.append(CACHE_STATUS, value);
        }
        if self.config.x_cache {
            headers.insert(X_CACHE, status.x.header());
        }
    }

    /// Runs a store operation within the store timeout (the engine's guard).
    async fn guarded<T>(
        &self,
        operation: &'static str,
        key: &str,
        future: impl Future<Output = kv_core::Result<T>>,
    ) -> Option<T> {
        self.state
            .engine
            .guarded(&self.config.store, operation, key, future)
            .await
    }

    fn now_ms(&self) -> u64 {
        self.config.store.now_ms()
    }
}

/// The request head a response is made for.
trait Head {
    fn method(&self) -> &Method;
    fn headers(&self) -> &HeaderMap;
}

impl Head for Parts {
    fn method(&self) -> &Method {
        &self.method
    }
    fn headers(&self) -> &HeaderMap {
        &self.headers
    }
}

/// The client's request head, kept after the request went to the origin.
struct ClientHead {
    method: Method,
    headers: HeaderMap,
}

impl Head for ClientHead {
    fn method(&self) -> &Method {
        &self.method
    }
    fn headers(&self) -> &HeaderMap {
        &self.headers
    }
}

/// The `Cache-Status` detail a lookup calls for.
fn detail(lookup: &Lookup) -> Option<&'static str> {
    lookup.store_error.then_some("store-error")
}

/// Whether the client's validators match the stored response (only `2xx` responses).
fn not_modified(stored: &StoredResponse, request: &HeaderMap) -> bool {
    if !stored.status.is_success() {
        return false;
    }
    if request.contains_key(header::IF_NONE_MATCH) {
        return policy::if_none_match_matches(request, stored.headers.get(header::ETAG));
    }
    let since = request
        .get(header::IF_MODIFIED_SINCE)
        .and_then(policy::parse_http_date);
    let modified = stored
        .headers
        .get(header::LAST_MODIFIED)
        .and_then(policy::parse_http_date);
    matches!((since, modified), (Some(since), Some(modified)) if modified <= since)
}

/// Whether a response stored for some request also answers one with these headers.
fn vary_matches(response: &StoredResponse, headers: &HeaderMap) -> bool {
    if response.vary.is_empty() {
        return true;
    }
    let names: Vec<String> = response.vary.iter().map(|(n, _)| n.clone()).collect();
    let values = vary::vary_values(&names, headers);
    response
        .vary
        .iter()
        .zip(values)
        .all(|((_, stored), ours)| *stored == ours)
}

/// The stored headers updated by a `304`'s (RFC 9111 §3.2): each field the `304` carries
/// replaces the stored one, except `Content-Length` and the fields never stored.
fn merge_headers(stored: &HeaderMap, update: &HeaderMap) -> HeaderMap {
    let mut merged = stored.clone();
    for name in update.keys() {
        if *name == header::CONTENT_LENGTH || NOT_STORED.contains(&name.as_str()) {
            continue;
        }
        merged.remove(name);
        for value in update.get_all(name) {
            merged.append(name.clone(), value.clone());
        }
    }
    merged
}

/// A new Vary generation: distinct from earlier ones of this process and, with high
/// probability, of other processes.
fn new_generation() -> u64 {
    use std::collections::hash_map::RandomState;
    use std::hash::BuildHasher;
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    RandomState::new().hash_one((count, nanos, std::process::id()))
}

use crate::shared::text::StackText;
