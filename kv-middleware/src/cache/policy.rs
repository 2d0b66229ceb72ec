//! What a response's headers say about caching it: `Cache-Control` and `Expires` parsed into a
//! freshness lifetime, stale-while-revalidate and stale-if-error windows, and whether a shared
//! cache may store the response at all (RFC 9111, RFC 5861).
//!
//! Everything here is pure: the service decides with it, the tests drive it directly.

use std::time::{Duration, SystemTime};

use http::header::{self, HeaderMap};
use http::StatusCode;

/// The `Cache-Control` directives this cache acts on.
///
/// Unknown directives are ignored; a numeric directive with an invalid value counts as 0
/// (RFC 9111 §4.2.1 asks caches to treat invalid freshness information as stale); when a
/// numeric directive appears more than once the smallest value wins (the most restrictive).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Directives {
    pub no_store: bool,
    pub no_cache: bool,
    pub private: bool,
    pub public: bool,
    pub must_revalidate: bool,
    pub proxy_revalidate: bool,
    pub max_age: Option<u64>,
    pub s_maxage: Option<u64>,
    pub stale_while_revalidate: Option<u64>,
    pub stale_if_error: Option<u64>,
}

impl Directives {
    /// Parses every `Cache-Control` field line of `headers`.
    pub fn parse(headers: &HeaderMap) -> Self {
        let mut directives = Directives::default();
        for value in headers.get_all(header::CACHE_CONTROL) {
            // A field line that is not visible ASCII is ignored as a whole.
            let Ok(text) = value.to_str() else { continue };
            for (name, argument) in split_directives(text) {
                directives.apply(&name, argument.as_deref());
            }
        }
        directives
    }

    fn apply(&mut self, name: &str, argument: Option<&str>) {
        let seconds = || argument.and_then(parse_delta_seconds).unwrap_or(0);
        let keep_min = |slot: &mut Option<u64>, value: u64| {
            *slot = Some(slot.map_or(value, |old| old.min(value)));
        };
        match name {
            "no-store" => self.no_store = true,
            // `no-cache="field"` only restricts those fields; treating it as plain `no-cache` is
            // the conservative reading.
            "no-cache" => self.no_cache = true,
            "private" => self.private = true,
            "public" => self.public = true,
            "must-revalidate" => self.must_revalidate = true,
            "proxy-revalidate" => self.proxy_revalidate = true,
            "max-age" => keep_min(&mut self.max_age, seconds()),
            "s-maxage" => keep_min(&mut self.s_maxage, seconds()),
            "stale-while-revalidate" => keep_min(&mut self.stale_while_revalidate, seconds()),
            "stale-if-error" => keep_min(&mut self.stale_if_error, seconds()),
            _ => {}
        }
    }
}

/// Splits a `Cache-Control` value into lowercase directive names and their unquoted arguments;
/// commas inside quoted strings do not split.
fn split_directives(text: &str) -> Vec<(String, Option<String>)> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut in_quotes = false;
    let mut escaped = false;
    for c in text.chars() {
        if in_quotes {
            current.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quotes = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_quotes = true;
                current.push(c);
            }
            ',' => parts.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    parts.push(current);
    parts
        .into_iter()
        .filter_map(|part| {
            let part = part.trim();
            if part.is_empty() {
                return None;
            }
            let (name, argument) = match part.split_once('=') {
                Some((name, argument)) => (name.trim(), Some(unquote(argument.trim()))),
                None => (part, None),
            };
            Some((name.to_ascii_lowercase(), argument))
        })
        .collect()
}

fn unquote(text: &str) -> String {
    match text
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
    {
        Some(inner) => inner.replace("\\\"", "\"").replace("\\\\", "\\"),
        None => text.to_owned(),
    }
}

/// A `delta-seconds` value: digits only; values too large for a `u64` saturate (RFC 9111 §1.2.2
/// says to use 2^31 or more for them).
fn parse_delta_seconds(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse::<u64>().unwrap_or(u64::MAX))
}

/// The windows, in whole seconds, that a stored response is used in, counted from its age.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Windows {
    /// The freshness lifetime: served as a hit while `age < fresh`.
    pub fresh: u64,
    /// After `fresh`, served stale at once while one background refresh runs.
    pub stale_while_revalidate: u64,
    /// After `fresh`, served stale when the origin fails (5xx or an error).
    pub stale_if_error: u64,
    /// The response's age when it was received (its `Age` header).
    pub initial_age: u64,
    /// `must-revalidate`, `proxy-revalidate` or `no-cache`: never served stale.
    pub no_stale: bool,
    /// `no-cache`: validated with the origin before every use.
    pub no_cache: bool,
}

