//! [`ApiKeyLayer`]: admits requests carrying an API key listed in a config.

use std::sync::Arc;
use std::task::{Context, Poll};

use arc_swap::ArcSwapOption;
use http::{header, HeaderName, Request, Response, StatusCode};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tower_layer::Layer;
use tower_service::Service;

use super::handle::Config;

/// The header read by default.
pub const DEFAULT_API_KEY_HEADER: &str = "x-api-key";

/// Admits a request only if it presents one of the API keys a [`Config`] lists, in the
/// `X-API-Key` header (configurable) or as `Authorization: Bearer <key>`; otherwise
/// `401 Unauthorized` with an empty body.
///
/// The keys come from the config on every request, so adding or revoking a key is a config
/// update, effective within one refresh interval everywhere. Comparison is constant-time: both
/// sides are hashed with SHA-256 and every allowed digest is compared with `subtle`, without an
/// early exit, so timing reveals neither which key nor how much of it matched, nor its length.
/// An empty list admits nobody.
///
/// ```
/// # async fn example(config: kv_middleware::config::Config<Settings>) {
/// use kv_middleware::config::ApiKeyLayer;
///
/// #[derive(serde::Deserialize, serde::Serialize)]
/// struct Settings { api_keys: Vec<String> }
///
/// let layer = ApiKeyLayer::new(config, |settings| settings.api_keys.as_slice());
/// # let _ = layer;
/// # }
/// # #[derive(serde::Deserialize, serde::Serialize)] struct Settings { api_keys: Vec<String> }
/// ```
pub struct ApiKeyLayer<T> {
    shared: Arc<Shared<T>>,
}

struct Shared<T> {
    config: Config<T>,
    keys: fn(&T) -> &[String],
    header: HeaderName,
    /// The digests of the allowed keys, for the config value they were computed from.
    digests: ArcSwapOption<Digests<T>>,
}

struct Digests<T> {
    source: Arc<T>,
    digests: Vec<[u8; 32]>,
}

impl<T> Clone for ApiKeyLayer<T> {
    fn clone(&self) -> Self {
        ApiKeyLayer {
            shared: self.shared.clone(),
        }
    }
}

impl<T> std::fmt::Debug for ApiKeyLayer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyLayer")
            .field("config", &self.shared.config)
            .field("header", &self.shared.header)
            .finish_non_exhaustive()
    }
}

impl<T> ApiKeyLayer<T>
where
    T: DeserializeOwned + Send + Sync + 'static,
{
    /// Admits the keys `keys` reads from the config's current value.
    pub fn new(config: Config<T>, keys: fn(&T) -> &[String]) -> Self {
        ApiKeyLayer {
            shared: Arc::new(Shared {
                config,
                keys,
                header: HeaderName::from_static(DEFAULT_API_KEY_HEADER),
                digests: ArcSwapOption::empty(),
            }),
        }
    }

    /// Reads the key from this header instead of `X-API-Key` (`Authorization: Bearer` is
    /// always accepted too).
    pub fn with_header(self, header: HeaderName) -> Self {
        ApiKeyLayer {
            shared: Arc::new(Shared {
                config: self.shared.config.clone(),
                keys: self.shared.keys,
                header,
                digests: ArcSwapOption::empty(),
            }),
        }
    }

    /// Whether `presented` is one of the allowed keys now (constant-time).
    pub fn is_allowed(&self, presented: &str) -> bool {
        self.shared.is_allowed(presented.as_bytes())
    }
}

impl<T> Shared<T>
where
    T: DeserializeOwned + Send + Sync + 'static,
{
    fn is_allowed(&self, presented: &[u8]) -> bool {
        let current = self.config.get();
        let cached = self.digests.load_full();
        let digests = match cached {
            Some(cached) if Arc::ptr_eq(&cached.source, &current) => cached,
            _ => {
                let fresh = Arc::new(Digests {
                    digests: (self.keys)(&current)
                        .iter()
                        .map(|key| Sha256::digest(key.as_bytes()).into())
                        .collect(),
                    source: current,
                });
                self.digests.store(Some(fresh.clone()));
                fresh
            }
        };
        let presented: [u8; 32] = Sha256::digest(presented).into();
        let mut allowed = subtle::Choice::from(0);
        for digest in &digests.digests {
            allowed |= digest.ct_eq(&presented);
        }
        bool::from(allowed)
    }

    fn presented<'a>(&self, headers: &'a http::HeaderMap) -> Option<&'a [u8]> {
        if let Some(value) = headers.get(&self.header) {
            return Some(value.as_bytes());
        }
        let authorization = headers.get(header::AUTHORIZATION)?.as_bytes();
        let (scheme, token) = authorization.split_at(authorization.len().min(7));
        scheme
            .eq_ignore_ascii_case(b"bearer ")
            .then_some(token.trim_ascii())
    }
}

impl<S, T> Layer<S> for ApiKeyLayer<T> {
    type Service = ApiKeyService<S, T>;

    fn layer(&self, inner: S) -> Self::Service {
        ApiKeyService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service of [`ApiKeyLayer`].
pub struct ApiKeyService<S, T> {
    inner: S,
    shared: Arc<Shared<T>>,
}

impl<S: Clone, T> Clone for ApiKeyService<S, T> {
    fn clone(&self) -> Self {
        ApiKeyService {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S: std::fmt::Debug, T> std::fmt::Debug for ApiKeyService<S, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, T, ReqBody, ResBody> Service<Request<ReqBody>> for ApiKeyService<S, T>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    T: DeserializeOwned + Send + Sync + 'static,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ApiKeyFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let allowed = self
            .shared
            .presented(request.headers())
            .is_some_and(|key| self.shared.is_allowed(key));
        if allowed {
            ApiKeyFuture::inner(self.inner.call(request))
        } else {
            let mut response = Response::new(ResBody::default());
            *response.status_mut() = StatusCode::UNAUTHORIZED;
            ApiKeyFuture::early(response)
        }
    }
}

/// The response future of [`ApiKeyService`]: the inner service's, or the refusal
/// (`401 Unauthorized`).
pub type ApiKeyFuture<F, B> = crate::EarlyResponseFuture<F, B>;
