//! The decision: which requests the origin check lets through, and the origin parsing it
//! needs.

use std::fmt;

use http::header::{HOST, ORIGIN};
use http::uri::Scheme;
use http::{HeaderMap, HeaderName, Method, Uri};

/// `Sec-Fetch-Site` (Fetch Metadata), not among `http`'s constants.
pub(crate) static SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");

/// Why the origin check refused a request (answered `403 Forbidden`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CrossOriginRefusal {
    /// `Sec-Fetch-Site: cross-site`: the browser says another site made the request.
    #[error("the request came from another site (Sec-Fetch-Site: cross-site)")]
    CrossSite,
    /// `Sec-Fetch-Site: same-site`: another origin of the same site (a sibling subdomain, or
    /// the same host over another scheme or port) made the request, and
    /// [`with_allow_same_site`](super::OriginCheckLayer::with_allow_same_site) is off.
    #[error("the request came from another origin of the same site (Sec-Fetch-Site: same-site)")]
    SameSite,
    /// `Origin` names an origin that is neither the request's own nor an allowed one.
    #[error("the request's Origin is neither this origin nor an allowed one")]
    OriginMismatch,
    /// `Origin: null`: an opaque origin (a sandboxed frame, a `data:` or `file:` page, a
    /// redirect across origins), which cannot be told apart from an attacker's.
    #[error("the request's Origin is null (an opaque origin)")]
    NullOrigin,
    /// `Sec-Fetch-Site` or `Origin` is repeated or not text, `Sec-Fetch-Site` has a value
    /// this check does not know (and `Origin` is not an allowed one), or `Origin` is not of the
    /// form `scheme://host[:port]`. Browsers send none of these.
    #[error("the request's Sec-Fetch-Site or Origin header is malformed")]
    Malformed,
}

impl CrossOriginRefusal {
    /// A short name for logs and metrics labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            CrossOriginRefusal::CrossSite => "cross-site",
            CrossOriginRefusal::SameSite => "same-site",
            CrossOriginRefusal::OriginMismatch => "origin-mismatch",
            CrossOriginRefusal::NullOrigin => "null-origin",
            CrossOriginRefusal::Malformed => "malformed",
        }
    }
}

/// An origin given to [`with_allowed_origins`](super::OriginCheckLayer::with_allowed_origins)
/// that is not of the form `scheme://host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid allowed origin {0:?}: expected scheme://host[:port] (no path, query, user or \
     wildcard), e.g. \"https://shop.example\""
)]
pub struct InvalidOrigin(pub String);

/// Counters of one layer and every service made from it, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OriginCheckStats {
    /// State-changing requests checked (safe methods are not counted).
    pub checked: u64,
    /// Requests refused with `403 Forbidden`.
    pub refused: u64,
}

crate::shared::counters::named_counters! {
    #[derive(Debug)]
    pub(crate) struct Counters, "kv_origin_check" {
        checked,
        refused,
    }
}

impl Counters {
    pub(crate) fn snapshot(&self) -> OriginCheckStats {
        OriginCheckStats {
            checked: self.checked.get(),
            refused: self.refused.get(),
        }
    }

    pub(crate) fn count(&self, refused: bool) {
        self.checked.bump();
        if refused {
            self.refused.bump();
        }
    }
}

/// A tuple origin, normalized: scheme and host in lower case, the scheme's default port
/// omitted. Two origins are the same exactly when these are equal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.host)?;
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

impl Origin {
    /// Parses the serialization browsers send in `Origin` (and that is configured):
    /// `scheme://host[:port]`, nothing else.
    pub(crate) fn parse(text: &str) -> Option<Origin> {
        let (scheme, authority) = text.split_once("://")?;
        let valid_scheme = scheme.as_bytes().first()?.is_ascii_alphabetic()
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
        if !valid_scheme {
            return None;
        }
        let scheme = scheme.to_ascii_lowercase();
        let (host, port) = split_authority(authority)?;
        Some(Origin::new(scheme, host, port))
    }

    fn new(scheme: String, host: String, port: Option<u16>) -> Origin {
        let port = port.filter(|&port| Some(port) != default_port(&scheme));
        Origin { scheme, host, port }
    }
}

/// The port a scheme implies when an origin names none.
fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    }
}