impl Windows {
    /// How long after `fresh` the entry is still useful for stale serving.
    pub fn stale_span(&self) -> u64 {
        if self.no_stale {
            0
        } else {
            self.stale_while_revalidate.max(self.stale_if_error)
        }
    }
}

/// Why a response is not stored; the text is what `Cache-Status` carries as `detail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotStored {
    NoStore,
    Private,
    SetCookie,
    VaryStar,
    Status,
    NoFreshness,
    TooLarge,
    /// The request's values of the response's `Vary` fields are too large to record.
    VaryTooLarge,
}

impl NotStored {
    pub fn as_str(self) -> &'static str {
        match self {
            NotStored::NoStore => "no-store",
            NotStored::Private => "private",
            NotStored::SetCookie => "set-cookie",
            NotStored::VaryStar => "vary-star",
            NotStored::Status => "status",
            NotStored::NoFreshness => "no-freshness",
            NotStored::TooLarge => "too-large",
            NotStored::VaryTooLarge => "vary-too-large",
        }
    }
}

/// What the layer falls back to when a response says nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Defaults {
    /// Freshness of a heuristically cacheable response without `max-age`, `s-maxage` or
    /// `Expires`; `None` stores no such response.
    pub ttl: Option<Duration>,
    /// `stale-while-revalidate` when the response has none.
    pub stale_while_revalidate: Duration,
    /// `stale-if-error` when the response has none.
    pub stale_if_error: Duration,
    /// Store responses that set cookies.
    pub store_set_cookie: bool,
}

/// Status codes a cache may store without explicit freshness (RFC 9110 §15.1), less `501`.
pub(crate) fn heuristically_cacheable(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 300 | 301 | 308 | 404 | 405 | 410 | 414
    )
}

/// Status codes this cache stores at all: final, not partial, not `304`, not a server error.
fn storable_status(status: StatusCode) -> bool {
    let code = status.as_u16();
    (200..500).contains(&code) && code != 206 && code != 304
}

/// Whether the response carries a validator (`ETag` or `Last-Modified`).
pub(crate) fn has_validator(headers: &HeaderMap) -> bool {
    headers.contains_key(header::ETAG) || headers.contains_key(header::LAST_MODIFIED)
}

/// The `Vary` field names of a response, lowercased, deduplicated and sorted; `Err(())` for
/// `Vary: *`.
pub(crate) fn vary_names(headers: &HeaderMap) -> Result<Vec<String>, ()> {
    let mut names = Vec::new();
    for value in headers.get_all(header::VARY) {
        let Ok(text) = value.to_str() else {
            // Unreadable Vary: the response cannot be matched safely.
            return Err(());
        };
        for name in text.split(',') {
            let name = name.trim();
            if name.is_empty() {
                continue;
            }
            if name == "*" {
                return Err(());
            }
            names.push(name.to_ascii_lowercase());
        }
    }
    names.sort();
    names.dedup();
    Ok(names)
}

/// Decides whether a response may be stored and for which windows.
///
/// `now` is when the response was received; the request side (method, `Authorization`, range)
/// was already checked by the service.
pub(crate) fn decide(
    status: StatusCode,
    headers: &HeaderMap,
    defaults: &Defaults,
    now: SystemTime,
) -> Result<Windows, NotStored> {
    let directives = Directives::parse(headers);
    if directives.no_store {
        return Err(NotStored::NoStore);
    }
    if directives.private {
        return Err(NotStored::Private);
    }
    if !defaults.store_set_cookie && headers.contains_key(header::SET_COOKIE) {
        return Err(NotStored::SetCookie);
    }
    if vary_names(headers).is_err() {
        return Err(NotStored::VaryStar);
    }
    if !storable_status(status) {
        return Err(NotStored::Status);
    }

    let explicit = directives
        .s_maxage
        .or(directives.max_age)
        .or_else(|| expires_lifetime(headers, now));
    let fresh = match explicit {
        Some(secs) => secs,
        None if heuristically_cacheable(status) => match defaults.ttl {
            Some(ttl) => ttl.as_secs(),
            None => return Err(NotStored::NoFreshness),
        },
        None => return Err(NotStored::Status),
    };
    let no_cache = directives.no_cache;
    let no_stale = no_cache || directives.must_revalidate || directives.proxy_revalidate;
    let windows = Windows {
        fresh: if no_cache { 0 } else { fresh },
        stale_while_revalidate: directives
            .stale_while_revalidate
            .unwrap_or(defaults.stale_while_revalidate.as_secs()),
        stale_if_error: directives
            .stale_if_error
            .unwrap_or(defaults.stale_if_error.as_secs()),
        initial_age: age_header(headers),
        no_stale,
        no_cache,
    };
    let useful_until = windows.fresh.saturating_add(windows.stale_span());
    if useful_until <= windows.initial_age && !has_validator(headers) {
        // Already expired on arrival, and nothing to revalidate with.
        return Err(NotStored::NoFreshness);
    }
    Ok(windows)
}

