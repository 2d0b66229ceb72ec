//! Who a request counts against: [`KeyExtractor`]s and the [`AllowList`].
//!
//! | extractor | key | missing when |
//! | --- | --- | --- |
//! | [`PeerIp`] (default) | `ip:203.0.113.7`, `ip:2001:db8:1:2::/64` | no peer address in the extensions |
//! | [`ClientIp`] | the same, for the client behind trusted proxies | a trusted proxy wrote an entry that is not an address |
//! | [`HeaderKey`] | `x-api-key:VALUE` | the header is absent, empty, not visible ASCII or over 256 bytes |
//! | [`ExtensionKey`] | the extension's `Display` | no such extension |
//! | [`GlobalKey`] | one fixed key for every request | never |
//! | [`KeyFn`] | whatever the function returns | it returns `None` |
//! | `SessionKey` (with the `session` feature) | `user:` + a session value | no session layer, or no such value |
//!
//! [`KeyExtractor::or`] falls back to a second extractor when the first finds nothing (for
//! example the session's user, else the IP).
//!
//! The module's parts: the extractors of this table (`extract`, and `forwarded` for
//! [`ClientIp`] and the forwarded-header parsers it reads), how addresses are grouped into keys
//! (`ip_group`) and the [`AllowList`] (`allow`). Networks in CIDR notation ([`Cidr`]) are the
//! crate's one type, shared with the flags' `in_cidr` operator.

mod allow;
mod extract;
mod forwarded;
mod ip_group;

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

use http::{Extensions, HeaderMap, Method, Request, Uri};

use crate::shared::text::StackText;

pub use self::allow::AllowList;
#[cfg(feature = "session")]
pub use self::extract::SessionKey;
pub use self::extract::{ExtensionKey, GlobalKey, HeaderKey, KeyFn, PeerIp};
pub use self::forwarded::{forwarded_for, x_forwarded_for, ClientIp, ForwardedHeader};
pub use self::ip_group::IpGrouping;
pub use crate::shared::cidr::{Cidr, CidrError};

/// The longest key a key extractor may produce, in bytes.
pub const MAX_KEY_BYTES: usize = 256;

/// The parts of a request a key extractor may look at (everything but the body).
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a> {
    /// The method.
    pub method: &'a Method,
    /// The URI.
    pub uri: &'a Uri,
    /// The headers.
    pub headers: &'a HeaderMap,
    /// The extensions (connection info, session handles, authenticated users, ...).
    pub extensions: &'a Extensions,
}

impl<'a> RequestHead<'a> {
    /// A view of a request's head.
    pub fn from_request<B>(request: &'a Request<B>) -> Self {
        RequestHead {
            method: request.method(),
            uri: request.uri(),
            headers: request.headers(),
            extensions: request.extensions(),
        }
    }

    /// The peer's address: axum's `ConnectInfo<SocketAddr>` (with the `axum` feature) or a
    /// plain [`SocketAddr`] extension, which any hyper server can insert.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        #[cfg(feature = "axum")]
        if let Some(info) = self
            .extensions
            .get::<axum::extract::ConnectInfo<SocketAddr>>()
        {
            return Some(info.0);
        }
        self.extensions.get::<SocketAddr>().copied()
    }
}

/// The key a request counts against, plus the client address when the key is one (the
/// [`AllowList`] matches networks against it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RateKey {
    /// On the stack for the usual keys (`ip:` and an address): no allocation per request.
    text: StackText<48>,
    ip: Option<IpAddr>,
}

impl RateKey {
    /// A key of this text.
    pub fn new(text: impl AsRef<str>) -> Self {
        RateKey {
            text: StackText::from(text.as_ref()),
            ip: None,
        }
    }

    /// The key of a client address, grouped: `ip:` + the address, or + the network for a prefix
    /// shorter than the address.
    pub fn from_ip(ip: IpAddr, grouping: IpGrouping) -> Self {
        let mut text = StackText::new();
        text.push_str("ip:");
        grouping.write_group(ip, &mut text);
        RateKey { text, ip: Some(ip) }
    }

    /// The key's text.
    pub fn as_str(&self) -> &str {
        self.text.as_str()
    }

    /// The (ungrouped) client address, for keys taken from one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.ip
    }

    /// The key's text, owned.
    pub fn into_string(self) -> String {
        self.text.as_str().to_owned()
    }
}