/// `host[:port]` (the form of `Host` and of an origin's authority) as a lower-case host and
/// an optional port; `None` when it is anything else (user info, a path, an empty host or
/// port, a port out of range).
fn split_authority(authority: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if authority.starts_with('[') {
        // An IPv6 literal: `[::1]` or `[::1]:8080`.
        let end = authority.find(']')?;
        let (host, rest) = authority.split_at(end + 1);
        let valid = host[1..host.len() - 1]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.'));
        if !valid {
            return None;
        }
        match rest {
            "" => (host, None),
            _ => (host, Some(rest.strip_prefix(':')?)),
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let valid_host = !host.is_empty()
        && (host.starts_with('[')
            || host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')));
    if !valid_host {
        return None;
    }
    let port = match port {
        None => None,
        Some(digits) => {
            if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            Some(digits.parse::<u16>().ok()?)
        }
    };
    Some((host.to_ascii_lowercase(), port))
}

/// The checking part of the layer's settings.
#[derive(Debug, Clone, Default)]
pub(crate) struct Policy {
    /// The scheme the site is served over, when configured.
    pub(crate) scheme: Option<Scheme>,
    /// Origins allowed besides the request's own, normalized.
    pub(crate) allowed: Vec<Origin>,
    /// Whether `Sec-Fetch-Site: same-site` is let through.
    pub(crate) allow_same_site: bool,
}

/// What `Sec-Fetch-Site` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FetchSite {
    SameOrigin,
    SameSite,
    CrossSite,
    /// A user-initiated navigation (typed URL, bookmark).
    None,
    /// A value this check does not know: treated as `cross-site`.
    Unknown,
}

/// The single value of `name` as text: `Ok(None)` when absent, `Err` when repeated or not
/// visible ASCII.
fn single<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Result<Option<&'a str>, ()> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(());
    }
    value.to_str().map(|text| Some(text.trim())).map_err(|_| ())
}

