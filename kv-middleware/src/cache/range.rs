//! Range requests answered from a stored response (RFC 9110 §14).
//!
//! A `GET` with a `Range` in the `bytes` unit, for a URL whose complete response is stored and
//! servable (fresh, or stale where the cache may serve it), is answered from storage:
//!
//! | the request | the answer |
//! | --- | --- |
//! | one satisfiable range: `bytes=0-99`, open-ended `bytes=100-`, suffix `bytes=-100` | `206` with `Content-Range: bytes 0-99/LEN` and that slice |
//! | several ranges that overlap or touch (`bytes=0-9,5-19`) | `206` of their union, one part (§14.2 lets a server coalesce) |
//! | several disjoint ranges (`bytes=0-0,-1`) | the whole `200` (no `multipart/byteranges`: §14.2 lets a server ignore a Range, and a whole response is simpler for every client than parts) |
//! | no range overlaps the body (`bytes=500-` of 100 bytes, `bytes=-0`) | `416` with `Content-Range: bytes */LEN` |
//! | `If-Range` that does not hold (a weak or different entity-tag, a date that is not the stored strong `Last-Modified`) | the whole `200` (§13.1.5) |
//! | a stored response that is not a `200` | that response, the Range ignored |
//!
//! The Range is read only when the request's other conditions allow it: a matching
//! `If-None-Match` is answered `304` first (§13.2.2). A Range that is not a valid `bytes` range
//! set (another unit, a syntax error, several `Range` lines), and any Range request for which
//! nothing servable is stored, goes to the origin unchanged and its answer is not stored (the
//! cache stores complete responses only). `HEAD` and other methods ignore `Range` (§14.2: it is
//! defined for `GET` only).

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode};

use super::body::CacheBody;
use super::entry::StoredResponse;
use super::policy;

/// One range-spec of a `bytes` range set (RFC 9110 §14.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Spec {
    /// `first-[last]`: from `first` to `last` inclusive, or to the end.
    From { first: u64, last: Option<u64> },
    /// `-n`: the last `n` bytes.
    Suffix(u64),
}

/// How a stored response answers a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    /// The whole stored response.
    Whole,
    /// One part: bytes `first..=last` of the body.
    Partial { first: u64, last: u64 },
    /// `416`: no range overlaps the body.
    Unsatisfiable,
}

/// The `bytes` range set of a request's `Range`, or `None` when it has none the cache can
/// answer: no `Range`, several lines, another unit, or invalid syntax (then the origin
/// decides, as §14.2 allows).
pub(crate) fn parse(headers: &HeaderMap) -> Option<Vec<Spec>> {
    let mut lines = headers.get_all(header::RANGE).iter();
    let value = lines.next()?;
    if lines.next().is_some() {
        return None;
    }
    let text = value.to_str().ok()?.trim_matches([' ', '\t']);
    let (unit, set) = text.split_once('=')?;
    // Range units are case-insensitive (§14.1).
    if !unit.eq_ignore_ascii_case("bytes") {
        return None;
    }
    let mut specs = Vec::new();
    // A range set is a list: empty members are allowed, but at least one range is required.
    for member in set.split(',') {
        let member = member.trim_matches([' ', '\t']);
        if member.is_empty() {
            continue;
        }
        let (first, last) = member.split_once('-')?;
        let spec = if first.is_empty() {
            Spec::Suffix(digits(last)?)
        } else {
            let first = digits(first)?;
            let last = if last.is_empty() {
                None
            } else {
                Some(digits(last)?)
            };
            // §14.1.1: an int-range whose last is below its first is invalid.
            if last.is_some_and(|last| last < first) {
                return None;
            }
            Spec::From { first, last }
        };
        specs.push(spec);
    }
    (!specs.is_empty()).then_some(specs)
}

