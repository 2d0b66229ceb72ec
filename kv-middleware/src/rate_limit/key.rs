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

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use http::header::{HeaderName, FORWARDED};
use http::{Extensions, HeaderMap, Method, Request, Uri};

use crate::shared::text::StackText;

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

/// How client addresses are grouped into keys: IPv6 clients usually hold a whole /64, so by
/// default every address of a /64 shares one key, and each IPv4 address is its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpGrouping {
    v4_prefix: u8,
    v6_prefix: u8,
}

impl Default for IpGrouping {
    fn default() -> Self {
        IpGrouping {
            v4_prefix: 32,
            v6_prefix: 64,
        }
    }
}

impl IpGrouping {
    /// IPv4 by /32 (each address), IPv6 by /64.
    pub fn new() -> Self {
        Self::default()
    }

    /// Groups IPv4 addresses by this prefix length (clamped to 0..=32).
    pub fn ipv4_prefix(mut self, prefix: u8) -> Self {
        self.v4_prefix = prefix.min(32);
        self
    }

    /// Groups IPv6 addresses by this prefix length (clamped to 0..=128).
    pub fn ipv6_prefix(mut self, prefix: u8) -> Self {
        self.v6_prefix = prefix.min(128);
        self
    }

    /// The group of an address: the address itself at a full-length prefix, else the network
    /// in CIDR form (`2001:db8:1:2::/64`). An IPv4-mapped IPv6 address counts as IPv4.
    pub fn group(&self, ip: IpAddr) -> String {
        let mut text = StackText::<48>::new();
        self.write_group(ip, &mut text);
        text.as_str().to_owned()
    }

    fn write_group<const N: usize>(&self, ip: IpAddr, out: &mut StackText<N>) {
        use std::fmt::Write as _;
        // Writing to a String cannot fail.
        let _ = match ip.to_canonical() {
            IpAddr::V4(v4) if self.v4_prefix >= 32 => {
                push_ipv4(out, v4);
                Ok(())
            }
            IpAddr::V4(v4) => {
                let network = Ipv4Addr::from(u32::from(v4) & v4_mask(self.v4_prefix));
                write!(out, "{network}/{}", self.v4_prefix)
            }
            IpAddr::V6(v6) if self.v6_prefix >= 128 => write!(out, "{v6}"),
            IpAddr::V6(v6) => {
                let network = Ipv6Addr::from(u128::from(v6) & v6_mask(self.v6_prefix));
                write!(out, "{network}/{}", self.v6_prefix)
            }
        };
    }
}

/// Writes an IPv4 address in dotted decimal (what its `Display` writes, without the
/// formatting machinery: this runs for every request).
fn push_ipv4<const N: usize>(out: &mut StackText<N>, ip: Ipv4Addr) {
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            out.push_str(".");
        }
        out.push_u8(octet);
    }
}

fn v4_mask(prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p => u32::MAX << (32 - u32::from(p.min(32))),
    }
}

fn v6_mask(prefix: u8) -> u128 {
    match prefix {
        0 => 0,
        p => u128::MAX << (128 - u32::from(p.min(128))),
    }
}

