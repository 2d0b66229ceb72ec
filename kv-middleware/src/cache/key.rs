//! Cache keys: how a request becomes the store key of its response.
//!
//! ```text
//! {prefix}{path}[?{query}]#{METHOD}[@{host}]                   a response without Vary,
//!                                                               or the Vary marker of the URL
//! {prefix}{path}[?{query}]#{METHOD}[@{host}]~{gen}.{hash}      one variant of a Vary response
//! ```
//!
//! The path and query come first so that purging a URL, or every URL under a path prefix, is
//! one listing by key prefix (`#` never occurs in a request target, so `{path}#` names exactly
//! one URL). A key longer than the store's key limit keeps its first bytes and ends in the
//! SHA-256 of the whole key; the stored entry records the whole key and is checked on every
//! read, so two long URLs never share a response.
//!
//! What a client can put into a key is bounded: the query is reduced by [`QueryKey`], the host
//! checked against the allow-list ([`HostPolicy`]), and a request whose keyed URL (path, kept
//! query, keyed host) is longer than [`KeyConfig::max_url`] has no key at all and bypasses the
//! cache, so every recorded whole key is short.

use std::borrow::Cow;
use std::fmt::Write as _;

use http::header::{self, HeaderMap};
use http::{Method, Uri};
use sha2::{Digest, Sha256};

use super::host::HostPolicy;
use super::query::QueryKey;
use crate::shared::text::StackText;

/// How a request becomes its key: the parts besides the method, and the limits on them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyConfig {
    /// Prepended to every key (empty by default: give the cache its own namespace).
    pub prefix: String,
    /// Key by the host (the URI's authority, else the `Host` header), lowercased.
    pub host: bool,
    /// Key by the scheme too (the URI's, else `http`); only with `host`.
    pub scheme: bool,
    /// Which part of the query string the key holds.
    pub query: QueryKey,
    /// The hosts that may be keyed, and what happens to the others; `None`: any host.
    pub hosts: Option<HostPolicy>,
    /// The longest keyed URL (path, kept query and keyed host), in bytes; longer requests
    /// bypass the cache.
    pub max_url: usize,
}

impl Default for KeyConfig {
    fn default() -> Self {
        KeyConfig {
            prefix: String::new(),
            host: true,
            scheme: false,
            query: QueryKey::keep(),
            hosts: None,
            max_url: DEFAULT_MAX_URL_SIZE,
        }
    }
}

/// The default longest keyed URL, in bytes: 2 KiB
/// ([`CacheLayer::with_max_url_size`](super::CacheLayer::with_max_url_size)).
pub const DEFAULT_MAX_URL_SIZE: usize = 2048;

/// The most bytes of request header values a stored response may record for its `Vary`
/// fields; a response varying on more is not stored.
pub(crate) const MAX_VARY_VALUES: usize = 8 * 1024;

/// Why a request is not keyed, and so bypasses the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unkeyed {
    /// The keyed URL is longer than [`KeyConfig::max_url`].
    UrlTooLong,
    /// The host is not on the allow-list and other hosts bypass.
    HostNotAllowed,
}

impl Unkeyed {
    /// The `Cache-Status` detail.
    pub fn as_str(self) -> &'static str {
        match self {
            Unkeyed::UrlTooLong => "url-too-long",
            Unkeyed::HostNotAllowed => "host-not-allowed",
        }
    }
}

/// The whole (unshortened) base key of a request, before fitting it to the key limit, or why
/// the request has none. Its length is at most the prefix, the scheme and the method plus
/// [`KeyConfig::max_url`]: no request can make the cache record a longer key.
pub(crate) fn base_key(
    config: &KeyConfig,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<String, Unkeyed> {
    let mut key = KeyText::new();
    write_base_key(&mut key, config, method, uri, headers)?;
    Ok(key.as_str().to_owned())
}

/// A base key built on the stack: the request path's keys fit, so a hit allocates none.
pub(crate) type KeyText = StackText<256>;

/// [`base_key`] into `key` (empty), without allocating when it fits.
pub(crate) fn write_base_key(
    key: &mut KeyText,
    config: &KeyConfig,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<(), Unkeyed> {
    let (path, query) = match uri.path_and_query() {
        // Kept whole, the query is keyed exactly as sent (`/a?` included).
        Some(pq) if config.query == QueryKey::keep() => (pq.as_str(), Cow::Borrowed("")),
        Some(pq) => (pq.path(), config.query.apply(pq.query().unwrap_or(""))),
        None => ("/", Cow::Borrowed("")),
    };
    let host = if config.host || config.hosts.is_some() {
        let raw = uri
            .authority()
            .map(|a| a.as_str())
            .or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok()))
            .unwrap_or("");
        match &config.hosts {
            Some(policy) => Some(policy.resolve(raw).ok_or(Unkeyed::HostNotAllowed)?),
            None => Some(Cow::Borrowed(raw)),
        }
    } else {
        None
    };
    let host = host.filter(|_| config.host);
    // Measured before anything is copied, so an oversized request costs no allocation.
    let url_len = path.len() + query.len() + host.as_ref().map_or(0, |h| h.len());
    if url_len > config.max_url {
        return Err(Unkeyed::UrlTooLong);
    }
    key.push_str(&config.prefix);
    key.push_str(path);
    if !query.is_empty() {
        key.push_str("?");
        key.push_str(&query);
    }
    key.push_str("#");
    key.push_str(method.as_str());
    if let Some(host) = host {
        key.push_str("@");
        if config.scheme {
            key.push_str(uri.scheme_str().unwrap_or("http"));
            key.push_str("://");
        }
        if host.bytes().any(|b| b.is_ascii_uppercase()) {
            key.push_str(&host.to_ascii_lowercase());
        } else {
            key.push_str(&host);
        }
    }
    Ok(())
}

