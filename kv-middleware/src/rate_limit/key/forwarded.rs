//! The client behind trusted reverse proxies ([`ClientIp`]) and the `X-Forwarded-For` and
//! `Forwarded` parsers it reads the proxies' chain with.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use http::header::FORWARDED;
use http::HeaderMap;

use super::{Cidr, CidrError, Extraction, IpGrouping, KeyExtractor, RateKey, RequestHead};
use crate::shared::cidr::parse_networks;

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

    /// Renamed [`with_header`](Self::with_header).
    #[deprecated(note = "renamed `with_header`")]
    #[doc(hidden)]
    pub fn header(self, header: ForwardedHeader) -> Self {
        self.with_header(header)
    }

    /// Reads this header instead of `X-Forwarded-For`.
    pub fn with_header(mut self, header: ForwardedHeader) -> Self {
        self.header = header;
        self
    }

    /// Renamed [`with_ipv6_prefix`](Self::with_ipv6_prefix).
    #[deprecated(note = "renamed `with_ipv6_prefix`")]
    #[doc(hidden)]
    pub fn ipv6_prefix(self, prefix: u8) -> Self {
        self.with_ipv6_prefix(prefix)
    }

    /// Groups IPv6 clients by this prefix length instead of /64.
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

    /// Groups IPv4 clients by this prefix length instead of /32.
    pub fn with_ipv4_prefix(mut self, prefix: u8) -> Self {
        self.grouping = self.grouping.with_ipv4_prefix(prefix);
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

#[cfg(test)]
mod tests {
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
            .with_header(ForwardedHeader::Forwarded);
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
            .with_header(ForwardedHeader::Forwarded);
        let h = headers(&[(
            "forwarded",
            "for=6.6.6.6, for=203.0.113.9;proto=https, for=10.0.0.7",
        )]);
        assert_eq!(
            forwarded.client_ip(ip("10.0.0.2"), &h),
            Ok(ip("203.0.113.9"))
        );
    }
}
