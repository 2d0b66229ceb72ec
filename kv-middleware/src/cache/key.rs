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

use std::borrow::Cow;
use std::fmt::Write as _;

use http::header::{self, HeaderMap};
use http::{Method, Uri};
use sha2::{Digest, Sha256};

/// Which parts of the request besides method, path and query the key holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct KeyConfig {
    /// Prepended to every key (empty by default: give the cache its own namespace).
    pub prefix: String,
    /// Key by the host (the URI's authority, else the `Host` header), lowercased.
    pub host: bool,
    /// Key by the scheme too (the URI's, else `http`); only with `host`.
    pub scheme: bool,
}

/// The whole (unshortened) base key of a request, before fitting it to the key limit.
pub(crate) fn base_key(
    config: &KeyConfig,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> String {
    let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let mut key = String::with_capacity(config.prefix.len() + target.len() + 48);
    key.push_str(&config.prefix);
    key.push_str(target);
    key.push('#');
    key.push_str(method.as_str());
    if config.host {
        let host = uri
            .authority()
            .map(|a| a.as_str())
            .or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok()))
            .unwrap_or("");
        key.push('@');
        if config.scheme {
            key.push_str(uri.scheme_str().unwrap_or("http"));
            key.push_str("://");
        }
        if host.bytes().any(|b| b.is_ascii_uppercase()) {
            key.extend(host.chars().map(|c| c.to_ascii_lowercase()));
        } else {
            key.push_str(host);
        }
    }
    key
}

/// The listing prefix that selects every key of one URL target (all methods, hosts, variants).
pub(crate) fn target_prefix(config: &KeyConfig, target: &str) -> String {
    format!("{}{}#", config.prefix, target)
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
    key.push_str(&hex(&Sha256::digest(full.as_bytes())));
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

/// The request's values of the `Vary` fields `names` (lowercase): each field's lines joined with
/// `, ` with surrounding whitespace trimmed, `None` when absent.
pub(crate) fn vary_values(names: &[String], headers: &HeaderMap) -> Vec<Option<Vec<u8>>> {
    names
        .iter()
        .map(|name| {
            let mut joined: Option<Vec<u8>> = None;
            for value in headers.get_all(name.as_str()) {
                let bytes = value.as_bytes().trim_ascii();
                match &mut joined {
                    None => joined = Some(bytes.to_vec()),
                    Some(all) => {
                        all.extend_from_slice(b", ");
                        all.extend_from_slice(bytes);
                    }
                }
            }
            joined
        })
        .collect()
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
    key.push_str(&hex(&digest[..16]));
    key
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
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
        }
    }

    #[test]
    fn composition() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("Example.COM:8080"));
        let uri: Uri = "/a/b?x=1&y=2".parse().unwrap();
        assert_eq!(
            base_key(&config(true, false), &Method::GET, &uri, &headers),
            "c:/a/b?x=1&y=2#GET@example.com:8080"
        );
        assert_eq!(
            base_key(&config(false, false), &Method::HEAD, &uri, &headers),
            "c:/a/b?x=1&y=2#HEAD"
        );
        assert_eq!(
            base_key(&config(true, true), &Method::GET, &uri, &headers),
            "c:/a/b?x=1&y=2#GET@http://example.com:8080"
        );
        let absolute: Uri = "https://h.example/p".parse().unwrap();
        assert_eq!(
            base_key(&config(true, true), &Method::GET, &absolute, &headers),
            "c:/p#GET@https://h.example"
        );
        assert_eq!(
            target_prefix(&config(true, false), "/a/b?x=1&y=2"),
            "c:/a/b?x=1&y=2#"
        );
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
        let values = vary_values(&names, &headers);
        assert_eq!(values, vec![None, Some(b"en, fr".to_vec())]);
        let a = variant_key("base", 7, &names, &values);
        assert!(a.starts_with("base~0000000000000007."));
        let b = variant_key("base", 7, &names, &[None, Some(b"de".to_vec())]);
        assert_ne!(a, b);
        assert_ne!(a, variant_key("base", 8, &names, &values));
    }
}
