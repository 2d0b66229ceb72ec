//! What the cache writes to the store, and reads back.
//!
//! Values are a small binary format (no JSON on the hit path): a 4-byte magic, then
//! length-prefixed fields, then the body as the rest of the value, so decoding a response is
//! one pass that borrows header values and the body from the stored bytes without copying.
//! A value that does not decode (another program's, a future format, corruption) is a miss.
//!
//! - HTTP response (`KVH1`, kind 1): status, when it was stored (Unix milliseconds), its
//!   initial `Age`, its windows (fresh, stale-while-revalidate, stale-if-error, in seconds),
//!   flags (`no-stale`, `no-cache`), the whole cache key it was stored under, the request's
//!   values of its `Vary` fields, its headers, and its body.
//! - Vary marker (`KVH1`, kind 2): the generation and the `Vary` field names of a URL whose
//!   responses vary; the variants live under keys derived from it.
//! - Programmatic value (`KVV1`): when it was stored, its fresh / stale-while-revalidate /
//!   stale-if-error windows in milliseconds, then the value's bytes.

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::StatusCode;

use super::policy::Windows;

const HTTP_MAGIC: &[u8; 4] = b"KVH1";
const VALUE_MAGIC: &[u8; 4] = b"KVV1";
const KIND_RESPONSE: u8 = 1;
const KIND_MARKER: u8 = 2;
const FLAG_NO_STALE: u8 = 1;
const FLAG_NO_CACHE: u8 = 2;

/// A response as stored: everything needed to serve it, judge its age and revalidate it.
#[derive(Debug, Clone)]
pub(crate) struct StoredResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// When the response was received, in Unix milliseconds of the namespace's clock.
    pub stored_at_ms: u64,
    pub windows: Windows,
    /// The whole (unshortened) key the response belongs to.
    pub key: String,
    /// The request's values of the response's `Vary` fields (names lowercase, sorted).
    pub vary: Vec<(String, Option<Vec<u8>>)>,
}

/// Where a stored response stands at some moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Freshness {
    /// Younger than its freshness lifetime.
    Fresh,
    /// Stale, within its stale-while-revalidate window.
    StaleWhileRevalidate,
    /// Stale, within its stale-if-error window (only usable when the origin fails).
    StaleIfError,
    /// Past every window: only its validators are of use.
    Expired,
}

impl StoredResponse {
    /// The age in milliseconds at `now_ms`: the initial age plus the time since it was stored.
    pub fn age_ms(&self, now_ms: u64) -> u64 {
        self.windows
            .initial_age
            .saturating_mul(1000)
            .saturating_add(now_ms.saturating_sub(self.stored_at_ms))
    }

    /// The `Age` header value at `now_ms`, in whole seconds.
    pub fn age_secs(&self, now_ms: u64) -> u64 {
        self.age_ms(now_ms) / 1000
    }

    /// Freshness left at `now_ms` in whole seconds, for `Cache-Status`: the freshness lifetime
    /// less the `Age` header value (so the two agree), and negative (at most -1) once stale.
    pub fn ttl_secs(&self, now_ms: u64) -> i64 {
        let left = i128::from(self.windows.fresh) - i128::from(self.age_secs(now_ms));
        let stale = self.age_ms(now_ms) >= self.windows.fresh.saturating_mul(1000);
        let left = if stale { left.min(-1) } else { left };
        left.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }

    /// Where the response stands at `now_ms`.
    pub fn freshness(&self, now_ms: u64) -> Freshness {
        let age = self.age_ms(now_ms);
        let w = &self.windows;
        let fresh = w.fresh.saturating_mul(1000);
        if age < fresh {
            return Freshness::Fresh;
        }
        if w.no_stale {
            return Freshness::Expired;
        }
        if age < fresh.saturating_add(w.stale_while_revalidate.saturating_mul(1000)) {
            return Freshness::StaleWhileRevalidate;
        }
        if age < fresh.saturating_add(w.stale_if_error.saturating_mul(1000)) {
            return Freshness::StaleIfError;
        }
        Freshness::Expired
    }

