//! [`OriginCheckLayer`]: the settings, as a tower layer.

use std::sync::Arc;

use http::uri::Scheme;
use http::Request;
use tower_layer::Layer;

use super::policy::{
    is_safe, Counters, CrossOriginRefusal, InvalidOrigin, Origin, OriginCheckStats, Policy,
};
use super::service::OriginCheckService;

/// Refuses state-changing requests that a browser made for another origin (cross-site
/// request forgery), with `403 Forbidden`. See the [module docs](super) for the rules.
///
/// Cheap to clone (one `Arc`); clones and the services made from them share the counters.
///
/// ```
/// use http::uri::Scheme;
/// use kv_middleware::origin::OriginCheckLayer;
///
/// // Behind a proxy that rewrites `Host`: name the public origin.
/// let layer = OriginCheckLayer::new()
///     .with_scheme(Scheme::HTTPS)
///     .with_allowed_origins(["https://shop.example"]);
/// # let _ = layer;
/// ```
#[derive(Debug, Clone)]
pub struct OriginCheckLayer {
    pub(crate) policy: Arc<Policy>,
    pub(crate) counters: Arc<Counters>,
}

impl Default for OriginCheckLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl OriginCheckLayer {
    /// The defaults: only the request's own origin (scheme from the URI when it has one, else
    /// not compared), no other allowed origins, `Sec-Fetch-Site: same-site` refused.
    pub fn new() -> Self {
        OriginCheckLayer {
            policy: Arc::default(),
            counters: Arc::default(),
        }
    }

    fn policy_mut(&mut self) -> &mut Policy {
        Arc::make_mut(&mut self.policy)
    }

    /// The scheme the site is served over (usually `Scheme::HTTPS`), for comparing an
    /// `Origin` with the request's own origin.
    ///
    /// A server seldom knows its scheme (TLS often ends in a proxy, and HTTP/1.1 requests do
    /// not carry it). Without this setting the scheme comes from the request URI when it has
    /// one (HTTP/2), and otherwise only host and port are compared, so an `http://` page of the
    /// same host would pass on a browser that sends `Origin` but not `Sec-Fetch-Site`. With
    /// HSTS that page cannot exist; setting the scheme closes the gap anyway.
    pub fn with_scheme(mut self, scheme: Scheme) -> Self {
        self.policy_mut().scheme = Some(scheme);
        self
    }

    /// Also lets through requests whose `Origin` is one of these (added to any given
    /// before), whatever `Sec-Fetch-Site` says: another front end of yours, or your public
    /// origin when a proxy rewrites `Host`. Each is `scheme://host[:port]` exactly as browsers
    /// send it (no path, no trailing slash, no wildcard); case and a default port do not
    /// matter.
    ///
    /// # Panics
    ///
    /// When an origin is not of that form; see
    /// [`try_with_allowed_origins`](Self::try_with_allowed_origins) for origins read from
    /// configuration.
    pub fn with_allowed_origins<I>(self, origins: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        match self.try_with_allowed_origins(origins) {
            Ok(layer) => layer,
            Err(error) => panic!("{error}"),
        }
    }

    /// [`with_allowed_origins`](Self::with_allowed_origins), returning an error for an origin
    /// that is not `scheme://host[:port]`.
    pub fn try_with_allowed_origins<I>(mut self, origins: I) -> Result<Self, InvalidOrigin>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        for origin in origins {
            let text = origin.as_ref();
            let parsed = Origin::parse(text).ok_or_else(|| InvalidOrigin(text.to_owned()))?;
            let allowed = &mut self.policy_mut().allowed;
            if !allowed.contains(&parsed) {
                allowed.push(parsed);
            }
        }
        Ok(self)
    }

    /// Whether `Sec-Fetch-Site: same-site` passes (default false): requests from the other
    /// origins of the same registrable domain (`app.example.com` for `api.example.com`, or
    /// the same host over `http`). Off by default because any subdomain, however little
    /// trusted, is same-site. Browsers that send only `Origin` are still held to the
    /// request's own origin and the allowed list (telling sites apart from an `Origin` would
    /// need the public suffix list); prefer
    /// [`with_allowed_origins`](Self::with_allowed_origins) for known front ends.
    pub fn with_allow_same_site(mut self, allow: bool) -> Self {
        self.policy_mut().allow_same_site = allow;
        self
    }

    /// Applies the check to a request without serving it: `Ok` when it may go through.
    /// Does not count or log.
    pub fn check<B>(&self, request: &Request<B>) -> Result<(), CrossOriginRefusal> {
        if is_safe(request.method()) {
            return Ok(());
        }
        self.policy.check(request.uri(), request.headers())
    }

    /// The counters of this layer and every service made from it.
    pub fn stats(&self) -> OriginCheckStats {
        self.counters.snapshot()
    }
}

impl<S> Layer<S> for OriginCheckLayer {
    type Service = OriginCheckService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        OriginCheckService::new(inner, self.clone())
    }
}