/// `1*DIGIT`, saturating: a position past `u64::MAX` is past any body, which is what it means.
fn digits(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.bytes().fold(0u64, |n, b| {
        n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

/// How `specs` select from a body of `len` bytes (§14.1.2): each satisfiable range clamped to
/// the body; one contiguous union is one part, anything else the whole response.
pub(crate) fn select(specs: &[Spec], len: u64) -> Plan {
    let mut ranges: Vec<(u64, u64)> = Vec::with_capacity(specs.len());
    let mut empty_but_suffix = false;
    for spec in specs {
        match *spec {
            Spec::From { first, last } if first < len => {
                ranges.push((first, last.map_or(len - 1, |last| last.min(len - 1))));
            }
            Spec::From { .. } | Spec::Suffix(0) => {}
            // §14.1.2: a non-zero suffix of an empty body is satisfiable, but no
            // `Content-Range` can express it: the whole (empty) response answers.
            Spec::Suffix(_) if len == 0 => empty_but_suffix = true,
            Spec::Suffix(n) => ranges.push((len - n.min(len), len - 1)),
        }
    }
    if ranges.is_empty() {
        return if empty_but_suffix {
            Plan::Whole
        } else {
            Plan::Unsatisfiable
        };
    }
    ranges.sort_unstable();
    let (first, mut last) = ranges[0];
    for &(next_first, next_last) in &ranges[1..] {
        if next_first > last.saturating_add(1) {
            // Disjoint parts would need multipart/byteranges: send the whole instead.
            return Plan::Whole;
        }
        last = last.max(next_last);
    }
    Plan::Partial { first, last }
}

/// Whether the request's `If-Range` (if any) lets its Range be served from `stored`
/// (RFC 9110 §13.1.5): an entity-tag matches the stored `ETag` by the strong comparison; a
/// date matches the stored `Last-Modified` exactly, and only while that is a strong validator
/// (at least 60 s before the stored `Date`, §8.8.2.2).
pub(crate) fn if_range_holds(request: &HeaderMap, stored: &HeaderMap) -> bool {
    let mut lines = request.get_all(header::IF_RANGE).iter();
    let Some(value) = lines.next() else {
        return true;
    };
    if lines.next().is_some() {
        return false;
    }
    let Ok(text) = value.to_str() else {
        return false;
    };
    let text = text.trim_matches([' ', '\t']);
    // §13.1.5: an entity-tag starts with a DQUOTE or `W/`; anything else is a date.
    if text.starts_with('"') {
        let etag = stored
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim_matches([' ', '\t']));
        // Strong comparison: neither weak, opaque tags equal octet by octet (§8.8.3.2).
        return etag.is_some_and(|etag| etag.starts_with('"') && etag.len() > 1 && etag == text);
    }
    if text.starts_with("W/") {
        return false;
    }
    let date = policy::parse_http_date(value);
    let modified = stored
        .get(header::LAST_MODIFIED)
        .and_then(policy::parse_http_date);
    let sent = stored.get(header::DATE).and_then(policy::parse_http_date);
    match (date, modified, sent) {
        (Some(date), Some(modified), Some(sent)) => {
            date == modified
                && sent
                    .duration_since(modified)
                    .is_ok_and(|gap| gap.as_secs() >= 60)
        }
        _ => false,
    }
}

/// How `stored` answers a request with this method and these headers.
pub(crate) fn plan(method: &Method, request: &HeaderMap, stored: &StoredResponse) -> Plan {
    // The common case costs one lookup.
    if !request.contains_key(header::RANGE)
        || *method != Method::GET
        || stored.status != StatusCode::OK
    {
        return Plan::Whole;
    }
    let Some(specs) = parse(request) else {
        return Plan::Whole;
    };
    if !if_range_holds(request, &stored.headers) {
        return Plan::Whole;
    }
    select(&specs, stored.body.len() as u64)
}

/// Fields a `416` carries over from the stored response: its validators and `Vary`, never its
/// freshness (a cache downstream must not store the `416` in place of the response).
const UNSATISFIABLE_KEEPS: [HeaderName; 4] = [
    header::DATE,
    header::ETAG,
    header::LAST_MODIFIED,
    header::VARY,
];

/// A `206` of bytes `first..=last` of `stored` (§15.3.7): its headers, with `Content-Range`
/// and the part's `Content-Length`.
pub(crate) fn partial<B>(stored: &StoredResponse, first: u64, last: u64) -> Response<CacheBody<B>> {
    let len = stored.body.len() as u64;
    // `select` keeps `first <= last < len`.
    let body: Bytes = stored.body.slice(first as usize..=last as usize);
    let mut response = Response::new(CacheBody::full(body));
    *response.status_mut() = StatusCode::PARTIAL_CONTENT;
    let headers = response.headers_mut();
    *headers = stored.headers.clone();
    headers.insert(
        header::CONTENT_RANGE,
        content_range(&format!("bytes {first}-{last}/{len}")),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(last - first + 1));
    response
}

/// A `416` for `stored` (§15.5.17), with `Content-Range: bytes */LEN`.
pub(crate) fn unsatisfiable<B>(stored: &StoredResponse) -> Response<CacheBody<B>> {
    let mut response = Response::new(CacheBody::empty());
    *response.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
    let headers = response.headers_mut();
    for name in &UNSATISFIABLE_KEEPS {
        for value in stored.headers.get_all(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    headers.insert(
        header::CONTENT_RANGE,
        content_range(&format!("bytes */{}", stored.body.len())),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    response
}

fn content_range(text: &str) -> HeaderValue {
    // Digits, spaces, `-`, `/` and `*` only: always a valid value.
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("bytes */0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs(value: &'static str) -> Option<Vec<Spec>> {
        let mut headers = HeaderMap::new();
        headers.insert(header::RANGE, HeaderValue::from_static(value));
        parse(&headers)
    }

    #[test]
    fn parsing() {
        use Spec::*;
        assert_eq!(
            specs("bytes=0-9"),
            Some(vec![From {
                first: 0,
                last: Some(9)
            }])
        );
        assert_eq!(
            specs("Bytes=5-, -3 ,, 1-1"),
            Some(vec![
                From {
                    first: 5,
                    last: None
                },
                Suffix(3),
                From {
                    first: 1,
                    last: Some(1)
                }
            ])
        );
        assert_eq!(
            specs("bytes=99999999999999999999999-"),
            Some(vec![From {
                first: u64::MAX,
                last: None
            }])
        );
        for invalid in [
            "bytes=",
            "bytes=,",
            "bytes=5-1",
            "bytes=a-1",
            "bytes=-",
            "bytes=1-2-3",
            "bytes=+1-2",
            "items=0-1",
            "bytes 0-1",
            "bytes=0x1-2",
        ] {
            assert_eq!(specs(invalid), None, "{invalid}");
        }
        let mut two = HeaderMap::new();
        two.append(header::RANGE, HeaderValue::from_static("bytes=0-1"));
        two.append(header::RANGE, HeaderValue::from_static("bytes=2-3"));
        assert_eq!(parse(&two), None);
    }

    #[test]
    fn selection() {
        let plan = |value: &'static str, len: u64| select(&specs(value).unwrap(), len);
        let part = |first, last| Plan::Partial { first, last };
        assert_eq!(plan("bytes=0-9", 100), part(0, 9));
        assert_eq!(plan("bytes=90-200", 100), part(90, 99));
        assert_eq!(plan("bytes=95-", 100), part(95, 99));
        assert_eq!(plan("bytes=-10", 100), part(90, 99));
        assert_eq!(plan("bytes=-1000", 100), part(0, 99));
        assert_eq!(plan("bytes=100-", 100), Plan::Unsatisfiable);
        assert_eq!(plan("bytes=-0", 100), Plan::Unsatisfiable);
        assert_eq!(plan("bytes=200-300, -0", 100), Plan::Unsatisfiable);
        // Unsatisfiable members are dropped; the rest is served.
        assert_eq!(plan("bytes=200-300, 0-1", 100), part(0, 1));
        // Overlapping or adjacent ranges coalesce; disjoint ones get the whole response.
        assert_eq!(plan("bytes=0-9, 5-19, 20-29", 100), part(0, 29));
        assert_eq!(plan("bytes=0-0, -1", 100), Plan::Whole);
        // An empty body: nothing to slice.
        assert_eq!(plan("bytes=0-", 0), Plan::Unsatisfiable);
        assert_eq!(plan("bytes=-5", 0), Plan::Whole);
        assert_eq!(
            plan("bytes=18446744073709551615-", 100),
            Plan::Unsatisfiable
        );
    }

    #[test]
    fn if_range() {
        let stored = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.append(*name, HeaderValue::from_static(value));
            }
            map
        };
        let request = |value: &'static str| stored(&[("if-range", value)]);
        let tagged = stored(&[("etag", "\"v1\"")]);
        assert!(if_range_holds(&HeaderMap::new(), &tagged));
        assert!(if_range_holds(&request("\"v1\""), &tagged));
        assert!(!if_range_holds(&request("\"v2\""), &tagged));
        assert!(!if_range_holds(&request("W/\"v1\""), &tagged));
        assert!(!if_range_holds(
            &request("\"v1\""),
            &stored(&[("etag", "W/\"v1\"")])
        ));
        let dated = stored(&[
            ("last-modified", "Tue, 14 Nov 2023 22:00:00 GMT"),
            ("date", "Tue, 14 Nov 2023 22:13:20 GMT"),
        ]);
        assert!(if_range_holds(
            &request("Tue, 14 Nov 2023 22:00:00 GMT"),
            &dated
        ));
        assert!(!if_range_holds(
            &request("Tue, 14 Nov 2023 22:00:01 GMT"),
            &dated
        ));
        assert!(!if_range_holds(&request("not a date"), &dated));
        // A Last-Modified within 60 s of Date is weak: no range by date.
        let weak = stored(&[
            ("last-modified", "Tue, 14 Nov 2023 22:13:00 GMT"),
            ("date", "Tue, 14 Nov 2023 22:13:20 GMT"),
        ]);
        assert!(!if_range_holds(
            &request("Tue, 14 Nov 2023 22:13:00 GMT"),
            &weak
        ));
    }
}
