//! The extractors that key requests by what a request carries: its peer address
//! ([`PeerIp`]), a header ([`HeaderKey`]), an extension ([`ExtensionKey`]), nothing
//! ([`GlobalKey`]), a function ([`KeyFn`]) or the session's user (`SessionKey`).

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use http::header::HeaderName;

use super::{Extraction, IpGrouping, KeyExtractor, RateKey, RequestHead, MAX_KEY_BYTES};
use crate::shared::text::StackText;

/// Keys requests by the connection's peer address (the default extractor).
///
/// The address comes from axum's `ConnectInfo<SocketAddr>` (serve with
/// `into_make_service_with_connect_info::<SocketAddr>()`) or a [`SocketAddr`](std::net::SocketAddr) request
/// extension. Behind a reverse proxy every request would share the proxy's address: use
/// [`ClientIp`](super::ClientIp) there.
#[derive(Debug, Default)]
pub struct PeerIp {
    grouping: IpGrouping,
    warned: AtomicBool,
}

impl Clone for PeerIp {
    fn clone(&self) -> Self {
        PeerIp {
            grouping: self.grouping,
            warned: AtomicBool::new(false),
        }
    }
}

impl PeerIp {
    /// Keys by peer address; IPv6 grouped by /64.
    pub fn new() -> Self {
        Self::default()
    }

    /// Renamed [`with_ipv6_prefix`](Self::with_ipv6_prefix).
    #[deprecated(note = "renamed `with_ipv6_prefix`")]
    #[doc(hidden)]
    pub fn ipv6_prefix(self, prefix: u8) -> Self {
        self.with_ipv6_prefix(prefix)
    }

    /// Groups IPv6 peers by this prefix length instead of /64 (128: every address alone).
    pub fn with_ipv6_prefix(mut self, prefix: u8) -> Self {
        self.grouping = self.grouping.with_ipv6_prefix(prefix);
        self
    }

    /// Renamed [`with_ipv4_prefix`](Self::with_ipv4_prefix).
    #[deprecated(note = "renamed `with_ipv4_prefix`")]
    #[doc(hidden)]
    pub fn ipv4_prefix(self, prefix: u8) -> Self {
        self.with_ipv4_prefix(prefix)
    }

    /// Groups IPv4 peers by this prefix length instead of /32.
    pub fn with_ipv4_prefix(mut self, prefix: u8) -> Self {
        self.grouping = self.grouping.with_ipv4_prefix(prefix);
        self
    }
}

impl KeyExtractor for PeerIp {
    fn extract(&self, request: &RequestHead<'_>) -> Extraction {
        match request.peer_addr() {
            Some(addr) => Extraction::Key(RateKey::from_ip(addr.ip(), self.grouping)),
            None => {
                if !self.warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "rate limit: a request has no peer address; serve axum apps with \
                         into_make_service_with_connect_info::<SocketAddr>() or insert a \
                         SocketAddr extension"
                    );
                }
                Extraction::Missing(Cow::Borrowed("no peer address in the request extensions"))
            }
        }
    }
}

/// Keys requests by a header's value, such as an API key: `x-api-key:VALUE`.
///
/// Missing when the header is absent or empty, is not visible ASCII, or is longer than 256
/// bytes. The value is stored as a key in the namespace: hash secrets yourself (with a
/// [`KeyFn`]) if the store's readers must not see them.
#[derive(Debug, Clone)]
pub struct HeaderKey {
    name: HeaderName,
}

impl HeaderKey {
    /// Keys by this header.
    pub fn new(name: HeaderName) -> Self {
        HeaderKey { name }
    }

    /// Keys by the header of this name (case-insensitive).
    ///
    /// ```
    /// use kv_middleware::rate_limit::HeaderKey;
    ///
    /// let key = HeaderKey::parse("X-Api-Key")?;
    /// assert!(HeaderKey::parse("not a header").is_err());
    /// # let _ = key;
    /// # Ok::<(), http::header::InvalidHeaderName>(())
    /// ```
    pub fn parse(name: &str) -> Result<Self, http::header::InvalidHeaderName> {
        Ok(HeaderKey {
            name: HeaderName::try_from(name)?,
        })
    }
}

impl KeyExtractor for HeaderKey {
    fn extract(&self, request: &RequestHead<'_>) -> Extraction {
        let Some(value) = request.headers.get(&self.name) else {
            return Extraction::Missing(Cow::Owned(format!("no {} header", self.name)));
        };
        let bytes = value.as_bytes();
        let room = MAX_KEY_BYTES.saturating_sub(self.name.as_str().len() + 1);
        if bytes.is_empty() || bytes.len() > room {
            return Extraction::Missing(Cow::Owned(format!(
                "the {} header is empty or too long",
                self.name
            )));
        }
        if !bytes.iter().all(|b| b.is_ascii_graphic()) {
            return Extraction::Missing(Cow::Owned(format!(
                "the {} header is not visible ASCII",
                self.name
            )));
        }
        // Visible ASCII is UTF-8.
        let text = String::from_utf8_lossy(bytes);
        let mut key = StackText::new();
        key.push_str(self.name.as_str());
        key.push_str(":");
        key.push_str(&text);
        Extraction::Key(RateKey {
            text: key,
            ip: None,
        })
    }
}

