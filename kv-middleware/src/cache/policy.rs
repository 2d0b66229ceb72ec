//! What a response's headers say about caching it in a shared cache: its directives (from a
//! targeted field or `Cache-Control`, see [`super::directives`]), `Expires`, `Age` and
//! `Last-Modified` turned into a freshness lifetime, stale-while-revalidate and stale-if-error
//! windows, and whether the response may be stored at all (RFC 9111, RFC 9213, RFC 5861).
//!
//! Everything here is pure: the service decides with it, the tests drive it directly.

use std::time::{Duration, SystemTime};

use http::header::{self, HeaderMap, HeaderName};
use http::StatusCode;

use super::directives::{parse_delta_seconds, Directives, Source};
use super::http_date;

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

/// The layer's policy settings: what it falls back to when a response says nothing, and
/// which targeted fields it obeys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Defaults {
    /// A fixed freshness for responses without `max-age`, `s-maxage` or `Expires`, in place of
    /// the heuristic; `None` (the default) uses the heuristic.
    pub ttl: Option<Duration>,
    /// The cap on heuristic freshness (RFC 9111 §4.2.2); zero stores no response without
    /// explicit freshness.
    pub heuristic_max: Duration,
    /// `stale-while-revalidate` when the response has none.
    pub stale_while_revalidate: Duration,
    /// `stale-if-error` when the response has none.
    pub stale_if_error: Duration,
    /// Store responses that set cookies.
    pub store_set_cookie: bool,
    /// The target list (RFC 9213 §2.1): the targeted fields obeyed, first valid one wins.
    pub targets: Vec<HeaderName>,
}

/// The default cap on heuristic freshness: one day.
pub(crate) const DEFAULT_HEURISTIC_MAX: Duration = Duration::from_secs(86_400);

/// The fraction of the time since `Last-Modified` that a response stays fresh without explicit
/// freshness: the 10 % RFC 9111 §4.2.2 gives as typical (and nginx, Squid and Varnish use).
const HEURISTIC_PERCENT: u64 = 10;

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            ttl: None,
            heuristic_max: DEFAULT_HEURISTIC_MAX,
            stale_while_revalidate: Duration::ZERO,
            stale_if_error: Duration::ZERO,
            store_set_cookie: false,
            targets: vec![HeaderName::from_static("cdn-cache-control")],
        }
    }
}