/// A network in CIDR notation: `10.0.0.0/8`, `2001:db8::/32`, or one address (`192.0.2.1`).
///
/// ```
/// use kv_middleware::rate_limit::Cidr;
///
/// let net: Cidr = "10.0.0.0/8".parse()?;
/// assert!(net.contains("10.1.2.3".parse()?));
/// assert!(!net.contains("11.0.0.1".parse()?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// The network of `addr` with this prefix length (host bits are cleared).
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, CidrError> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(CidrError {
                input: format!("{addr}/{prefix}"),
                reason: "the prefix length is longer than the address",
            });
        }
        let network = match addr {
            IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4) & v4_mask(prefix))),
            IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & v6_mask(prefix))),
        };
        Ok(Cidr { network, prefix })
    }

    /// Whether `ip` is in this network (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                u32::from(ip) & v4_mask(self.prefix) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                u128::from(ip) & v6_mask(self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }

    /// Loopback, private (RFC 1918), carrier-grade NAT, link-local and unique-local networks:
    /// where reverse proxies of one site usually live.
    pub fn private_networks() -> Vec<Cidr> {
        [
            "127.0.0.0/8",
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "100.64.0.0/10",
            "169.254.0.0/16",
            "::1/128",
            "fc00::/7",
            "fe80::/10",
        ]
        .into_iter()
        .filter_map(|text| text.parse().ok())
        .collect()
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let error = |reason| CidrError {
            input: input.to_owned(),
            reason,
        };
        let text = input.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| error("not an IP address"))?;
        let prefix = match prefix {
            None if addr.is_ipv4() => 32,
            None => 128,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p
                .parse()
                .map_err(|_| error("the prefix length is not a number from 0 to 128"))?,
            Some(_) => return Err(error("the prefix length is not a number from 0 to 128")),
        };
        Cidr::new(addr, prefix).map_err(|e| error(e.reason))
    }
}

impl TryFrom<&str> for Cidr {
    type Error = CidrError;

    fn try_from(text: &str) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<IpAddr> for Cidr {
    fn from(addr: IpAddr) -> Self {
        let prefix = if addr.is_ipv4() { 32 } else { 128 };
        Cidr {
            network: addr,
            prefix,
        }
    }
}

/// A network that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid network {input:?}: {reason} (expected forms like \"10.0.0.0/8\", \"2001:db8::/32\", \"192.0.2.1\")")]
pub struct CidrError {
    input: String,
    reason: &'static str,
}

/// Parses networks, failing on the first bad one.
fn parse_networks<I>(networks: I) -> Result<Vec<Cidr>, CidrError>
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    networks.into_iter().map(|n| n.as_ref().parse()).collect()
}

/// Keys requests by the connection's peer address (the default extractor).
///
/// The address comes from axum's `ConnectInfo<SocketAddr>` (serve with
/// `into_make_service_with_connect_info::<SocketAddr>()`) or a [`SocketAddr`] request
/// extension. Behind a reverse proxy every request would share the proxy's address: use
/// [`ClientIp`] there.
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

    /// Groups IPv6 peers by this prefix length instead of /64 (128: every address alone).
    pub fn ipv6_prefix(mut self, prefix: u8) -> Self {
        self.grouping = self.grouping.ipv6_prefix(prefix);
        self
    }

    /// Groups IPv4 peers by this prefix length instead of /32.
    pub fn ipv4_prefix(mut self, prefix: u8) -> Self {
        self.grouping = self.grouping.ipv4_prefix(prefix);
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

/// Which header trusted proxies record the client chain in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (the default).
    #[default]
    XForwardedFor,
    /// `Forwarded: for=client, for="[2001:db8::1]:4711"` (RFC 7239).
    Forwarded,
}

/// Keys requests by the client address behind trusted reverse proxies.
///
/// Proxies append the address they received a request from to `X-Forwarded-For` (or
/// `Forwarded`), so the list reads client-first, nearest-proxy-last, and **anything left of
/// the first trusted proxy's entry is whatever the client sent**. The extractor therefore
/// starts at the peer and walks the list right to left: while the address at hand belongs to a
/// trusted network it steps one entry left; the first untrusted address is the client. A
/// request whose peer is not trusted is keyed by the peer, whatever its headers say, and a
/// request in which every hop is trusted by the leftmost one.
///
/// ```
/// use kv_middleware::rate_limit::ClientIp;
///
/// let key = ClientIp::trusting(["10.0.0.0/8", "fd00::/8"])?;
/// // A request from the load balancer 10.0.0.2 carrying
/// // `X-Forwarded-For: 6.6.6.6, 203.0.113.9, 10.0.0.7`
/// // is keyed "ip:203.0.113.9": 10.0.0.7 is trusted, 6.6.6.6 was written by the client.
/// # let _ = key;
/// # Ok::<(), kv_middleware::rate_limit::CidrError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ClientIp {
    trusted: Arc<[Cidr]>,
    header: ForwardedHeader,
    grouping: IpGrouping,
}

