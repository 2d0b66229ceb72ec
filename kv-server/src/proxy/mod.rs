//! A caching reverse proxy on any store: `kv proxy --listen ADDR --upstream URL --store URL`.
//!
//! Every request goes through [`CacheLayer`] to one upstream (`http://` or `https://`, with an
//! optional base path), so the cache's behaviour (RFC 9111 for a shared cache, with
//! `stale-while-revalidate`, `stale-if-error`, coalescing and `Cache-Status`) can be run
//! against real clients and compared with other caches by sending them the same requests.
//! Proxies that share a store (one Redis, one kv-server) share one cache: what one stores,
//! all serve, and a purge through one is seen by all.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use kv_server::proxy::{self, ProxyConfig};
//!
//! let store = kv_backends::open("redis://127.0.0.1:6379/0").await?;
//! let cache = proxy::cache_layer(store.namespace("HTTP_CACHE").await?, None);
//! let config = ProxyConfig::new("http://127.0.0.1:3000")?.with_purge_token("s3cret");
//! let app = proxy::router(cache, config);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let server = kv_server::ServerConfig::default();
//! kv_server::serve_with_config(listener, app, &server, kv_server::shutdown_signal()).await?;
//! # Ok(()) }
//! ```
//!
//! # What is forwarded
//!
//! | part | what the upstream (or the client) gets |
//! | --- | --- |
//! | target | the upstream's scheme and authority, its base path, then the request's path and query as sent; an absolute-form target (`GET http://host/p`) becomes `/p` with its authority as `Host` (RFC 9112 §3.2.2) |
//! | `Host` | the client's, unchanged (the cache keys by it, so name-based sites behind one upstream stay apart); the upstream's only when the client sent none |
//! | bodies | streamed both ways, never buffered by the proxy (the cache buffers a response it may store, up to its body cap, see [`CacheLayer::with_max_body_size`]) |
//! | hop-by-hop fields | removed in both directions: `Connection` and the fields it names (never `Host`), `Keep-Alive`, `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`, `Proxy-Connection`, `Proxy-Authenticate`, `Proxy-Authorization` |
//! | `Via` | `1.1 kv` appended in both directions (RFC 9110 §7.6.3); stored responses keep it |
//! | client address | appended to `X-Forwarded-For` and to `Forwarded` as `for=…;host=…;proto=http` (RFC 7239) |
//! | `Cache-Status` | the layer's entry (`kv; hit`, `kv; fwd=uri-miss; …`), after any from caches nearer the upstream |
//!
//! # When the upstream fails
//!
//! | failure | answer (`Proxy-Status`, RFC 9209) |
//! | --- | --- |
//! | connection refused, reset, or not an HTTP response | `502` (`kv; error=connection_refused`, `connection_terminated`, `http_protocol_error`, `destination_unavailable`), code [`codes::UPSTREAM_FAILED`] |
//! | no response head within the upstream timeout (30 s, `--upstream-timeout`) | `504` (`kv; error=http_response_timeout`), code [`codes::UPSTREAM_TIMEOUT`] |
//! | a response body that sends nothing for the upstream timeout | the response ends early (the connection is closed) |
//!
//! The answers carry the JSON error envelope. Where the stored response allows it
//! (`stale-if-error`, RFC 5861), the cache serves it instead
//! (`Cache-Status: kv; fwd=stale; fwd-status=502; …; detail=stale-if-error`).
//!
//! # Purging
//!
//! With a purge token (`--purge-token`, or [`ProxyConfig::with_purge_token`]):
//!
//! - `PURGE /path?query` (or `PURGE http://host/path?query`) deletes every stored response of
//!   that target: all hosts, methods and variants ([`CacheLayer::purge`]);
//! - `POST /.kv/purge?prefix=/PATH` deletes every stored response whose target starts with
//!   `/PATH` (`prefix=/` empties the cache; [`CacheLayer::purge_prefix`]). The prefix is
//!   form-decoded, then compared with targets as clients sent them (percent-encoded).
//!
//! Both need `Authorization: Bearer <token>` (else `401` with `WWW-Authenticate: Bearer`) and
//! answer `{"success": true, "result": {"purged": N}, …}` with the number of store entries
//! deleted; another method on `/.kv/purge` is `405` (`Allow: POST`). Without a token both
//! are refused with `403`: they are never forwarded, since a `PURGE` that reached an upstream
//! answering `2xx` to anything would invalidate the URL through the cache's unsafe-method
//! rule, letting anyone purge. `/.kv/purge` is the proxy's own path either way.
//!
//! # Limits
//!
//! The cache has [`CacheLayer`]'s default limits (2 KiB URLs, 1 MiB bodies, 10 000 entries,
//! 256 MiB). Responses that say nothing about their freshness are stored only when a default
//! TTL is given ([`cache_layer`], `--default-ttl`). Requests with `Authorization` or `Range`
//! bypass the cache. Interim responses (`1xx`) are not passed on: hyper's client reads past
//! them, and its server answers `Expect: 100-continue` itself when the proxy starts reading
//! the request body. `Upgrade` (WebSocket) is not proxied: the field is hop-by-hop and
//! removed. The upstream connection is HTTP/1.1.