/// Keys requests by a value an earlier layer put in the extensions (an authenticated user id,
/// a tenant), through its `Display`.
pub struct ExtensionKey<T> {
    _type: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for ExtensionKey<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExtensionKey")
            .field("type", &std::any::type_name::<T>())
            .finish()
    }
}

impl<T> Clone for ExtensionKey<T> {
    fn clone(&self) -> Self {
        ExtensionKey { _type: PhantomData }
    }
}

impl<T> Default for ExtensionKey<T> {
    fn default() -> Self {
        ExtensionKey { _type: PhantomData }
    }
}

impl<T> ExtensionKey<T> {
    /// Keys by the request's `T` extension.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<T: fmt::Display + Send + Sync + 'static> KeyExtractor for ExtensionKey<T> {
    fn extract(&self, request: &RequestHead<'_>) -> Extraction {
        match request.extensions.get::<T>() {
            Some(value) => Extraction::Key(RateKey::new(value.to_string())),
            None => Extraction::Missing(Cow::Owned(format!(
                "no {} in the request extensions",
                std::any::type_name::<T>()
            ))),
        }
    }
}

/// One key for every request: a limit on the route as a whole.
#[derive(Debug, Clone)]
pub struct GlobalKey {
    key: String,
}

impl Default for GlobalKey {
    fn default() -> Self {
        GlobalKey {
            key: "global".to_owned(),
        }
    }
}

impl GlobalKey {
    /// Every request counts against the key `global`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every request counts against this key.
    pub fn named(key: impl Into<String>) -> Self {
        GlobalKey { key: key.into() }
    }
}

impl KeyExtractor for GlobalKey {
    fn extract(&self, _request: &RequestHead<'_>) -> Extraction {
        Extraction::Key(RateKey::new(self.key.clone()))
    }
}

type KeyClosure = dyn Fn(&RequestHead<'_>) -> Option<String> + Send + Sync;

/// Keys requests by a function of the request head; `None` means no key.
///
/// ```
/// use kv_middleware::rate_limit::KeyFn;
///
/// // One bucket per tenant, from the first path segment.
/// let key = KeyFn::new(|head| {
///     let tenant = head.uri.path().trim_start_matches('/').split('/').next()?;
///     (!tenant.is_empty()).then(|| format!("tenant:{tenant}"))
/// });
/// # let _ = key;
/// ```
#[derive(Clone)]
pub struct KeyFn {
    f: Arc<KeyClosure>,
}

impl KeyFn {
    /// Keys by `f`.
    pub fn new<F>(f: F) -> Self
    where
        F: Fn(&RequestHead<'_>) -> Option<String> + Send + Sync + 'static,
    {
        KeyFn { f: Arc::new(f) }
    }
}

impl fmt::Debug for KeyFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyFn").finish_non_exhaustive()
    }
}

impl KeyExtractor for KeyFn {
    fn extract(&self, request: &RequestHead<'_>) -> Extraction {
        match (self.f)(request) {
            Some(key) => Extraction::Key(RateKey::new(key)),
            None => Extraction::Missing(Cow::Borrowed("the key function found no key")),
        }
    }
}
/// Keys requests by a value of the request's session (feature `session`): `user:` + the value
/// under `field` (a string or a number), read through the [`Session`](crate::session::Session)
/// a [`SessionLayer`](crate::session::SessionLayer) applied outside this layer put in the
/// extensions. Missing when there is no session layer, no such value, or the session cannot be
/// loaded. Usually combined with a fallback: `SessionKey::new("user_id").or(PeerIp::new())`.
#[cfg(feature = "session")]
#[derive(Debug, Clone)]
pub struct SessionKey {
    field: Arc<str>,
}

#[cfg(feature = "session")]
impl SessionKey {
    /// Keys by the session value under `field`.
    pub fn new(field: impl Into<Arc<str>>) -> Self {
        SessionKey {
            field: field.into(),
        }
    }
}

#[cfg(feature = "session")]
impl KeyExtractor for SessionKey {
    fn extract(&self, request: &RequestHead<'_>) -> Extraction {
        let Some(session) = request.extensions.get::<crate::session::Session>().cloned() else {
            return Extraction::Missing(Cow::Borrowed("no session layer outside the rate limit"));
        };
        let field = self.field.clone();
        Extraction::Deferred(Box::pin(async move {
            let value: Option<serde_json::Value> = session
                .get(&field)
                .await
                .map_err(|_| Cow::Borrowed("the session could not be loaded"))?;
            match value {
                Some(serde_json::Value::String(s)) if !s.is_empty() => {
                    Ok(RateKey::new(format!("user:{s}")))
                }
                Some(serde_json::Value::Number(n)) => Ok(RateKey::new(format!("user:{n}"))),
                _ => Err(Cow::Borrowed("the session holds no user")),
            }
        }))
    }
}
