//! What a proxy does to the header section of every message it forwards (RFC 9110 §7.6):
//! hop-by-hop fields removed, `Via` appended, the client's address appended to
//! `X-Forwarded-For` and `Forwarded` (RFC 7239), and an absolute-form target turned into
//! origin form with its authority as `Host` (RFC 9112 §3.2.2).

use std::net::{IpAddr, SocketAddr};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{PathAndQuery, Uri};
use http::{Request, Version};

/// The proxy's pseudonym in `Via` (RFC 9110 §7.6.3 `received-by`) and `Proxy-Status`.
pub const PSEUDONYM: &str = "kv";

/// Fields that describe one connection, never forwarded (RFC 9110 §7.6.1). `Proxy-Status`
/// is not among them: it is end-to-end, appended by each proxy (RFC 9209).
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
];

/// Removes the hop-by-hop fields: the fixed list, and every field `Connection` names.
///
/// `Host` is kept even when `Connection` names it: it selects the upstream's site and is part
/// of the cache key, and no client may make the proxy drop it ("hop-by-hop abuse").
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .filter(|name| name != header::HOST)
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Appends this proxy to `Via`, naming the protocol the message was received with.
pub fn append_via(headers: &mut HeaderMap, received: Version) {
    let protocol = match received {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "1.1",
    };
    let value = format!("{protocol} {PSEUDONYM}");
    headers.append(
        header::VIA,
        HeaderValue::from_str(&value).expect("a version and a token are a valid value"),
    );
}

/// Prepares a client's request for the cache layer and the upstream: origin-form target,
/// hop-by-hop fields removed, `Via`, `X-Forwarded-For` and `Forwarded` appended.
///
/// Done before the cache layer so the cache keys the request the upstream will see, and so a
/// background refresh (which copies the request head) carries the same fields.
pub fn prepare_request<B>(request: &mut Request<B>, peer: Option<SocketAddr>) {
    to_origin_form(request);
    let version = request.version();
    let headers = request.headers_mut();
    remove_hop_by_hop(headers);
    append_via(headers, version);
    if let Some(peer) = peer {
        append_forwarded_for(headers, peer.ip());
    }
}

/// An absolute-form target (`GET http://host/path`) becomes origin form, its authority the
/// `Host` (a server must ignore the received `Host` then, RFC 9112 §3.2.2): the cache and the
/// upstream see one host, so no request can store one host's answer under another's key.
fn to_origin_form<B>(request: &mut Request<B>) {
    let Some(authority) = request.uri().authority().cloned() else {
        return;
    };
    if let Ok(host) = HeaderValue::from_str(authority.as_str()) {
        request.headers_mut().insert(header::HOST, host);
    }
    let path = request
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    *request.uri_mut() = Uri::from(path);
}

/// Appends the client's address to `X-Forwarded-For` (the de facto field most origins read)
/// and `Forwarded` (RFC 7239: `for`, `host` as received, `proto`).
fn append_forwarded_for(headers: &mut HeaderMap, client: IpAddr) {
    headers.append(
        HeaderName::from_static("x-forwarded-for"),
        HeaderValue::from_str(&client.to_string()).expect("an address is a valid value"),
    );
    // IPv6 addresses are quoted and bracketed (RFC 7239 §6).
    let node = match client {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("\"[{v6}]\""),
    };
    let mut forwarded = format!("for={node}");
    if let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
        if is_token(host) {
            forwarded.push_str(&format!(";host={host}"));
        } else if !host.contains(['"', '\\']) {
            forwarded.push_str(&format!(";host=\"{host}\""));
        }
    }
    forwarded.push_str(";proto=http");
    if let Ok(value) = HeaderValue::from_str(&forwarded) {
        headers.append(header::FORWARDED, value);
    }
}

/// Whether `value` is an RFC 9110 token (so it needs no quotes).
fn is_token(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_fields_and_those_connection_names_go_but_host_stays() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, x-secret, host"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic x"),
            ("x-secret", "1"),
            ("host", "site.test"),
            ("proxy-status", "other; error=dns_timeout"),
            ("cache-control", "max-age=5"),
        ] {
            headers.append(name, HeaderValue::from_static(value));
        }
        remove_hop_by_hop(&mut headers);
        let mut left: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["cache-control", "host", "proxy-status"]);
    }

    #[test]
    fn absolute_form_becomes_origin_form_with_its_host() {
        let mut request = Request::get("http://Other.test:8080/a?b=1")
            .header("host", "site.test")
            .body(())
            .unwrap();
        prepare_request(&mut request, Some("[2001:db8::1]:5000".parse().unwrap()));
        assert_eq!(request.uri().to_string(), "/a?b=1");
        let headers = request.headers();
        assert_eq!(headers["host"], "Other.test:8080");
        assert_eq!(headers["via"], "1.1 kv");
        assert_eq!(headers["x-forwarded-for"], "2001:db8::1");
        assert_eq!(
            headers["forwarded"],
            "for=\"[2001:db8::1]\";host=\"Other.test:8080\";proto=http"
        );
    }

    #[test]
    fn forwarding_fields_are_appended_after_earlier_proxies() {
        let mut request = Request::get("/")
            .version(Version::HTTP_10)
            .header("host", "site.test")
            .header("via", "1.1 edge")
            .header("x-forwarded-for", "203.0.113.7")
            .body(())
            .unwrap();
        prepare_request(&mut request, Some("192.0.2.1:40000".parse().unwrap()));
        let all = |name: &str| -> Vec<&str> {
            request
                .headers()
                .get_all(name)
                .iter()
                .map(|v| v.to_str().unwrap())
                .collect()
        };
        assert_eq!(all("via"), ["1.1 edge", "1.0 kv"]);
        assert_eq!(all("x-forwarded-for"), ["203.0.113.7", "192.0.2.1"]);
        assert_eq!(
            all("forwarded"),
            ["for=192.0.2.1;host=site.test;proto=http"]
        );
    }
}