mod forward;
pub mod headers;
mod purge;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::Response;
use axum::Router;
use http::uri::{Authority, Scheme, Uri};
use kv_core::Namespace;
use kv_middleware::cache::{CacheLayer, CacheService};
use tower::{Layer, ServiceExt};
use tower_http::trace::TraceLayer;

use self::forward::Forwarder;
pub use self::purge::PURGE_PATH;

/// The upstream timeout when none is given: the longest wait for a response head, and for
/// each chunk of a response body.
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);

/// The error codes of the proxy's own answers (in the envelope's `errors[].code`), next to
/// kv-server's [`crate::error::codes`].
pub mod codes {
    /// 502: the upstream refused the connection, closed it, or sent no valid HTTP response.
    pub const UPSTREAM_FAILED: u32 = 10044;
    /// 504: the upstream sent no response head within the upstream timeout.
    pub const UPSTREAM_TIMEOUT: u32 = 10045;
}

/// A configuration the proxy cannot run with.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The upstream is not an `http://` or `https://` URL with a host, without user info,
    /// query or fragment.
    #[error("invalid upstream URL {url:?}: {reason}")]
    InvalidUpstream {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// Where the proxy sends requests: a scheme, an authority and a base path.
#[derive(Debug, Clone)]
pub struct Upstream {
    scheme: Scheme,
    authority: Authority,
    /// The base path without its trailing `/` (empty for the root).
    base: String,
}

impl Upstream {
    /// Parses `http(s)://host[:port][/base/path]`.
    ///
    /// # Errors
    ///
    /// [`ProxyError::InvalidUpstream`] for another scheme, no host, user info, a query or a
    /// fragment.
    pub fn parse(url: &str) -> Result<Self, ProxyError> {
        let invalid = |reason| ProxyError::InvalidUpstream {
            url: url.to_owned(),
            reason,
        };
        if url.contains('#') {
            return Err(invalid("a fragment is not allowed"));
        }
        let uri: Uri = url.parse().map_err(|_| invalid("not a URL"))?;
        let scheme = match uri.scheme_str() {
            Some("http") => Scheme::HTTP,
            Some("https") => Scheme::HTTPS,
            _ => return Err(invalid("the scheme must be http or https")),
        };
        let authority = uri.authority().cloned().ok_or_else(|| invalid("no host"))?;
        if authority.host().is_empty() {
            return Err(invalid("no host"));
        }
        if authority.as_str().contains('@') {
            return Err(invalid("user info is not allowed"));
        }
        if uri.query().is_some() {
            return Err(invalid("a query is not allowed"));
        }
        Ok(Upstream {
            scheme,
            authority,
            base: uri.path().trim_end_matches('/').to_owned(),
        })
    }

    /// The upstream URI for a request's target (its path and query), or `None` when the
    /// target is not a path (`*`).
    pub fn target(&self, request: &Uri) -> Option<Uri> {
        let path = request.path_and_query().map_or("/", |p| p.as_str());
        if !path.starts_with('/') {
            return None;
        }
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(format!("{}{path}", self.base))
            .build()
            .ok()
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}{}", self.scheme, self.authority, self.base)
    }
}

/// How the proxy reaches its upstream, and who may purge.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    upstream: Upstream,
    upstream_timeout: Duration,
    purge_token: Option<String>,
}