/// The listing prefix that selects every key of one URL target (all methods, hosts, variants),
/// its query reduced as the keys' are.
pub(crate) fn target_prefix(config: &KeyConfig, target: &str) -> String {
    let (path, query) = match target.split_once('?') {
        Some((path, query)) if config.query != QueryKey::keep() => {
            (path, config.query.apply(query))
        }
        _ => (target, Cow::Borrowed("")),
    };
    if query.is_empty() {
        format!("{}{}#", config.prefix, path)
    } else {
        format!("{}{}?{}#", config.prefix, path, query)
    }
}

/// Whether the request's values of a response's `Vary` fields are too large to record.
pub(crate) fn vary_too_large(names: &[String], headers: &HeaderMap) -> bool {
    let total: usize = names
        .iter()
        .flat_map(|name| headers.get_all(name.as_str()))
        .map(|value| value.len() + 2)
        .sum();
    total > MAX_VARY_VALUES
}

/// The key `full` as stored: itself when it fits in `max_bytes`, else its first bytes (cut at a
/// character boundary) followed by `~` and the SHA-256 of the whole key in hex.
pub(crate) fn fit(full: &str, max_bytes: usize) -> Cow<'_, str> {
    if full.len() <= max_bytes {
        return Cow::Borrowed(full);
    }
    let keep = shortened_len(full, max_bytes);
    let mut key = String::with_capacity(max_bytes);
    key.push_str(&full[..keep]);
    key.push('~');
    key.push_str(&crate::shared::hex::hex(&Sha256::digest(full.as_bytes())));
    Cow::Owned(key)
}

/// How many leading bytes of a long key [`fit`] keeps; a listing prefix longer than that must
/// be cut to it to still find the shortened keys.
pub(crate) fn shortened_len(full: &str, max_bytes: usize) -> usize {
    // 64 hex digits and the `~`.
    let mut keep = max_bytes.saturating_sub(65).min(full.len());
    while !full.is_char_boundary(keep) {
        keep -= 1;
    }
    keep
}

/// The listing prefix for `prefix`, cut so that it also matches keys [`fit`] shortened.
pub(crate) fn fit_prefix(prefix: &str, max_bytes: usize) -> String {
    if prefix.len() <= max_bytes.saturating_sub(65) {
        return prefix.to_owned();
    }
    prefix[..shortened_len(prefix, max_bytes)].to_owned()
}