impl ClientIp {
    /// Trusts proxies in these networks (CIDR strings, or single addresses).
    pub fn trusting<I>(networks: I) -> Result<Self, CidrError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        Ok(Self::with_trusted(parse_networks(networks)?))
    }

    /// Trusts proxies in these networks.
    pub fn with_trusted(networks: impl Into<Vec<Cidr>>) -> Self {
        ClientIp {
            trusted: networks.into().into(),
            header: ForwardedHeader::default(),
            grouping: IpGrouping::default(),
        }
    }

    /// Reads this header instead of `X-Forwarded-For`.
    pub fn header(mut self, header: ForwardedHeader) -> Self {
        self.header = header;
        self
    }

    /// Groups IPv6 clients by this prefix length instead of /64.
    pub fn ipv6_prefix(mut self, prefix: u8) -> Self {
        self.grouping = self.grouping.ipv6_prefix(prefix);
        self
    }

    /// Groups IPv4 clients by this prefix length instead of /32.
    pub fn ipv4_prefix(mut self, prefix: u8) -> Self {
        self.grouping = self.grouping.ipv4_prefix(prefix);
        self
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(ip))
    }

    /// The client address of a request from `peer` with these headers.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> Result<IpAddr, &'static str> {
        if !self.is_trusted(peer) {
            return Ok(peer);
        }
        let hops = match self.header {
            ForwardedHeader::XForwardedFor => x_forwarded_for(headers),
            ForwardedHeader::Forwarded => forwarded_for(headers),
        };
        let mut client = peer;
        for hop in hops.iter().rev() {
            match hop {
                Some(ip) => {
                    client = *ip;
                    if !self.is_trusted(client) {
                        return Ok(client);
                    }
                }
                None => return Err("a trusted proxy forwarded an entry that is not an address"),
            }
        }
        Ok(client)
    }
}

impl KeyExtractor for ClientIp {
    fn extract(&self, request: &RequestHead<'_>) -> Extraction {
        let Some(peer) = request.peer_addr() else {
            return Extraction::Missing(Cow::Borrowed("no peer address in the request extensions"));
        };
        match self.client_ip(peer.ip(), request.headers) {
            Ok(ip) => Extraction::Key(RateKey::from_ip(ip, self.grouping)),
            Err(reason) => Extraction::Missing(Cow::Borrowed(reason)),
        }
    }
}

/// The entries of every `X-Forwarded-For` line, left to right; `None` for one that is not an
/// address (an optional port and IPv6 brackets are accepted).
///
/// Each entry stands alone: bytes a client put in its own entries (not ASCII, not UTF-8) make
/// those entries `None` and leave the ones proxies appended after them readable.
pub fn x_forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let mut hops = Vec::new();
    for line in headers.get_all("x-forwarded-for") {
        hops.extend(
            line.as_bytes()
                .split(|&b| b == b',')
                .map(<[u8]>::trim_ascii)
                .filter(|entry| !entry.is_empty())
                .map(|entry| std::str::from_utf8(entry).ok().and_then(parse_node)),
        );
    }
    hops
}