    /// Whether the response is usable stale at `now_ms` when the origin fails.
    pub fn usable_on_error(&self, now_ms: u64) -> bool {
        let w = &self.windows;
        if w.no_stale {
            return false;
        }
        let limit = w.fresh.saturating_add(w.stale_span()).saturating_mul(1000);
        self.age_ms(now_ms) < limit
    }

    pub fn encode(&self) -> Bytes {
        let header_bytes: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 6)
            .sum();
        let mut out = BytesMut::with_capacity(64 + self.key.len() + header_bytes + self.body.len());
        out.put_slice(HTTP_MAGIC);
        out.put_u8(KIND_RESPONSE);
        out.put_u16(self.status.as_u16());
        out.put_u64(self.stored_at_ms);
        let w = &self.windows;
        for secs in [
            w.initial_age,
            w.fresh,
            w.stale_while_revalidate,
            w.stale_if_error,
        ] {
            out.put_u64(secs);
        }
        let mut flags = 0;
        if w.no_stale {
            flags |= FLAG_NO_STALE;
        }
        if w.no_cache {
            flags |= FLAG_NO_CACHE;
        }
        out.put_u8(flags);
        put_bytes32(&mut out, self.key.as_bytes());
        out.put_u16(self.vary.len().min(u16::MAX as usize) as u16);
        for (name, value) in self.vary.iter().take(u16::MAX as usize) {
            put_bytes32(&mut out, name.as_bytes());
            match value {
                None => out.put_u8(0),
                Some(value) => {
                    out.put_u8(1);
                    put_bytes32(&mut out, value);
                }
            }
        }
        let count = self.headers.len().min(u16::MAX as usize);
        out.put_u16(count as u16);
        for (name, value) in self.headers.iter().take(count) {
            put_bytes32(&mut out, name.as_str().as_bytes());
            put_bytes32(&mut out, value.as_bytes());
        }
        out.put_slice(&self.body);
        out.freeze()
    }
}

/// The `Vary` marker of a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Marker {
    pub generation: u64,
    /// Lowercase, sorted, deduplicated.
    pub names: Vec<String>,
    /// The marker entry's expiration in the store (Unix seconds), as read.
    pub expiration: Option<u64>,
}

impl Marker {
    pub fn encode(&self) -> Bytes {
        let mut out =
            BytesMut::with_capacity(16 + self.names.iter().map(|n| n.len() + 4).sum::<usize>());
        out.put_slice(HTTP_MAGIC);
        out.put_u8(KIND_MARKER);
        out.put_u64(self.generation);
        out.put_u16(self.names.len().min(u16::MAX as usize) as u16);
        for name in self.names.iter().take(u16::MAX as usize) {
            put_bytes32(&mut out, name.as_bytes());
        }
        out.freeze()
    }
}

/// A stored HTTP value: a response or a marker.
///
/// Not boxed: a decoded response moves on into the answer, and a box would cost one more
/// allocation on every hit.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub(crate) enum Stored {
    Response(StoredResponse),
    Marker(Marker),
}

impl Stored {
    /// Decodes a stored value; `None` when it is not one this cache wrote.
    pub fn decode(value: &Bytes, expiration: Option<u64>) -> Option<Stored> {
        let mut r = Reader::new(value);
        if r.take(4)? != HTTP_MAGIC {
            return None;
        }
        match r.u8()? {
            KIND_RESPONSE => decode_response(&mut r).map(Stored::Response),
            KIND_MARKER => {
                let generation = r.u64()?;
                let count = r.u16()? as usize;
                let mut names = Vec::with_capacity(count.min(64));
                for _ in 0..count {
                    names.push(r.string()?);
                }
                r.finish()?;
                Some(Stored::Marker(Marker {
                    generation,
                    names,
                    expiration,
                }))
            }
            _ => None,
        }
    }
}