/// The whole key of one variant: the base key, the marker's generation and a hash of the
/// request's values of the `Vary` fields.
pub(crate) fn variant_key(
    base: &str,
    generation: u64,
    names: &[String],
    values: &[Option<Vec<u8>>],
) -> String {
    let mut hasher = Sha256::new();
    for (name, value) in names.iter().zip(values) {
        hasher.update((name.len() as u64).to_le_bytes());
        hasher.update(name.as_bytes());
        match value {
            None => hasher.update([0u8]),
            Some(value) => {
                hasher.update([1u8]);
                hasher.update((value.len() as u64).to_le_bytes());
                hasher.update(value);
            }
        }
    }
    let digest = hasher.finalize();
    let mut key = String::with_capacity(base.len() + 50);
    key.push_str(base);
    let _ = write!(key, "~{generation:016x}.");
    key.push_str(&crate::shared::hex::hex(&digest[..16]));
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn config(host: bool, scheme: bool) -> KeyConfig {
        KeyConfig {
            prefix: "c:".into(),
            host,
            scheme,
            ..KeyConfig::default()
        }
    }

    #[test]
    fn composition() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("Example.COM:8080"));
        let uri: Uri = "/a/b?x=1&y=2".parse().unwrap();
        assert_eq!(
            base_key(&config(true, false), &Method::GET, &uri, &headers).unwrap(),
            "c:/a/b?x=1&y=2#GET@example.com:8080"
        );
        assert_eq!(
            base_key(&config(false, false), &Method::HEAD, &uri, &headers).unwrap(),
            "c:/a/b?x=1&y=2#HEAD"
        );
        assert_eq!(
            base_key(&config(true, true), &Method::GET, &uri, &headers).unwrap(),
            "c:/a/b?x=1&y=2#GET@http://example.com:8080"
        );
        let absolute: Uri = "https://h.example/p".parse().unwrap();
        assert_eq!(
            base_key(&config(true, true), &Method::GET, &absolute, &headers).unwrap(),
            "c:/p#GET@https://h.example"
        );
        assert_eq!(
            target_prefix(&config(true, false), "/a/b?x=1&y=2"),
            "c:/a/b?x=1&y=2#"
        );
    }

    #[test]
    fn limits_on_what_a_request_puts_in_the_key() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("Example.COM"));
        let mut config = KeyConfig {
            max_url: 30,
            query: QueryKey::only(["b", "a"]).sorted(),
            ..KeyConfig::default()
        };
        let uri: Uri = "/p?b=2&utm=1&a=1".parse().unwrap();
        assert_eq!(
            base_key(&config, &Method::GET, &uri, &headers),
            Ok("/p?a=1&b=2#GET@example.com".to_owned())
        );
        assert_eq!(target_prefix(&config, "/p?utm=3&b=2&a=1"), "/p?a=1&b=2#");
        assert_eq!(target_prefix(&config, "/p?utm=3"), "/p#");
        // The path, the kept query and the host count; the dropped query does not.
        let long: Uri = format!("/{}?utm={}", "p".repeat(8), "x".repeat(500))
            .parse()
            .unwrap();
        assert!(base_key(&config, &Method::GET, &long, &headers).is_ok());
        let long: Uri = format!("/{}?a=1", "p".repeat(17)).parse().unwrap();
        assert_eq!(
            base_key(&config, &Method::GET, &long, &headers),
            Err(Unkeyed::UrlTooLong)
        );
        config.host = false;
        assert!(base_key(&config, &Method::GET, &long, &headers).is_ok());
        config.host = true;
        config.hosts = Some(HostPolicy::new(
            ["other.example".to_owned()],
            crate::cache::OtherHosts::Bypass,
        ));
        assert_eq!(
            base_key(&config, &Method::GET, &uri, &headers),
            Err(Unkeyed::HostNotAllowed)
        );
        // The allow-list applies even when the host is not part of the key.
        config.host = false;
        assert_eq!(
            base_key(&config, &Method::GET, &uri, &headers),
            Err(Unkeyed::HostNotAllowed)
        );
        let keep = KeyConfig::default();
        let bare: Uri = "/a?".parse().unwrap();
        assert_eq!(
            base_key(&keep, &Method::GET, &bare, &headers),
            Ok("/a?#GET@example.com".to_owned())
        );
    }

    #[test]
    fn vary_values_are_bounded() {
        let names = vec!["accept-language".to_owned()];
        let mut headers = HeaderMap::new();
        headers.insert("accept-language", HeaderValue::from_static("en"));
        assert!(!vary_too_large(&names, &headers));
        let big = HeaderValue::from_str(&"e".repeat(MAX_VARY_VALUES)).unwrap();
        headers.insert("accept-language", big);
        assert!(vary_too_large(&names, &headers));
    }

    #[test]
    fn long_keys_are_shortened_with_a_hash() {
        let short = "k".repeat(100);
        assert_eq!(fit(&short, 512), short);
        let long = format!("/{}#GET", "é".repeat(400));
        let fitted = fit(&long, 512);
        assert!(fitted.len() <= 512);
        assert!(long.starts_with(fitted.split('~').next().unwrap()));
        assert_ne!(
            fit(&format!("{long}x"), 512),
            fitted,
            "different keys, different hashes"
        );
        let prefix = fit_prefix(&long, 512);
        assert!(fitted.starts_with(&prefix));
    }

    #[test]
    fn variants() {
        let mut headers = HeaderMap::new();
        headers.append("accept-language", HeaderValue::from_static(" en "));
        headers.append("accept-language", HeaderValue::from_static("fr"));
        let names = vec!["accept-encoding".to_owned(), "accept-language".to_owned()];
        let values = crate::cache::vary::vary_values(&names, &headers);
        assert_eq!(values, vec![None, Some(b"en,fr".to_vec())]);
        let a = variant_key("base", 7, &names, &values);
        assert!(a.starts_with("base~0000000000000007."));
        let b = variant_key("base", 7, &names, &[None, Some(b"de".to_vec())]);
        assert_ne!(a, b);
        assert_ne!(a, variant_key("base", 8, &names, &values));
    }
}