/// The `for=` nodes of every `Forwarded` line (RFC 7239), left to right; `None` for an element
/// without one or with a node that is not an address (`unknown`, `_hidden`).
///
/// A line is split into elements from its end: what trusted proxies appended is on the right
/// and well formed, so a client that opens a quoted string it never closes (`for="1.2.3.4`,
/// `x="`) garbles only its own elements and cannot swallow (or forge) the ones after it.
pub fn forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let mut hops = Vec::new();
    for line in headers.get_all(FORWARDED) {
        for element in split_outside_quotes(line.as_bytes(), b',') {
            if element.trim_ascii().is_empty() {
                continue;
            }
            let node = split_outside_quotes(element, b';')
                .into_iter()
                .find_map(|pair| {
                    let equals = pair.iter().position(|&b| b == b'=')?;
                    let (name, value) = (&pair[..equals], &pair[equals + 1..]);
                    name.trim_ascii()
                        .eq_ignore_ascii_case(b"for")
                        .then(|| trim_quotes(value.trim_ascii()))
                });
            hops.push(
                node.and_then(|node| std::str::from_utf8(node).ok())
                    .and_then(parse_node),
            );
        }
    }
    hops
}

/// Splits at `separator` where it is outside double quotes, scanning from the end (see
/// [`forwarded_for`]); the parts in their order in `text`.
fn split_outside_quotes(text: &[u8], separator: u8) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut quoted = false;
    let mut end = text.len();
    for (i, &b) in text.iter().enumerate().rev() {
        if b == b'"' {
            quoted = !quoted;
        } else if b == separator && !quoted {
            parts.push(&text[i + 1..end]);
            end = i;
        }
    }
    parts.push(&text[..end]);
    parts.reverse();
    parts
}

/// `text` without the double quotes around it.
fn trim_quotes(text: &[u8]) -> &[u8] {
    let start = text.iter().position(|&b| b != b'"').unwrap_or(text.len());
    let end = text
        .iter()
        .rposition(|&b| b != b'"')
        .map_or(start, |i| i + 1);
    &text[start..end.max(start)]
}