fn decode_response(r: &mut Reader<'_>) -> Option<StoredResponse> {
    let status = StatusCode::from_u16(r.u16()?).ok()?;
    let stored_at_ms = r.u64()?;
    let initial_age = r.u64()?;
    let fresh = r.u64()?;
    let stale_while_revalidate = r.u64()?;
    let stale_if_error = r.u64()?;
    let flags = r.u8()?;
    let key = r.string()?;
    let vary_count = r.u16()? as usize;
    let mut vary = Vec::with_capacity(vary_count.min(64));
    for _ in 0..vary_count {
        let name = r.string()?;
        let value = match r.u8()? {
            0 => None,
            1 => Some(r.bytes32()?.to_vec()),
            _ => return None,
        };
        vary.push((name, value));
    }
    let header_count = r.u16()? as usize;
    // Room for the headers the cache adds when serving (Age, Cache-Status, X-Cache).
    let mut headers = HeaderMap::with_capacity(header_count.min(128) + 3);
    for _ in 0..header_count {
        let name = HeaderName::from_bytes(r.bytes32()?).ok()?;
        let value = r.shared32()?;
        let value = HeaderValue::from_maybe_shared(value).ok()?;
        headers.append(name, value);
    }
    let body = r.rest();
    Some(StoredResponse {
        status,
        headers,
        body,
        stored_at_ms,
        windows: Windows {
            fresh,
            stale_while_revalidate,
            stale_if_error,
            initial_age,
            no_stale: flags & FLAG_NO_STALE != 0,
            no_cache: flags & FLAG_NO_CACHE != 0,
        },
        key,
        vary,
    })
}

/// A programmatic cache value with its windows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredValue {
    pub stored_at_ms: u64,
    pub fresh_ms: u64,
    pub swr_ms: u64,
    pub sie_ms: u64,
    pub value: Bytes,
}

impl StoredValue {
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(36 + self.value.len());
        out.put_slice(VALUE_MAGIC);
        out.put_u64(self.stored_at_ms);
        out.put_u64(self.fresh_ms);
        out.put_u64(self.swr_ms);
        out.put_u64(self.sie_ms);
        out.put_slice(&self.value);
        out.freeze()
    }

    pub fn decode(value: &Bytes) -> Option<StoredValue> {
        let mut r = Reader::new(value);
        if r.take(4)? != VALUE_MAGIC {
            return None;
        }
        Some(StoredValue {
            stored_at_ms: r.u64()?,
            fresh_ms: r.u64()?,
            swr_ms: r.u64()?,
            sie_ms: r.u64()?,
            value: r.rest(),
        })
    }

    pub fn age_ms(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.stored_at_ms)
    }

    pub fn freshness(&self, now_ms: u64) -> Freshness {
        let age = self.age_ms(now_ms);
        if age < self.fresh_ms {
            Freshness::Fresh
        } else if age < self.fresh_ms.saturating_add(self.swr_ms) {
            Freshness::StaleWhileRevalidate
        } else if age < self.fresh_ms.saturating_add(self.sie_ms) {
            Freshness::StaleIfError
        } else {
            Freshness::Expired
        }
    }

    pub fn usable_on_error(&self, now_ms: u64) -> bool {
        let span = self.swr_ms.max(self.sie_ms);
        self.age_ms(now_ms) < self.fresh_ms.saturating_add(span)
    }
}

fn put_bytes32(out: &mut BytesMut, bytes: &[u8]) {
    // Header values, keys and names are far below 4 GiB; the store's value limit sees to it.
    out.put_u32(bytes.len().min(u32::MAX as usize) as u32);
    out.put_slice(&bytes[..bytes.len().min(u32::MAX as usize)]);
}