/// `Expires` minus `Date` (or minus now without a `Date`); an invalid `Expires` means already
/// expired (RFC 9111 §5.3).
fn expires_lifetime(headers: &HeaderMap, now: SystemTime) -> Option<u64> {
    let expires = headers.get(header::EXPIRES)?;
    let Some(expires) = parse_http_date(expires) else {
        return Some(0);
    };
    let date = headers
        .get(header::DATE)
        .and_then(parse_http_date)
        .unwrap_or(now);
    Some(
        expires
            .duration_since(date)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    )
}

/// The `Age` header in seconds; absent or invalid counts as 0.
pub(crate) fn age_header(headers: &HeaderMap) -> u64 {
    headers
        .get(header::AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_delta_seconds(v.trim()))
        .unwrap_or(0)
}

/// An HTTP date, if the value is one.
pub(crate) fn parse_http_date(value: &http::HeaderValue) -> Option<SystemTime> {
    httpdate::parse_http_date(value.to_str().ok()?).ok()
}

/// Whether a client's `If-None-Match` (a list of entity tags, or `*`) matches `etag` by the weak
/// comparison (RFC 9110 §13.1.2).
pub(crate) fn if_none_match_matches(
    if_none_match: &HeaderMap,
    etag: Option<&http::HeaderValue>,
) -> bool {
    let Some(etag) = etag.and_then(|e| e.to_str().ok()) else {
        return false;
    };
    let opaque = |tag: &str| -> String {
        let tag = tag.trim();
        tag.strip_prefix("W/").unwrap_or(tag).to_owned()
    };
    let stored = opaque(etag);
    for value in if_none_match.get_all(header::IF_NONE_MATCH) {
        let Ok(text) = value.to_str() else { continue };
        for candidate in text.split(',') {
            let candidate = candidate.trim();
            if candidate == "*" || (!candidate.is_empty() && opaque(candidate) == stored) {
                return true;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use std::time::UNIX_EPOCH;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn defaults() -> Defaults {
        Defaults {
            ttl: Some(Duration::from_secs(60)),
            stale_while_revalidate: Duration::ZERO,
            stale_if_error: Duration::ZERO,
            store_set_cookie: false,
        }
    }

    const NOW: u64 = 1_700_000_000;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(NOW)
    }

    #[test]
    fn parses_directives() {
        let d = Directives::parse(&headers(&[
            ("cache-control", "Public, MAX-AGE=30, s-maxage=\"60\""),
            (
                "cache-control",
                "stale-while-revalidate=10, stale-if-error=abc, x-unknown=1",
            ),
        ]));
        assert!(d.public);
        assert_eq!(d.max_age, Some(30));
        assert_eq!(d.s_maxage, Some(60));
        assert_eq!(d.stale_while_revalidate, Some(10));
        assert_eq!(d.stale_if_error, Some(0), "invalid values count as 0");

        let d = Directives::parse(&headers(&[(
            "cache-control",
            "private=\"set-cookie, x-user\", max-age=5, max-age=3, no-cache",
        )]));
        assert!(d.private && d.no_cache);
        assert_eq!(d.max_age, Some(3), "the smallest of duplicates");
        assert_eq!(
            Directives::parse(&headers(&[(
                "cache-control",
                "max-age=99999999999999999999999"
            )]))
            .max_age,
            Some(u64::MAX)
        );
        assert_eq!(
            Directives::parse(&headers(&[("cache-control", ",, ,=,max-age")])).max_age,
            Some(0)
        );
    }

    #[test]
    fn freshness_sources() {
        let w = decide(
            StatusCode::OK,
            &headers(&[("cache-control", "max-age=30, s-maxage=90")]),
            &defaults(),
            now(),
        )
        .unwrap();
        assert_eq!(w.fresh, 90, "s-maxage wins in a shared cache");
        let w = decide(StatusCode::OK, &headers(&[]), &defaults(), now()).unwrap();
        assert_eq!(w.fresh, 60, "the layer default");
        let no_default = Defaults {
            ttl: None,
            ..defaults()
        };
        assert_eq!(
            decide(StatusCode::OK, &headers(&[]), &no_default, now()),
            Err(NotStored::NoFreshness)
        );
        assert_eq!(
            decide(StatusCode::FOUND, &headers(&[]), &defaults(), now()),
            Err(NotStored::Status)
        );
        let w = decide(
            StatusCode::FOUND,
            &headers(&[("cache-control", "max-age=5")]),
            &defaults(),
            now(),
        )
        .unwrap();
        assert_eq!(
            w.fresh, 5,
            "explicit freshness makes other statuses storable"
        );

        let expires = headers(&[
            ("date", "Tue, 14 Nov 2023 22:13:20 GMT"),
            ("expires", "Tue, 14 Nov 2023 22:15:20 GMT"),
        ]);
        assert_eq!(
            decide(StatusCode::OK, &expires, &defaults(), now())
                .unwrap()
                .fresh,
            120
        );
        let bad = headers(&[("expires", "0"), ("etag", "\"a\"")]);
        assert_eq!(
            decide(StatusCode::OK, &bad, &defaults(), now())
                .unwrap()
                .fresh,
            0
        );
        assert_eq!(
            decide(
                StatusCode::OK,
                &headers(&[("expires", "0")]),
                &defaults(),
                now()
            ),
            Err(NotStored::NoFreshness)
        );
    }

    #[test]
    fn storability() {
        let d = defaults();
        let check = |pairs: &[(&'static str, &'static str)]| {
            decide(StatusCode::OK, &headers(pairs), &d, now())
        };
        assert_eq!(
            check(&[("cache-control", "no-store, max-age=60")]),
            Err(NotStored::NoStore)
        );
        assert_eq!(
            check(&[("cache-control", "private, max-age=60")]),
            Err(NotStored::Private)
        );
        assert_eq!(check(&[("set-cookie", "a=b")]), Err(NotStored::SetCookie));
        assert_eq!(check(&[("vary", "accept, *")]), Err(NotStored::VaryStar));
        assert!(check(&[("vary", "Accept-Language")]).is_ok());
        assert_eq!(
            decide(
                StatusCode::SERVICE_UNAVAILABLE,
                &headers(&[("cache-control", "max-age=60")]),
                &d,
                now()
            ),
            Err(NotStored::Status)
        );
        assert_eq!(
            decide(
                StatusCode::PARTIAL_CONTENT,
                &headers(&[("cache-control", "max-age=60")]),
                &d,
                now()
            ),
            Err(NotStored::Status)
        );
        let cookies = Defaults {
            store_set_cookie: true,
            ..defaults()
        };
        assert!(decide(
            StatusCode::OK,
            &headers(&[("set-cookie", "a=b")]),
            &cookies,
            now()
        )
        .is_ok());
        // Already older than its lifetime on arrival.
        assert_eq!(
            check(&[("cache-control", "max-age=10"), ("age", "20")]),
            Err(NotStored::NoFreshness)
        );
    }

    #[test]
    fn stale_windows() {
        let d = Defaults {
            stale_while_revalidate: Duration::from_secs(7),
            stale_if_error: Duration::from_secs(9),
            ..defaults()
        };
        let w = decide(
            StatusCode::OK,
            &headers(&[("cache-control", "max-age=1, stale-while-revalidate=30")]),
            &d,
            now(),
        )
        .unwrap();
        assert_eq!(
            (w.fresh, w.stale_while_revalidate, w.stale_if_error),
            (1, 30, 9)
        );
        assert_eq!(w.stale_span(), 30);
        let w = decide(
            StatusCode::OK,
            &headers(&[(
                "cache-control",
                "max-age=1, must-revalidate, stale-if-error=60",
            )]),
            &d,
            now(),
        )
        .unwrap();
        assert!(w.no_stale);
        assert_eq!(w.stale_span(), 0);
        let w = decide(
            StatusCode::OK,
            &headers(&[("cache-control", "no-cache"), ("etag", "\"v1\"")]),
            &d,
            now(),
        )
        .unwrap();
        assert!(w.no_cache && w.no_stale);
        assert_eq!(w.fresh, 0);
        let w = decide(
            StatusCode::OK,
            &headers(&[("cache-control", "max-age=10"), ("age", "4")]),
            &d,
            now(),
        )
        .unwrap();
        assert_eq!(w.initial_age, 4);
    }

    #[test]
    fn vary_and_conditionals() {
        assert_eq!(
            vary_names(&headers(&[
                ("vary", "Accept-Encoding, accept-language"),
                ("vary", "ACCEPT-encoding")
            ])),
            Ok(vec![
                "accept-encoding".to_owned(),
                "accept-language".to_owned()
            ])
        );
        let etag = HeaderValue::from_static("W/\"v1\"");
        assert!(if_none_match_matches(
            &headers(&[("if-none-match", "\"v0\", \"v1\"")]),
            Some(&etag)
        ));
        assert!(if_none_match_matches(
            &headers(&[("if-none-match", "*")]),
            Some(&etag)
        ));
        assert!(!if_none_match_matches(
            &headers(&[("if-none-match", "\"v2\"")]),
            Some(&etag)
        ));
        assert!(!if_none_match_matches(
            &headers(&[("if-none-match", "\"v1\"")]),
            None
        ));
    }
}