impl ProxyConfig {
    /// A proxy in front of `upstream` (see [`Upstream::parse`]), with the
    /// [`DEFAULT_UPSTREAM_TIMEOUT`] and purging disabled.
    ///
    /// # Errors
    ///
    /// [`ProxyError::InvalidUpstream`] when `upstream` is not a usable URL.
    pub fn new(upstream: &str) -> Result<Self, ProxyError> {
        Ok(ProxyConfig {
            upstream: Upstream::parse(upstream)?,
            upstream_timeout: DEFAULT_UPSTREAM_TIMEOUT,
            purge_token: None,
        })
    }

    /// The longest wait for the upstream's response head (then `504`), for a connection, and
    /// between two chunks of its response body.
    pub fn with_upstream_timeout(mut self, timeout: Duration) -> Self {
        self.upstream_timeout = timeout;
        self
    }

    /// Enables `PURGE` and `POST /.kv/purge` for requests carrying
    /// `Authorization: Bearer <token>`; an empty token leaves purging disabled.
    pub fn with_purge_token(mut self, token: impl Into<String>) -> Self {
        let token = token.into();
        self.purge_token = (!token.is_empty()).then_some(token);
        self
    }

    /// The upstream.
    pub fn upstream(&self) -> &Upstream {
        &self.upstream
    }

    /// Whether purging is enabled.
    pub fn purging(&self) -> bool {
        self.purge_token.is_some()
    }
}

/// The cache `kv proxy` runs: [`CacheLayer`]'s defaults in `namespace` (limits, host in the
/// key, `Cache-Status` named `kv`, responses without explicit freshness stored only under
/// RFC 9111's heuristic), and with `default_ttl` a fixed freshness for those instead.
pub fn cache_layer(namespace: Namespace, default_ttl: Option<Duration>) -> CacheLayer {
    let cache = CacheLayer::new(namespace);
    match default_ttl {
        Some(ttl) => cache.with_default_ttl(ttl),
        None => cache,
    }
}

/// What every request of one proxy shares.
struct Proxy {
    cache: CacheLayer,
    service: CacheService<Forwarder>,
    purge_token: Option<String>,
}

/// The proxy as an axum router: serve it with [`serve_with_config`](crate::serve_with_config)
/// (which supplies the client's address for `X-Forwarded-For`).
pub fn router(cache: CacheLayer, config: ProxyConfig) -> Router {
    let forwarder = Forwarder::new(config.upstream, config.upstream_timeout);
    let proxy = Arc::new(Proxy {
        service: cache.layer(forwarder),
        cache,
        purge_token: config.purge_token,
    });
    Router::new()
        .fallback(handle)
        .with_state(proxy)
        .layer(TraceLayer::new_for_http())
}

async fn handle(State(proxy): State<Arc<Proxy>>, mut request: Request) -> Response {
    if purge::is_purge(&request) {
        return purge::handle(&proxy.cache, proxy.purge_token.as_deref(), request).await;
    }
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0);
    headers::prepare_request(&mut request, peer);
    // The forwarder never fails: the upstream's failures are answers (502 / 504).
    match proxy.service.clone().oneshot(request).await {
        Ok(response) => response.map(Body::new),
        Err(never) => match never {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_parse_with_a_base_path() {
        let upstream = Upstream::parse("http://127.0.0.1:3000/app/").unwrap();
        assert_eq!(upstream.to_string(), "http://127.0.0.1:3000/app");
        let target = upstream.target(&"/a/b?c=1".parse().unwrap()).unwrap();
        assert_eq!(target.to_string(), "http://127.0.0.1:3000/app/a/b?c=1");
        let root = Upstream::parse("https://origin.test").unwrap();
        assert_eq!(
            root.target(&"/".parse().unwrap()).unwrap().to_string(),
            "https://origin.test/"
        );
        assert!(root.target(&"*".parse().unwrap()).is_none());
    }

    #[test]
    fn unusable_upstreams_are_refused() {
        for url in [
            "ftp://origin.test",
            "origin.test:80",
            "http://user:pw@origin.test",
            "http://origin.test/?a=1",
            "http://origin.test/#top",
            "",
        ] {
            assert!(
                matches!(
                    Upstream::parse(url),
                    Err(ProxyError::InvalidUpstream { .. })
                ),
                "{url}"
            );
        }
    }
}