/// A bounds-checked reader over a stored value: every read is `None` past the end.
struct Reader<'a> {
    whole: &'a Bytes,
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(whole: &'a Bytes) -> Self {
        Reader { whole, at: 0 }
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let slice = self.whole.get(self.at..end)?;
        self.at = end;
        Some(slice)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }

    fn bytes32(&mut self) -> Option<&'a [u8]> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    /// A length-prefixed field as a zero-copy slice of the stored bytes.
    fn shared32(&mut self) -> Option<Bytes> {
        let len = self.u32()? as usize;
        let start = self.at;
        self.take(len)?;
        Some(self.whole.slice(start..start + len))
    }

    fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes32()?.to_vec()).ok()
    }

    fn rest(&mut self) -> Bytes {
        let rest = self.whole.slice(self.at..);
        self.at = self.whole.len();
        rest
    }

    fn finish(&self) -> Option<()> {
        (self.at == self.whole.len()).then_some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response() -> StoredResponse {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("text/plain"));
        headers.append("x-many", HeaderValue::from_static("a"));
        headers.append("x-many", HeaderValue::from_static("b"));
        headers.insert("x-binary", HeaderValue::from_bytes(b"\xfe\xff").unwrap());
        StoredResponse {
            status: StatusCode::NOT_FOUND,
            headers,
            body: Bytes::from_static(b"hello body"),
            stored_at_ms: 1_700_000_000_123,
            windows: Windows {
                fresh: 10,
                stale_while_revalidate: 20,
                stale_if_error: 30,
                initial_age: 2,
                no_stale: false,
                no_cache: true,
            },
            key: "/a?b#GET@h".into(),
            vary: vec![("accept".into(), Some(b"x".to_vec())), ("dnt".into(), None)],
        }
    }

    #[test]
    fn response_round_trip() {
        let original = response();
        let encoded = original.encode();
        let Some(Stored::Response(decoded)) = Stored::decode(&encoded, None) else {
            panic!("decodes as a response");
        };
        assert_eq!(decoded.status, original.status);
        assert_eq!(decoded.headers, original.headers);
        assert_eq!(decoded.body, original.body);
        assert_eq!(decoded.stored_at_ms, original.stored_at_ms);
        assert_eq!(decoded.windows, original.windows);
        assert_eq!(decoded.key, original.key);
        assert_eq!(decoded.vary, original.vary);
    }

    #[test]
    fn marker_round_trip() {
        let marker = Marker {
            generation: 42,
            names: vec!["accept-language".into()],
            expiration: Some(9),
        };
        let Some(Stored::Marker(decoded)) = Stored::decode(&marker.encode(), Some(9)) else {
            panic!("decodes as a marker");
        };
        assert_eq!(decoded, marker);
    }

    #[test]
    fn garbage_never_panics() {
        let encoded = response().encode();
        for len in 0..encoded.len() - 10 {
            // Every truncation inside the fixed part and the headers fails cleanly (a cut in
            // the body is just a shorter body).
            let _ = Stored::decode(&encoded.slice(..len), None);
        }
        assert!(Stored::decode(&Bytes::from_static(b"KVH1\x07"), None).is_none());
        assert!(Stored::decode(&Bytes::from_static(b"plain text"), None).is_none());
        let mut corrupt = encoded.to_vec();
        // Status 1 is not a status code.
        corrupt[5] = 0;
        corrupt[6] = 1;
        assert!(Stored::decode(&Bytes::from(corrupt), None).is_none());
        assert!(StoredValue::decode(&Bytes::from_static(b"KVV1\x00")).is_none());
    }

    #[test]
    fn freshness_states() {
        let r = response();
        let at = |secs: u64| r.stored_at_ms + secs * 1000;
        // Initial age 2: fresh until 8 s after storing.
        assert_eq!(r.age_secs(at(0)), 2);
        assert_eq!(r.ttl_secs(at(0)), 8);
        assert_eq!(r.freshness(at(7)), Freshness::Fresh);
        assert_eq!(r.freshness(at(8)), Freshness::StaleWhileRevalidate);
        assert_eq!(r.ttl_secs(at(9)), -1);
        // Stale by half a second: the Age still says 10, the ttl says stale.
        assert_eq!(r.ttl_secs(at(8) + 500), -1);
        assert_eq!(r.ttl_secs(at(7) + 999), 1);
        assert_eq!(r.freshness(at(27)), Freshness::StaleWhileRevalidate);
        assert_eq!(r.freshness(at(28)), Freshness::StaleIfError);
        assert_eq!(r.freshness(at(38)), Freshness::Expired);
        assert!(r.usable_on_error(at(37)));
        assert!(!r.usable_on_error(at(38)));

        let v = StoredValue {
            stored_at_ms: 0,
            fresh_ms: 1000,
            swr_ms: 2000,
            sie_ms: 5000,
            value: Bytes::new(),
        };
        assert_eq!(v.freshness(999), Freshness::Fresh);
        assert_eq!(v.freshness(2999), Freshness::StaleWhileRevalidate);
        assert_eq!(v.freshness(5999), Freshness::StaleIfError);
        assert_eq!(v.freshness(6000), Freshness::Expired);
        assert_eq!(StoredValue::decode(&v.encode()), Some(v));
    }
}