/// An address, with an optional port: `192.0.2.1`, `192.0.2.1:80`, `2001:db8::1`,
/// `[2001:db8::1]`, `[2001:db8::1]:4711`.
fn parse_node(node: &str) -> Option<IpAddr> {
    let node = node.trim();
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = node.strip_prefix('[') {
        let (addr, after) = rest.split_once(']')?;
        let port_ok = after.is_empty()
            || after
                .strip_prefix(':')
                .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        if !port_ok {
            return None;
        }
        return addr.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    node.parse::<SocketAddr>().ok().map(|addr| addr.ip())
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

/// Requests that bypass the limiter: client networks and exact keys.
///
/// An allowed request is neither counted nor given rate-limit headers.
///
/// ```
/// use kv_middleware::rate_limit::AllowList;
///
/// let allow = AllowList::new()
///     .networks(["10.0.0.0/8", "::1"])?
///     .key("x-api-key:internal-batch-job");
/// # let _ = allow;
/// # Ok::<(), kv_middleware::rate_limit::CidrError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    networks: Vec<Cidr>,
    keys: Vec<String>,
}

impl AllowList {
    /// Allows nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also allows clients in these networks (CIDR strings or single addresses).
    pub fn networks<I>(mut self, networks: I) -> Result<Self, CidrError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.networks.extend(parse_networks(networks)?);
        Ok(self)
    }

    /// Also allows clients in this network.
    pub fn network(mut self, network: Cidr) -> Self {
        self.networks.push(network);
        self
    }

    /// Also allows this exact key (as an extractor produces it: `x-api-key:VALUE`, `ip:...`).
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.keys.push(key.into());
        self
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty() && self.keys.is_empty()
    }

    /// Whether a request with this key bypasses the limiter.
    pub fn allows(&self, key: &RateKey) -> bool {
        if let Some(ip) = key.ip() {
            if self.networks.iter().any(|net| net.contains(ip)) {
                return true;
            }
        }
        self.keys.iter().any(|k| k == key.as_str())
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

    use super::*;
    use http::HeaderValue;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn cidr_parsing_and_membership() {
        let net: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(net.contains(ip("10.255.0.1")));
        assert!(!net.contains(ip("11.0.0.1")));
        assert!(!net.contains(ip("::1")));
        assert!(net.contains(ip("::ffff:10.1.2.3")), "IPv4-mapped counts");
        let host: Cidr = "192.0.2.1".parse().unwrap();
        assert_eq!(host.to_string(), "192.0.2.1/32");
        assert!(host.contains(ip("192.0.2.1")) && !host.contains(ip("192.0.2.2")));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        assert_eq!(
            "10.1.2.3/8".parse::<Cidr>().unwrap().to_string(),
            "10.0.0.0/8"
        );
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("8.8.8.8")));
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "nope/8",
            "10.0.0.0/",
            "10.0.0.0/x",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad:?}");
        }
        assert!(Cidr::private_networks().len() >= 9);
    }

    #[test]
    fn ipv4_text_is_dotted_decimal() {
        for text in [
            "0.0.0.0",
            "1.2.3.4",
            "10.100.99.255",
            "255.255.255.255",
            "192.0.2.10",
        ] {
            let mut out = StackText::<16>::new();
            push_ipv4(&mut out, text.parse().unwrap());
            assert_eq!(out.as_str(), text);
        }
    }

    #[test]
    fn ipv6_grouping() {
        let grouping = IpGrouping::default();
        assert_eq!(
            grouping.group(ip("2001:db8:1:2:3:4:5:6")),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            grouping.group(ip("2001:db8:1:2:ffff::1")),
            "2001:db8:1:2::/64"
        );
        assert_eq!(grouping.group(ip("203.0.113.7")), "203.0.113.7");
        assert_eq!(grouping.group(ip("::ffff:203.0.113.7")), "203.0.113.7");
        let wide = grouping.ipv6_prefix(48).ipv4_prefix(24);
        assert_eq!(wide.group(ip("2001:db8:1:2::1")), "2001:db8:1::/48");
        assert_eq!(wide.group(ip("203.0.113.7")), "203.0.113.0/24");
        let exact = IpGrouping::new().ipv6_prefix(200);
        assert_eq!(exact.group(ip("2001:db8::1")), "2001:db8::1");
    }

    #[test]
    fn forwarded_header_parsing() {
        let h = headers(&[(
            "forwarded",
            r#"for=192.0.2.60;proto=http;by=203.0.113.43, For="[2001:db8:cafe::17]:4711""#,
        )]);
        assert_eq!(
            forwarded_for(&h),
            vec![Some(ip("192.0.2.60")), Some(ip("2001:db8:cafe::17"))]
        );
        let h = headers(&[("forwarded", "for=unknown"), ("forwarded", "proto=https")]);
        assert_eq!(forwarded_for(&h), vec![None, None]);
        let h = headers(&[("forwarded", r#"for="_gazonk;x", for=198.51.100.17:8080"#)]);
        assert_eq!(forwarded_for(&h), vec![None, Some(ip("198.51.100.17"))]);
    }

    #[test]
    fn a_client_cannot_forge_or_swallow_entries_appended_after_its_own() {
        let forwarded = ClientIp::trusting(["10.0.0.0/8"])
            .unwrap()
            .header(ForwardedHeader::Forwarded);
        let peer = ip("10.0.0.2");
        // The client opened a quoted string and never closed it; proxies appended the client's
        // real address (203.0.113.9) and their own. Read from the left, the quote swallowed
        // the appended entries and the forged 6.6.6.6 became the client.
        for sent in [
            r#"for=6.6.6.6;x=""#,
            r#"for="6.6.6.6"#,
            r#"for=6.6.6.6, x=""#,
            "\"",
        ] {
            let line = format!("{sent}, for=203.0.113.9, for=10.0.0.7");
            let h = headers(&[("forwarded", &line)]);
            assert_eq!(
                forwarded.client_ip(peer, &h),
                Ok(ip("203.0.113.9")),
                "{line}"
            );
        }
        // Bytes that are not ASCII in the client's part of X-Forwarded-For.
        let xff = ClientIp::trusting(["10.0.0.0/8"]).unwrap();
        let mut h = HeaderMap::new();
        h.append(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"\xff\xfe6.6.6.6, 203.0.113.9, 10.0.0.7").unwrap(),
        );
        assert_eq!(xff.client_ip(peer, &h), Ok(ip("203.0.113.9")));
        assert_eq!(x_forwarded_for(&h)[0], None);
    }

    #[test]
    fn x_forwarded_for_parsing() {
        let h = headers(&[
            (
                "x-forwarded-for",
                "203.0.113.195, 2001:db8:85a3::8a2e:370:7334",
            ),
            (
                "x-forwarded-for",
                "198.51.100.1:443 , [2001:db8::1]:80, garbage",
            ),
        ]);
        assert_eq!(
            x_forwarded_for(&h),
            vec![
                Some(ip("203.0.113.195")),
                Some(ip("2001:db8:85a3::8a2e:370:7334")),
                Some(ip("198.51.100.1")),
                Some(ip("2001:db8::1")),
                None,
            ]
        );
    }

    #[test]
    fn client_ip_walks_right_to_left_over_trusted_proxies() {
        let extractor = ClientIp::trusting(["10.0.0.0/8"]).unwrap();
        let spoofed = headers(&[("x-forwarded-for", "1.1.1.1, 6.6.6.6, 203.0.113.9, 10.0.0.7")]);
        assert_eq!(
            extractor.client_ip(ip("10.0.0.2"), &spoofed),
            Ok(ip("203.0.113.9"))
        );
        // An untrusted peer is the client, whatever it claims.
        assert_eq!(
            extractor.client_ip(ip("198.51.100.5"), &spoofed),
            Ok(ip("198.51.100.5"))
        );
        // No header: the (trusted) peer itself.
        assert_eq!(
            extractor.client_ip(ip("10.0.0.2"), &HeaderMap::new()),
            Ok(ip("10.0.0.2"))
        );
        // All trusted: the leftmost.
        let internal = headers(&[("x-forwarded-for", "10.9.9.9, 10.0.0.7")]);
        assert_eq!(
            extractor.client_ip(ip("10.0.0.2"), &internal),
            Ok(ip("10.9.9.9"))
        );
        // Garbage written where a trusted proxy should have written an address.
        let broken = headers(&[("x-forwarded-for", "203.0.113.9, oops")]);
        assert!(extractor.client_ip(ip("10.0.0.2"), &broken).is_err());
        // Garbage to the left of the client is the client's own business.
        let noisy = headers(&[("x-forwarded-for", "oops, 203.0.113.9")]);
        assert_eq!(
            extractor.client_ip(ip("10.0.0.2"), &noisy),
            Ok(ip("203.0.113.9"))
        );

        let forwarded = ClientIp::trusting(["10.0.0.0/8"])
            .unwrap()
            .header(ForwardedHeader::Forwarded);
        let h = headers(&[(
            "forwarded",
            "for=6.6.6.6, for=203.0.113.9;proto=https, for=10.0.0.7",
        )]);
        assert_eq!(
            forwarded.client_ip(ip("10.0.0.2"), &h),
            Ok(ip("203.0.113.9"))
        );
    }

    #[test]
    fn allow_list_matches_networks_and_keys() {
        let allow = AllowList::new()
            .networks(["10.0.0.0/8"])
            .unwrap()
            .key("x-api-key:internal");
        let grouping = IpGrouping::default();
        assert!(allow.allows(&RateKey::from_ip(ip("10.1.1.1"), grouping)));
        assert!(!allow.allows(&RateKey::from_ip(ip("11.1.1.1"), grouping)));
        assert!(allow.allows(&RateKey::new("x-api-key:internal")));
        assert!(!allow.allows(&RateKey::new("x-api-key:other")));
        assert!(!allow.is_empty() && AllowList::new().is_empty());
    }
}
