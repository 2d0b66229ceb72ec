//! [`QueryKey`]: which part of a request's query string the cache key holds.

use std::borrow::Cow;

/// Which part of the query string goes into the cache key
/// ([`CacheLayer::with_query`](super::CacheLayer::with_query)).
///
/// The origin always receives the query exactly as the client sent it; this only decides
/// which requests share a stored response. Parameters left out of the key must not change the
/// response, or one client's answer is served for another's parameters.
///
/// ```
/// use kv_middleware::cache::QueryKey;
///
/// // Keep only `page` and `q`, in a fixed order: `?q=x&page=2&utm_source=ad` and
/// // `?page=2&q=x` share one entry.
/// let query = QueryKey::only(["page", "q"]).sorted();
/// # let _ = query;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryKey {
    params: Params,
    sorted: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum Params {
    #[default]
    All,
    None,
    Only(Vec<String>),
}

impl QueryKey {
    /// The whole query string, as sent (the default).
    pub fn keep() -> Self {
        QueryKey::default()
    }

    /// No query at all: every query string of a path shares the path's entry.
    pub fn ignore() -> Self {
        QueryKey {
            params: Params::None,
            sorted: false,
        }
    }

    /// Only the parameters with these names (case-sensitive, compared after
    /// percent-decoding, so `pa%67e=2` counts as `page`); the others are left out of the key.
    pub fn only<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        QueryKey {
            params: Params::Only(names.into_iter().map(Into::into).collect()),
            sorted: false,
        }
    }

    /// Sorts the kept parameters by name (stably: repeated names keep their order), so
    /// `?a=1&b=2` and `?b=2&a=1` share an entry. Empty parameters (`&&`) are dropped.
    pub fn sorted(mut self) -> Self {
        self.sorted = true;
        self
    }

    /// The query as keyed: empty when nothing is kept.
    pub(crate) fn apply<'q>(&self, query: &'q str) -> Cow<'q, str> {
        match &self.params {
            Params::None => Cow::Borrowed(""),
            Params::All if !self.sorted => Cow::Borrowed(query),
            params => {
                let mut pairs: Vec<&str> = query
                    .split('&')
                    .filter(|pair| !pair.is_empty())
                    .filter(|pair| match params {
                        Params::Only(names) => {
                            let name = decode(pair.split('=').next().unwrap_or(""));
                            names.iter().any(|n| n.as_bytes() == name.as_ref())
                        }
                        _ => true,
                    })
                    .collect();
                if self.sorted {
                    pairs.sort_by_key(|pair| pair.split('=').next().unwrap_or(""));
                }
                Cow::Owned(pairs.join("&"))
            }
        }
    }
}

/// A query parameter name percent-decoded (`+` is a space); a malformed escape stays as sent.
fn decode(name: &str) -> Cow<'_, [u8]> {
    let bytes = name.as_bytes();
    if !bytes.iter().any(|b| matches!(b, b'%' | b'+')) {
        return Cow::Borrowed(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match (hex_value(bytes[i + 1]), hex_value(bytes[i + 2])) {
                    (Some(high), Some(low)) => {
                        out.push(high << 4 | low);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    Cow::Owned(out)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_ignore_only_sorted() {
        let q = "b=2&a=1&&utm=x&a=0";
        assert_eq!(QueryKey::keep().apply(q), q);
        assert_eq!(QueryKey::ignore().apply(q), "");
        assert_eq!(QueryKey::keep().sorted().apply(q), "a=1&a=0&b=2&utm=x");
        assert_eq!(QueryKey::only(["a", "b"]).apply(q), "b=2&a=1&a=0");
        assert_eq!(QueryKey::only(["a", "b"]).sorted().apply(q), "a=1&a=0&b=2");
        assert_eq!(QueryKey::only(["zz"]).apply(q), "");
    }

    #[test]
    fn names_match_decoded() {
        assert_eq!(QueryKey::only(["page"]).apply("pa%67e=2&x=1"), "pa%67e=2");
        assert_eq!(QueryKey::only(["a b"]).apply("a+b=1&a%2=2&%"), "a+b=1");
        assert_eq!(decode("%zz%4"), Cow::Borrowed(b"%zz%4".as_slice()));
        assert_eq!(decode("%41%").as_ref(), b"A%");
    }
}