/// How a key (or a store key, `{quota}:{key}`) appears in logs: client-address keys (`ip:...`)
/// as they are, any other key (an API key, a user id, ...) only by its length, so secrets never
/// reach the logs.
pub(crate) fn loggable(key: &str) -> std::borrow::Cow<'_, str> {
    let address = |k: &str| k.starts_with("ip:");
    if address(key) || key.split_once(':').is_some_and(|(_, rest)| address(rest)) {
        std::borrow::Cow::Borrowed(key)
    } else {
        std::borrow::Cow::Owned(format!("<{}-byte key>", key.len()))
    }
}

impl fmt::Display for RateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text.as_str())
    }
}

/// A key that is only known after some asynchronous work (loading a session, say).
pub type KeyFuture =
    Pin<Box<dyn Future<Output = Result<RateKey, Cow<'static, str>>> + Send + 'static>>;

/// What a [`KeyExtractor`] found.
pub enum Extraction {
    /// The request counts against this key.
    Key(RateKey),
    /// The request carries no key; the reason is logged (at debug level) and the layer answers
    /// as its [`MissingKey`](super::MissingKey) policy says.
    Missing(Cow<'static, str>),
    /// The key comes later; the future resolves to a key or to the reason there is none.
    Deferred(KeyFuture),
}

impl fmt::Debug for Extraction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Extraction::Key(key) => f.debug_tuple("Key").field(key).finish(),
            Extraction::Missing(reason) => f.debug_tuple("Missing").field(reason).finish(),
            Extraction::Deferred(_) => f.write_str("Deferred(..)"),
        }
    }
}

/// Finds the key a request counts against.
///
/// Implement it for keys of your own, or use [`KeyFn`] for a closure. A key longer than
/// [`MAX_KEY_BYTES`] is treated as missing.
pub trait KeyExtractor: Send + Sync + fmt::Debug + 'static {
    /// The key of this request.
    fn extract(&self, request: &RequestHead<'_>) -> Extraction;

    /// This extractor, falling back to `fallback` when it finds no key.
    ///
    /// ```
    /// use kv_middleware::rate_limit::{HeaderKey, KeyExtractor, PeerIp};
    ///
    /// // API clients by their key, everyone else by address.
    /// let key = HeaderKey::new(http::HeaderName::from_static("x-api-key")).or(PeerIp::new());
    /// # let _ = key;
    /// ```
    fn or<K: KeyExtractor>(self, fallback: K) -> Or<Self, K>
    where
        Self: Sized,
    {
        Or {
            first: self,
            fallback,
        }
    }
}

impl<K: KeyExtractor + ?Sized> KeyExtractor for Arc<K> {
    fn extract(&self, request: &RequestHead<'_>) -> Extraction {
        (**self).extract(request)
    }
}

impl<K: KeyExtractor + ?Sized> KeyExtractor for Box<K> {
    fn extract(&self, request: &RequestHead<'_>) -> Extraction {
        (**self).extract(request)
    }
}

/// Tries one extractor, then another: see [`KeyExtractor::or`].
#[derive(Debug, Clone)]
pub struct Or<A, B> {
    first: A,
    fallback: B,
}

impl<A: KeyExtractor, B: KeyExtractor> KeyExtractor for Or<A, B> {
    fn extract(&self, request: &RequestHead<'_>) -> Extraction {
        match self.first.extract(request) {
            Extraction::Key(key) => Extraction::Key(key),
            Extraction::Missing(_) => self.fallback.extract(request),
            Extraction::Deferred(first) => {
                // The fallback must look at the request now, while it is at hand.
                let fallback = self.fallback.extract(request);
                Extraction::Deferred(Box::pin(async move {
                    match first.await {
                        Ok(key) => Ok(key),
                        Err(_) => match fallback {
                            Extraction::Key(key) => Ok(key),
                            Extraction::Missing(reason) => Err(reason),
                            Extraction::Deferred(later) => later.await,
                        },
                    }
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn only_address_keys_are_logged_as_they_are() {
        assert_eq!(super::loggable("ip:192.0.2.1"), "ip:192.0.2.1");
        assert_eq!(
            super::loggable("api:ip:2001:db8::/64"),
            "api:ip:2001:db8::/64"
        );
        assert_eq!(super::loggable("x-api-key:s3cret"), "<16-byte key>");
        assert_eq!(super::loggable("api:user:ada"), "<12-byte key>");
    }
}