/// Status codes a cache may store without explicit freshness (RFC 9110 §15.1).
pub(crate) fn heuristically_cacheable(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 206 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// Status codes this cache stores at all: final, not `206` (ranges are served from complete
/// responses), not `304` (it updates a stored response instead).
fn storable_status(status: StatusCode) -> bool {
    let code = status.as_u16();
    (200..600).contains(&code) && code != 206 && code != 304
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

/// The directives this cache obeys for a response (a targeted field's, else `Cache-Control`'s).
pub(crate) fn directives(headers: &HeaderMap, defaults: &Defaults) -> (Directives, Source) {
    Directives::for_response(headers, &defaults.targets)
}

/// The fields of a response that are not stored: those named by a qualified `private` (RFC
/// 9111 §5.2.2.7: a shared cache may store the rest) or `no-cache` (§5.2.2.4: never sent from
/// storage without revalidation, so not kept at all), as present in `headers`.
pub(crate) fn withheld_fields(headers: &HeaderMap, defaults: &Defaults) -> Vec<HeaderName> {
    let (directives, _) = directives(headers, defaults);
    let mut names: Vec<HeaderName> = directives
        .withheld_fields()
        .filter_map(|name| HeaderName::from_bytes(name.as_bytes()).ok())
        .filter(|name| headers.contains_key(name))
        .collect();
    names.dedup();
    names
}

/// The fields [`withheld_fields`] names, with their values: what the client whose request
/// brought the response gets on top of the stored part.
pub(crate) fn withheld_headers(headers: &HeaderMap, defaults: &Defaults) -> HeaderMap {
    let mut withheld = HeaderMap::new();
    for name in withheld_fields(headers, defaults) {
        for value in headers.get_all(&name) {
            withheld.append(name.clone(), value.clone());
        }
    }
    withheld
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
    let (directives, source) = directives(headers, defaults);
    // Conflicts resolve to the most restrictive directive (RFC 9111 §4.2.1).
    if directives.no_store {
        return Err(NotStored::NoStore);
    }
    if directives.private {
        return Err(NotStored::Private);
    }
    let set_cookie_withheld = directives
        .withheld_fields()
        .any(|name| name == "set-cookie");
    if !defaults.store_set_cookie
        && !set_cookie_withheld
        && headers.contains_key(header::SET_COOKIE)
    {
        return Err(NotStored::SetCookie);
    }
    if vary_names(headers).is_err() {
        return Err(NotStored::VaryStar);
    }
    if !storable_status(status) {
        return Err(NotStored::Status);
    }

    // Explicit freshness, for any status (RFC 9111 §3, §4.2.1): s-maxage, max-age, then
    // Expires − Date. A targeted field replaces Cache-Control and Expires (RFC 9213 §2.1).
    let explicit = directives
        .s_maxage
        .or(directives.max_age)
        .or_else(|| match source {
            Source::CacheControl => expires_lifetime(headers, now),
            Source::Targeted => None,
        });
    let fresh = match explicit {
        Some(secs) => secs,
        None => {
            // Without explicit freshness: only heuristically cacheable statuses, or those
            // marked `public` (RFC 9111 §4.2.2) — but never a server error on `public` alone.
            let allowed =
                heuristically_cacheable(status) || (directives.public && !status.is_server_error());
            if !allowed {
                return Err(NotStored::Status);
            }
            match defaults.ttl {
                Some(ttl) => ttl.as_secs(),
                None => heuristic_lifetime(headers, defaults.heuristic_max, now)
                    .ok_or(NotStored::NoFreshness)?,
            }
        }
    };
    let no_cache = directives.no_cache;
    let no_stale = no_cache || directives.must_revalidate || directives.proxy_revalidate;
    // `s-maxage` carries proxy-revalidate's meaning for a shared cache (RFC 9111 §5.2.2.10):
    // the layer's default stale windows do not apply to it; stale windows the response grants
    // itself (RFC 5861) still do.
    let (default_swr, default_sie) = if directives.s_maxage.is_some() {
        (0, 0)
    } else {
        (
            defaults.stale_while_revalidate.as_secs(),
            defaults.stale_if_error.as_secs(),
        )
    };
    let windows = Windows {
        fresh: if no_cache { 0 } else { fresh },
        stale_while_revalidate: directives.stale_while_revalidate.unwrap_or(default_swr),
        stale_if_error: directives.stale_if_error.unwrap_or(default_sie),
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

/// Heuristic freshness (RFC 9111 §4.2.2): a tenth of the time between `Last-Modified` and
/// `Date` (or now), at most `max`; `None` without a readable `Last-Modified` or with a zero
/// `max`.
fn heuristic_lifetime(headers: &HeaderMap, max: Duration, now: SystemTime) -> Option<u64> {
    if max.is_zero() {
        return None;
    }
    let modified = headers
        .get(header::LAST_MODIFIED)
        .and_then(|v| parse_http_date_at(v, now))?;
    let date = headers
        .get(header::DATE)
        .and_then(|v| parse_http_date_at(v, now))
        .unwrap_or(now);
    let since = date.duration_since(modified).unwrap_or_default().as_secs();
    Some((since.saturating_mul(HEURISTIC_PERCENT) / 100).min(max.as_secs()))
}

/// `Expires` minus `Date` (or minus now without a `Date`). An invalid `Expires` (`0`, a bad
/// date) means already expired (RFC 9111 §5.3), and so do several `Expires` lines that
/// disagree (§4.2.1).
fn expires_lifetime(headers: &HeaderMap, now: SystemTime) -> Option<u64> {
    let mut lines = headers.get_all(header::EXPIRES).iter();
    let first = lines.next()?;
    if lines.any(|other| other != first) {
        return Some(0);
    }
    let Some(expires) = parse_http_date_at(first, now) else {
        return Some(0);
    };
    let date = headers
        .get(header::DATE)
        .and_then(|v| parse_http_date_at(v, now))
        .unwrap_or(now);
    Some(
        expires
            .duration_since(date)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    )
}

/// The `Age` header in seconds (RFC 9111 §5.1): of a list, the first member; a value that is
/// not a non-negative integer is ignored (0), as is an absent one.
pub(crate) fn age_header(headers: &HeaderMap) -> u64 {
    headers
        .get(header::AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_delta_seconds(v.split(',').next().unwrap_or_default().trim()))
        .unwrap_or(0)
}

/// An HTTP date in any of its three forms and any letter case, if the value is one; the
/// system clock decides the century of a two-digit year.
pub(crate) fn parse_http_date(value: &http::HeaderValue) -> Option<SystemTime> {
    parse_http_date_at(value, SystemTime::now())
}

/// [`parse_http_date`] with `now` deciding the century of a two-digit year.
pub(crate) fn parse_http_date_at(value: &http::HeaderValue, now: SystemTime) -> Option<SystemTime> {
    http_date::parse(value.to_str().ok()?, now)
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
            ..Defaults::default()
        }
    }

    const NOW: u64 = 1_700_000_000; // Tue, 14 Nov 2023 22:13:20 GMT

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(NOW)
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
        assert_eq!(w.fresh, 60, "the layer's fixed default");
        assert_eq!(
            decide(StatusCode::OK, &headers(&[]), &Defaults::default(), now()),
            Err(NotStored::NoFreshness),
            "no explicit freshness, no Last-Modified: not stored"
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
        for code in [500, 502, 503, 504] {
            let status = StatusCode::from_u16(code).unwrap();
            assert_eq!(
                decide(
                    status,
                    &headers(&[("cache-control", "max-age=7")]),
                    &defaults(),
                    now()
                )
                .map(|w| w.fresh),
                Ok(7),
                "{code}"
            );
            assert_eq!(
                decide(status, &headers(&[]), &defaults(), now()),
                Err(NotStored::Status),
                "{code} without explicit freshness"
            );
        }

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
    fn heuristic() {
        let d = Defaults::default();
        let modified = |lm: &'static str| {
            headers(&[
                ("date", "Tue, 14 Nov 2023 22:13:20 GMT"),
                ("last-modified", lm),
            ])
        };
        // 1000 s since Last-Modified: fresh for 100 s.
        let w = decide(
            StatusCode::OK,
            &modified("Tue, 14 Nov 2023 21:56:40 GMT"),
            &d,
            now(),
        );
        assert_eq!(w.map(|w| w.fresh), Ok(100));
        // A year ago: capped at a day, or at the layer's cap.
        let old = modified("Mon, 14 Nov 2022 22:13:20 GMT");
        assert_eq!(
            decide(StatusCode::OK, &old, &d, now()).map(|w| w.fresh),
            Ok(86_400)
        );
        let capped = Defaults {
            heuristic_max: Duration::from_secs(600),
            ..Defaults::default()
        };
        assert_eq!(
            decide(StatusCode::OK, &old, &capped, now()).map(|w| w.fresh),
            Ok(600)
        );
        let off = Defaults {
            heuristic_max: Duration::ZERO,
            ..Defaults::default()
        };
        assert_eq!(
            decide(StatusCode::OK, &old, &off, now()),
            Err(NotStored::NoFreshness)
        );
        // Only for heuristically cacheable statuses, or `public` ones that are not errors.
        assert_eq!(
            decide(StatusCode::FOUND, &old, &d, now()),
            Err(NotStored::Status)
        );
        let mut public = old.clone();
        public.insert("cache-control", HeaderValue::from_static("public"));
        assert!(decide(StatusCode::FOUND, &public, &d, now()).is_ok());
        assert_eq!(
            decide(StatusCode::INTERNAL_SERVER_ERROR, &public, &d, now()),
            Err(NotStored::Status)
        );
        assert!(decide(StatusCode::NOT_FOUND, &old, &d, now()).is_ok());
        // Explicit freshness always wins over the heuristic.
        let mut explicit = old.clone();
        explicit.insert("cache-control", HeaderValue::from_static("max-age=3"));
        assert_eq!(
            decide(StatusCode::OK, &explicit, &d, now()).map(|w| w.fresh),
            Ok(3)
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
        assert!(
            check(&[
                ("set-cookie", "a=b"),
                ("cache-control", "private=\"set-cookie\"")
            ])
            .is_ok(),
            "a withheld Set-Cookie does not stop storing"
        );
        assert_eq!(check(&[("vary", "accept, *")]), Err(NotStored::VaryStar));
        assert!(check(&[("vary", "Accept-Language")]).is_ok());
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
    fn targeted() {
        let d = Defaults::default();
        let check = |pairs: &[(&'static str, &'static str)]| {
            decide(StatusCode::OK, &headers(pairs), &d, now())
        };
        assert_eq!(
            check(&[
                ("cache-control", "no-store"),
                ("cdn-cache-control", "max-age=600")
            ])
            .map(|w| w.fresh),
            Ok(600)
        );
        assert_eq!(
            check(&[
                ("cache-control", "max-age=600"),
                ("cdn-cache-control", "no-store")
            ]),
            Err(NotStored::NoStore)
        );
        // Without freshness of its own, the targeted field still silences Expires and
        // Cache-Control: nothing explicit is left.
        assert_eq!(
            check(&[
                ("cache-control", "max-age=600"),
                ("expires", "Tue, 14 Nov 2023 23:13:20 GMT"),
                ("cdn-cache-control", "must-revalidate"),
            ]),
            Err(NotStored::NoFreshness)
        );
        // ... and the heuristic then applies.
        assert_eq!(
            check(&[
                ("cache-control", "max-age=600"),
                ("date", "Tue, 14 Nov 2023 22:13:20 GMT"),
                ("last-modified", "Tue, 14 Nov 2023 21:56:40 GMT"),
                ("cdn-cache-control", "public"),
            ])
            .map(|w| w.fresh),
            Ok(100)
        );
        let own = Defaults {
            targets: vec![
                HeaderName::from_static("kv-cache-control"),
                HeaderName::from_static("cdn-cache-control"),
            ],
            ..Defaults::default()
        };
        assert_eq!(
            decide(
                StatusCode::OK,
                &headers(&[
                    ("cdn-cache-control", "max-age=600"),
                    ("kv-cache-control", "max-age=6")
                ]),
                &own,
                now()
            )
            .map(|w| w.fresh),
            Ok(6)
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
            &headers(&[("cache-control", "s-maxage=1, stale-while-revalidate=30")]),
            &d,
            now(),
        )
        .unwrap();
        assert_eq!(
            (w.stale_while_revalidate, w.stale_if_error),
            (30, 0),
            "s-maxage: the response's own windows, not the layer's"
        );
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
            &headers(&[("cache-control", "max-age=10, no-cache=\"x-debug\"")]),
            &d,
            now(),
        )
        .unwrap();
        assert!(
            !w.no_cache && !w.no_stale,
            "qualified no-cache withholds fields only"
        );
        assert_eq!(w.fresh, 10);
    }

    #[test]
    fn robust_values() {
        let age = |value: &'static str| age_header(&headers(&[("age", value)]));
        assert_eq!(age("4"), 4);
        assert_eq!(age(" 4 "), 4);
        assert_eq!(age("4, 9"), 4, "the first member of a list");
        for ignored in ["4s", "-4", "+4", "4.5", "", "0x10", "four"] {
            assert_eq!(age(ignored), 0, "{ignored:?}");
        }
        assert_eq!(
            age_header(&headers(&[("age", "7"), ("age", "9")])),
            7,
            "the first field line"
        );

        let expires =
            |pairs: &[(&'static str, &'static str)]| expires_lifetime(&headers(pairs), now());
        let date = ("date", "Tue, 14 Nov 2023 22:13:20 GMT");
        assert_eq!(
            expires(&[date, ("expires", "tue, 14 nov 2023 22:15:20 gmt")]),
            Some(120)
        );
        assert_eq!(
            expires(&[date, ("expires", "Tuesday, 14-Nov-23 22:15:20 GMT")]),
            Some(120)
        );
        assert_eq!(
            expires(&[date, ("expires", "Tue Nov 14 22:15:20 2023")]),
            Some(120)
        );
        assert_eq!(expires(&[date, ("expires", "0")]), Some(0));
        assert_eq!(
            expires(&[date, ("expires", "Tue, 14 Nov 2023 22:15:20 UTC")]),
            Some(0)
        );
        assert_eq!(
            expires(&[
                date,
                ("expires", "Tue, 14 Nov 2023 22:15:20 GMT"),
                ("expires", "Tue, 14 Nov 2023 23:15:20 GMT"),
            ]),
            Some(0),
            "disagreeing Expires lines: stale"
        );
        assert_eq!(expires(&[date]), None);

        let withheld = withheld_fields(
            &headers(&[
                (
                    "cache-control",
                    "private=\"set-cookie, x-absent\", no-cache=\"X-Debug\"",
                ),
                ("set-cookie", "a=b"),
                ("x-debug", "1"),
            ]),
            &Defaults::default(),
        );
        assert_eq!(withheld, ["set-cookie", "x-debug"]);
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