/// Safe methods (RFC 9110 §9.2.1) change nothing, so a cross-origin one does no harm: GET,
/// HEAD, OPTIONS and TRACE.
pub(crate) fn is_safe(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

impl Policy {
    /// Whether a state-changing request with these headers may go through.
    pub(crate) fn check(&self, uri: &Uri, headers: &HeaderMap) -> Result<(), CrossOriginRefusal> {
        let fetch_site = match single(headers, &SEC_FETCH_SITE) {
            Err(()) => return Err(CrossOriginRefusal::Malformed),
            Ok(None) => None,
            Ok(Some("same-origin")) => Some(FetchSite::SameOrigin),
            Ok(Some("same-site")) => Some(FetchSite::SameSite),
            Ok(Some("cross-site")) => Some(FetchSite::CrossSite),
            Ok(Some("none")) => Some(FetchSite::None),
            Ok(Some(_)) => Some(FetchSite::Unknown),
        };
        let origin = single(headers, &ORIGIN).map_err(|()| CrossOriginRefusal::Malformed)?;

        match fetch_site {
            // The browser's own verdict, when it gives one, decides (as Go's
            // `CrossOriginProtection` does). `Origin` may be `null` here for the site's own
            // forms under `Referrer-Policy: no-referrer`, so it is not looked at.
            Some(FetchSite::SameOrigin | FetchSite::None) => Ok(()),
            Some(FetchSite::SameSite) if self.allow_same_site => Ok(()),
            Some(_) if self.is_allowed(origin) => Ok(()),
            Some(FetchSite::SameSite) => Err(CrossOriginRefusal::SameSite),
            Some(FetchSite::Unknown) => Err(CrossOriginRefusal::Malformed),
            Some(_) => Err(CrossOriginRefusal::CrossSite),
            // An older browser: `Origin` alone. Neither header: not a browser (curl, a server,
            // a mobile app), or a same-origin request of a browser older than both headers;
            // forging a request is not a threat from such a client.
            None => match origin {
                None => Ok(()),
                Some("null") => Err(CrossOriginRefusal::NullOrigin),
                Some(text) => {
                    let origin = Origin::parse(text).ok_or(CrossOriginRefusal::Malformed)?;
                    if self.is_own(&origin, uri, headers) || self.allowed.contains(&origin) {
                        Ok(())
                    } else {
                        Err(CrossOriginRefusal::OriginMismatch)
                    }
                }
            },
        }
    }

    /// Whether `Origin` names one of the allowed origins.
    fn is_allowed(&self, origin: Option<&str>) -> bool {
        !self.allowed.is_empty()
            && origin
                .and_then(Origin::parse)
                .is_some_and(|origin| self.allowed.contains(&origin))
    }

    /// Whether `origin` is the request's own: its host and port those of the request's
    /// authority (the URI's, else `Host`), and its scheme the configured one, else the URI's.
    /// When neither says the scheme, only host and port are compared (the `Origin`'s scheme is
    /// assumed, as Go does).
    fn is_own(&self, origin: &Origin, uri: &Uri, headers: &HeaderMap) -> bool {
        let authority = match uri.authority() {
            Some(authority) => authority.as_str(),
            None => match single(headers, &HOST) {
                Ok(Some(host)) => host,
                _ => return false,
            },
        };
        let Some((host, port)) = split_authority(authority) else {
            return false;
        };
        let scheme = match self.scheme.as_ref().or(uri.scheme()) {
            Some(scheme) => scheme.as_str().to_ascii_lowercase(),
            None => origin.scheme.clone(),
        };
        Origin::new(scheme, host, port) == *origin
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalizes_origins() {
        let parse = |text| Origin::parse(text).map(|origin| origin.to_string());
        assert_eq!(
            parse("https://Shop.Example"),
            Some("https://shop.example".into())
        );
        assert_eq!(
            parse("HTTPS://shop.example:443"),
            Some("https://shop.example".into())
        );
        assert_eq!(
            parse("http://shop.example:443"),
            Some("http://shop.example:443".into())
        );
        assert_eq!(
            parse("http://127.0.0.1:8080"),
            Some("http://127.0.0.1:8080".into())
        );
        assert_eq!(parse("http://[::1]:3000"), Some("http://[::1]:3000".into()));
        assert_eq!(parse("http://[::1]"), Some("http://[::1]".into()));
        for bad in [
            "null",
            "",
            "shop.example",
            "https://",
            "https://shop.example/",
            "https://shop.example/path",
            "https://user@shop.example",
            "https://shop.example:",
            "https://shop.example:65536",
            "https://shop.example:80:80",
            "https://*.shop.example",
            "https://[::1",
            "https://[zz]",
            "https://[::1]x",
            "1http://shop.example",
            "https://shop.example?q",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn own_origin_from_uri_or_host() {
        let policy = Policy::default();
        let mut headers = HeaderMap::new();
        headers.insert(HOST, "shop.example".parse().unwrap());
        let own = |origin: &str, uri: &str, headers: &HeaderMap, policy: &Policy| {
            policy.is_own(
                &Origin::parse(origin).unwrap(),
                &uri.parse().unwrap(),
                headers,
            )
        };
        // Scheme unknown: host and port decide.
        assert!(own("https://shop.example", "/", &headers, &policy));
        assert!(own("http://shop.example", "/", &headers, &policy));
        assert!(!own("https://shop.example:8443", "/", &headers, &policy));
        assert!(!own("https://evil.example", "/", &headers, &policy));
        // The URI's authority and scheme (HTTP/2, absolute form) win over Host.
        assert!(own(
            "https://api.example",
            "https://api.example/x",
            &headers,
            &policy
        ));
        assert!(!own(
            "http://api.example",
            "https://api.example/x",
            &headers,
            &policy
        ));
        // A configured scheme wins over everything.
        let https = Policy {
            scheme: Some(Scheme::HTTPS),
            ..Policy::default()
        };
        assert!(own("https://shop.example", "/", &headers, &https));
        assert!(!own("http://shop.example", "/", &headers, &https));
        assert!(own(
            "https://api.example",
            "http://api.example/x",
            &headers,
            &https
        ));
        // Host with the default port written out.
        headers.insert(HOST, "shop.example:443".parse().unwrap());
        assert!(own("https://shop.example", "/", &headers, &https));
        // No Host at all: nothing is the request's own.
        assert!(!own(
            "https://shop.example",
            "/",
            &HeaderMap::new(),
            &policy
        ));
    }
}
